package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/cluster"
	"github.com/bop-aof/aof/integration/harness"
)

// A gateway owns every partition and has archived part of stream orders;
// the ingest stream still holds messages of orders and of a stream with
// no record yet. cluster shows the node, every lease, and per stream its
// archived position, what AOF_INGEST holds and the archive lag.
func TestClusterShowsNodesLeasesAndArchivedPositions(t *testing.T) {
	n := harness.StartNATS(t)
	js := n.JetStream(t)
	ctx := testCtx(t)
	const partitions = 4
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "AOF_INGEST", Subjects: []string{"aof.ingest.>"},
		SubjectTransform: ptrTo(cluster.PartitionSubjectTransform("aof.ingest", partitions))}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := js.Publish(ctx, "aof.ingest.orders", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(ctx, "aof.ingest.audit", []byte("a")); err != nil {
		t.Fatal(err)
	}
	b, err := cluster.EnsureBucket(ctx, js, cluster.BucketOptions{Name: "AOF_CLUSTER", Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.UpdateArchived(ctx, "orders", 0, cluster.Archived{Epoch: 1, Through: 3, UpdatedAt: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	m, err := cluster.NewManager(b, cluster.ManagerOptions{Node: "gw-a", Partitions: partitions, LeaseTTL: 5 * time.Second},
		cluster.HandlerFunc(func(ctx context.Context, _ cluster.Lease, _ <-chan struct{}) { <-ctx.Done() }))
	if err != nil {
		t.Fatal(err)
	}
	mctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(mctx) }()
	t.Cleanup(func() { stop(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for len(m.Owned()) < partitions {
		if time.Now().After(deadline) {
			t.Fatalf("gw-a owns %d partitions, want %d", len(m.Owned()), partitions)
		}
		time.Sleep(20 * time.Millisecond)
	}

	code, out, errOut := cli(t, "--nats-url="+n.URL, "cluster", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var v struct {
		Nodes []struct {
			Node  string `json:"node"`
			Owned []int  `json:"owned_partitions"`
		} `json:"nodes"`
		Leases []struct {
			Partition int    `json:"partition"`
			Owner     string `json:"owner"`
			Epoch     uint64 `json:"epoch"`
		} `json:"leases"`
		Streams []struct {
			Stream   string  `json:"stream"`
			Owner    string  `json:"owner"`
			Through  uint64  `json:"archived_through"`
			InIngest uint64  `json:"messages_in_ingest"`
			Lag      float64 `json:"archive_lag_seconds"`
		} `json:"streams"`
		Unowned []int `json:"unowned_partitions"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("cluster --json: %v\n%s", err, out)
	}
	if len(v.Nodes) != 1 || v.Nodes[0].Node != "gw-a" || len(v.Nodes[0].Owned) != partitions {
		t.Fatalf("nodes = %+v", v.Nodes)
	}
	if len(v.Leases) != partitions || len(v.Unowned) != 0 || v.Leases[0].Owner != "gw-a" || v.Leases[0].Epoch != 1 {
		t.Fatalf("leases = %+v, unowned %v", v.Leases, v.Unowned)
	}
	if len(v.Streams) != 2 || v.Streams[0].Stream != "audit" || v.Streams[1].Stream != "orders" {
		t.Fatalf("streams = %+v", v.Streams)
	}
	audit, orders := v.Streams[0], v.Streams[1]
	if audit.InIngest != 1 || audit.Through != 0 || audit.Owner != "gw-a" {
		t.Errorf("audit = %+v", audit)
	}
	if orders.InIngest != 5 || orders.Through != 3 || orders.Lag < 59 {
		t.Errorf("orders = %+v, want 5 in AOF_INGEST, archived through 3, lag about a minute", orders)
	}

	code, out, _ = cli(t, "--nats-url="+n.URL, "cluster")
	for _, want := range []string{"partitions 4, lease TTL 10s, nodes 1, unowned partitions 0", "gw-a", "0-3", "orders"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("cluster table lacks %q:\n%s", want, out)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }
