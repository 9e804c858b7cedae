package tier0

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bop-aof/aof/tracing"
)

// collect returns the last value of every int64 gauge and sum by name.
func collect(t *testing.T, r *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("collect: %v", err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					out[m.Name] = p.Value
				}
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					out[m.Name] = p.Value
				}
			}
		}
	}
	return out
}

// Evictions are counted on the instrument set the Budget is given, the one
// the process exports on /metrics (tier0_evictions_total).
func TestEvictionsCountedOnSharedInstruments(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(context.Background())
	inst, err := tracing.NewInstruments(provider.Meter("tier0-test"))
	if err != nil {
		t.Fatal(err)
	}

	b, err := New(Options{
		MaxBytes:    100,
		Evict:       func(context.Context, SegmentKey) error { return nil },
		Instruments: inst,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	b.Track(key(1), 60, true, true)
	b.Track(key(2), 40, false, false)
	if got := collect(t, reader); got[tracing.MetricTier0Evictions] != 0 {
		t.Fatalf("before any eviction: %v, want tier0_evictions 0", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := admitAsync(ctx, b, "orders", 50) // nothing free: evicts segment 1, the only sealed one in Tier 1
	r := receive(t, done)
	cancel()
	if r.err != nil {
		t.Fatalf("AdmitWait: %v", r.err)
	}
	r.g.Commit(key(3))
	if got := collect(t, reader); got[tracing.MetricTier0Evictions] != 1 || b.Stats().Evictions != 1 {
		t.Fatalf("after one eviction: %v (Stats %d), want tier0_evictions 1", got, b.Stats().Evictions)
	}
}
