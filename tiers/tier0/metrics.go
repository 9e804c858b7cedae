package tier0

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/metric"
)

// instruments are the Budget's OpenTelemetry instruments. The gauges are
// observed from Stats at collection time, so the hot path pays only for the
// eviction counter.
type instruments struct {
	evictions metric.Int64Counter
	reg       metric.Registration
}

func newInstruments(m metric.Meter, b *Budget) (*instruments, error) {
	depth, err := m.Int64ObservableGauge("activation_queue_depth",
		metric.WithDescription("Admission requests waiting for Tier 0 budget"),
		metric.WithUnit("{request}"))
	if err != nil {
		return nil, err
	}
	bytes, err := m.Int64ObservableGauge("tier0_bytes",
		metric.WithDescription("Bytes charged to segments resident in Tier 0"),
		metric.WithUnit("By"))
	if err != nil {
		return nil, err
	}
	evictions, err := m.Int64Counter("tier0_evictions",
		metric.WithDescription("Segments evicted from Tier 0"),
		metric.WithUnit("{segment}"))
	if err != nil {
		return nil, err
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := b.Stats()
		o.ObserveInt64(depth, int64(st.QueueDepth))
		o.ObserveInt64(bytes, st.UsedBytes)
		return nil
	}, depth, bytes)
	if err != nil {
		return nil, err
	}
	return &instruments{evictions: evictions, reg: reg}, nil
}

func (i *instruments) unregister() error {
	if err := i.reg.Unregister(); err != nil {
		return fmt.Errorf("tier0: unregister metrics: %w", err)
	}
	return nil
}
