package tier0

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
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

func TestMetricsReportQueueDepthBytesAndEvictions(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(context.Background())

	b, err := New(Options{
		MaxBytes: 100,
		Evict:    func(context.Context, SegmentKey) error { return nil },
		Meter:    provider.Meter("tier0-test"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	b.Track(key(1), 60, true, true)
	b.Track(key(2), 40, false, false)
	got := collect(t, reader)
	if got["tier0_bytes"] != 100 || got["activation_queue_depth"] != 0 {
		t.Fatalf("after Track: %v, want tier0_bytes 100, activation_queue_depth 0", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := admitAsync(ctx, b, "orders", 50) // nothing free: evicts segment 1, the only sealed one in Tier 1
	r := receive(t, done)
	cancel()
	if r.err != nil {
		t.Fatalf("AdmitWait: %v", r.err)
	}
	r.g.Commit(key(3))

	blocked, cancelBlocked := context.WithCancel(context.Background())
	waiting := admitAsync(blocked, b, "orders", 20)
	waitDepth(t, b, 1)
	got = collect(t, reader)
	if got["tier0_bytes"] != 90 || got["activation_queue_depth"] != 1 || got["tier0_evictions"] != 1 {
		t.Fatalf("with one waiter: %v, want tier0_bytes 90, activation_queue_depth 1, tier0_evictions 1", got)
	}
	cancelBlocked()
	receive(t, waiting)
	if got = collect(t, reader); got["activation_queue_depth"] != 0 {
		t.Fatalf("after cancel: %v, want activation_queue_depth 0", got)
	}
}
