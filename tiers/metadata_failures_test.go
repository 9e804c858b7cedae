package tiers

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/tracing"
)

// metadataFailures sums metadata_failures as the gateway would export it.
func metadataFailures(t *testing.T, reader *sdkmetric.ManualReader) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if d, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == tracing.MetricMetadataFailures {
				for _, p := range d.DataPoints {
					n += p.Value
				}
			}
		}
	}
	return n
}

// The manifest is the one owner of metadata_failures: a seal whose
// SealSegment commit fails once is one failed manifest write, counted
// once, not once by the manifest and again by the log that asked for it.
func TestFailedSealRecordCountsOneMetadataFailure(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(context.Background())
	inst, err := tracing.NewInstruments(provider.Meter("tiers-test"))
	if err != nil {
		t.Fatal(err)
	}
	ffs := vfs.NewFaultFS(nil)
	s := openStore(t, Options{Root: t.TempDir(), FS: ffs, SegmentTargetBytes: 4 << 10, Instruments: inst})
	defer s.Close()
	const stream = "mf"
	appendN(t, s, stream, 0, 10)
	before := metadataFailures(t, reader)
	ffs.Inject(vfs.Fault{Op: vfs.OpSync, Times: 1, Err: vfs.ENOSPC, Match: manifestOf(stream)})
	if _, err := s.Seal(testCtx(t), stream, false); err == nil {
		t.Fatal("seal reported done although its SealSegment commit failed")
	}
	if got := metadataFailures(t, reader) - before; got != 1 {
		t.Fatalf("metadata_failures rose by %d for one failed manifest commit, want 1", got)
	}
}
