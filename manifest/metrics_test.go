package manifest

import (
	"context"
	"errors"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/tracing"
)

// The Log counts on the instrument set it is given, the one the gateway
// exports: manifest_records and manifest_commit_failures were once created
// from a Meter nobody passed, and never reached /metrics.
func TestLogCountsRecordsFailuresAndReplayOnGivenInstruments(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(context.Background())
	inst, err := tracing.NewInstruments(provider.Meter("manifest-test"))
	if err != nil {
		t.Fatal(err)
	}
	ffs := vfs.NewFaultFS(nil)
	l := openLog(t, ffs, t.TempDir(), Options{Instruments: inst})
	defer l.Close()
	appendCommit(t, l, sampleRecords()[:2]...)
	ffs.Inject(vfs.Fault{Op: vfs.OpSync, Times: 2})
	l.Append(sampleRecords()[2])
	if err := l.Commit(); !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("commit err = %v, want the injected fsync failure", err)
	}
	// The retry cuts the chunk back first; its fsync fails too, and the
	// commit is refused while the disk still fails.
	if err := l.Commit(); err == nil {
		t.Fatal("a commit was accepted while the retry's fsync failed")
	}
	if err := l.Commit(); err != nil {
		t.Fatalf("commit once the disk is healthy again: %v", err)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	sums, replays := map[string]int64{}, uint64(0)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					sums[m.Name] += p.Value
				}
			case metricdata.Histogram[float64]:
				if m.Name == tracing.MetricManifestReplaySeconds {
					for _, p := range d.DataPoints {
						replays += p.Count
					}
				}
			}
		}
	}
	// metadata_failures counts the failed write and the refused one: every
	// path that writes the manifest (seal, eviction, Tier 1 and 2
	// transitions) is covered here, in the one owner of manifest writes.
	// The retried record is counted once, when it is committed.
	if sums[tracing.MetricManifestRecords] != 3 || sums[tracing.MetricManifestCommitFailures] != 1 ||
		sums[tracing.MetricMetadataFailures] != 2 || replays != 1 {
		t.Fatalf("manifest_records %d, manifest_commit_failures %d, metadata_failures %d, manifest_replay_seconds count %d; want 3, 1, 2, 1",
			sums[tracing.MetricManifestRecords], sums[tracing.MetricManifestCommitFailures], sums[tracing.MetricMetadataFailures], replays)
	}
}
