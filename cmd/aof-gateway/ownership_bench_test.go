package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/cluster"
	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/ownership"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

// BenchmarkIngestWithOwnershipVsSinglePipeline measures what partition
// ownership costs ingest: the same messages, already in the ingest
// stream, stored by today's single pipeline over an unpartitioned stream,
// and by a gateway's partitions (lease manager, 16 pipelines, archive
// rounds writing records to the cluster bucket and purging), on the same
// store settings and Tier 2 (in memory), in the same run, alternating.
// The ratio is ownership over single; the target is at least 0.95.
//
//	go test -run '^$' -bench IngestWithOwnership -benchtime 1x ./cmd/aof-gateway/
func BenchmarkIngestWithOwnershipVsSinglePipeline(b *testing.B) {
	n := 200_000
	if v, err := strconv.Atoi(os.Getenv("AOF_BENCH_OWNERSHIP_MESSAGES")); err == nil && v > 0 {
		n = v
	}
	var single, owned []float64
	for range 3 {
		single = append(single, drainRate(b, n, false))
		owned = append(owned, drainRate(b, n, true))
	}
	slices.Sort(single)
	slices.Sort(owned)
	s, o := single[1], owned[1]
	b.ReportMetric(s, "single_msgs/s")
	b.ReportMetric(o, "ownership_msgs/s")
	b.ReportMetric(o/s, "ownership/single")
	b.Logf("%d messages of 256 bytes over 8 streams, median of 3: single pipeline %.0f msg/s, ownership %.0f msg/s, ratio %.3f (runs %v / %v)",
		n, s, o, o/s, single, owned)
}

// drainRate publishes n messages, then measures how fast they are stored.
func drainRate(b *testing.B, n int, withOwnership bool) float64 {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ns := harness.StartNATS(b)
	defer ns.Stop()
	js := ns.JetStream(b)
	partitions := 0
	if withOwnership {
		partitions = 16
	}
	if _, err := ingest.EnsureIngestStream(ctx, js, ingest.StreamSettings{Name: "AOF_INGEST", Subjects: []string{"aof.ingest.>"}, Partitions: partitions}); err != nil {
		b.Fatal(err)
	}
	if err := ingest.EnsureDeadLetterStream(ctx, js, "AOF_INGEST_DEADLETTER", "aof.deadletter"); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 256)
	for i := range n {
		if _, err := js.PublishAsync(fmt.Sprintf("aof.ingest.s%d", i%8), body); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		b.Fatal("publish did not complete")
	}
	epochs := func(string) uint64 { return 0 }
	var runner *ownership.Runner
	store, err := tiers.Open(ctx, tiers.Options{Root: b.TempDir(), Tier2: memory.New(), SegmentTargetBytes: 4 << 20,
		EpochOf: func(s string) uint64 { return epochs(s) }})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	opts := ingest.Options{Consumer: ingest.ConsumerSettings{Stream: "AOF_INGEST", Durable: "aof-gateway"}}
	start := time.Now()
	stored := func() uint64 { return 0 }
	if withOwnership {
		stored, runner = startOwnership(ctx, b, js, store, opts)
		epochs = runner.EpochOf
	} else {
		p, err := ingest.NewPipeline(js, store, opts)
		if err != nil {
			b.Fatal(err)
		}
		go p.Run(ctx)
		stored = func() uint64 { return p.Status().Stored }
	}
	for stored() < uint64(n) {
		if ctx.Err() != nil {
			b.Fatalf("stored %d of %d", stored(), n)
		}
		time.Sleep(time.Millisecond)
	}
	return float64(n) / time.Since(start).Seconds()
}

// startOwnership runs the gateway's partitions over store, as a session
// does, and returns how many messages they stored so far.
func startOwnership(ctx context.Context, b *testing.B, js jetstream.JetStream, store *tiers.Store, opts ingest.Options) (func() uint64, *ownership.Runner) {
	b.Helper()
	bucket, err := cluster.EnsureBucket(ctx, js, cluster.BucketOptions{Name: "AOF_CLUSTER", Replicas: 1})
	if err != nil {
		b.Fatal(err)
	}
	partitionOf := func(s string) int { return cluster.PartitionOf(s, 16) }
	opts.Partitions, opts.PartitionOf = 16, partitionOf
	purger, err := ingest.NewPurger(js, ingest.PurgerOptions{Stream: "AOF_INGEST", SubjectPrefix: "aof.ingest", Partitions: 16, PartitionOf: partitionOf})
	if err != nil {
		b.Fatal(err)
	}
	pi := &partitionIngest{js: js, store: store, opts: opts, purger: purger, pipelines: newPipelineSet()}
	runner := ownership.NewRunner(ownership.Options{Records: records{bucket}, Store: &ownedStore{s: store}, Ingest: pi, PartitionOf: partitionOf})
	m, err := cluster.NewManager(bucket, cluster.ManagerOptions{Node: "bench", Partitions: 16, LeaseTTL: 10 * time.Second},
		cluster.HandlerFunc(func(hctx context.Context, l cluster.Lease, handover <-chan struct{}) {
			runner.Acquired(hctx, leaseOf{l: l, ctx: hctx}, handover)
		}))
	if err != nil {
		b.Fatal(err)
	}
	go m.Run(ctx)
	return func() uint64 {
		if st := pi.pipelines.status(); st != nil {
			return st.Stored
		}
		return 0
	}, runner
}
