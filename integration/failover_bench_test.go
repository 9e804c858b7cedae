package integration

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/cluster"
	"github.com/bop-aof/aof/ingest"
)

// BenchmarkFailover measures, at the default lease TTL (10 s), how long a
// partition is without an owner that acks: from the SIGKILL (or SIGTERM,
// a graceful handover) of the gateway that owns stream orders' partition
// to the first ack, by the other gateway, of a message published after
// the signal. Two gateways, continuous publishing; ten kills, three
// handovers. Run by `make bench`:
//
//	go test -run '^$' -bench BenchmarkFailover -benchtime 1x ./integration/
func BenchmarkFailover(b *testing.B) {
	const ttl = 10 * time.Second
	e := newEnv(b)
	nodes := map[string]*node{"gw-a": e.newNode("gw-a"), "gw-b": e.newNode("gw-b")}
	for _, n := range nodes {
		n.leaseTTL = ttl
		n.start()
	}
	nc := e.nats.Connect(b)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	pub := startPublisher(b, nc, []string{"orders"})
	defer pub.finish()
	ctx := context.Background()
	bucket, err := cluster.OpenBucket(ctx, js, "AOF_CLUSTER")
	if err != nil {
		b.Fatal(err)
	}
	p := cluster.PartitionOf("orders", 16)
	measure := func(sig syscall.Signal) time.Duration {
		// Steady state: the restarted gateway has its share back, so the
		// signal does not land on a partition already being handed over.
		waitSpread(b, 3*time.Minute, nodes["gw-a"], nodes["gw-b"])
		time.Sleep(time.Second)
		owner := nodes[ownerOf(b, bucket, p)]
		last := lastSeq(b, js)
		t0 := time.Now()
		if sig == syscall.SIGKILL {
			owner.gw.kill()
		} else {
			owner.signal(sig)
		}
		waitAcked(b, js, ingest.PartitionDurable("aof-gateway", p), last+1, 3*ttl)
		d := time.Since(t0)
		if sig != syscall.SIGKILL {
			<-owner.gw.done
		}
		owner.start()
		return d
	}
	var kills, handovers []time.Duration
	for range 10 {
		kills = append(kills, measure(syscall.SIGKILL))
	}
	for range 3 {
		handovers = append(handovers, measure(syscall.SIGTERM))
	}
	report := func(name string, ds []time.Duration) {
		slices.Sort(ds)
		med, mx := ds[len(ds)/2], ds[len(ds)-1]
		b.ReportMetric(med.Seconds(), name+"_median_s")
		b.ReportMetric(mx.Seconds(), name+"_max_s")
		b.Logf("%s over %d runs: median %v, max %v (lease TTL %v): %v", name, len(ds), med.Round(time.Millisecond), mx.Round(time.Millisecond), ttl, ds)
	}
	report("sigkill_to_first_ack", kills)
	report("handover_to_first_ack", handovers)
	b.ReportMetric(float64(kills[len(kills)-1])/float64(ttl), "kill_max_per_ttl")
}

func ownerOf(b *testing.B, bucket *cluster.Bucket, p int) string {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		leases, err := bucket.ListLeases(context.Background())
		if err == nil {
			for _, l := range leases {
				if l.Partition == p && l.Epoch > 0 {
					return l.Node
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("partition %d has no owner", p)
	return ""
}

func lastSeq(b *testing.B, js jetstream.JetStream) uint64 {
	b.Helper()
	st, err := js.Stream(context.Background(), "AOF_INGEST")
	if err != nil {
		b.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return info.State.LastSeq
}

// waitAcked waits until durable's ack floor reaches seq.
func waitAcked(b *testing.B, js jetstream.JetStream, durable string, seq uint64, timeout time.Duration) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := js.Consumer(ctx, "AOF_INGEST", durable)
		if err == nil {
			if info, err := c.Info(ctx); err == nil && info.AckFloor.Stream >= seq {
				cancel()
				return
			}
		}
		cancel()
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatal(fmt.Sprintf("%s did not ack sequence %d within %v", durable, seq, timeout))
}
