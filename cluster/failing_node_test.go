package cluster

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bop-aof/aof/integration/harness"
)

// A node that can run no partition (a broken disk, credentials refused):
// every handler it starts fails at once. The rebalance hands it partitions
// only until it has failed failingAfter terms in a row; then it counts
// itself out of the shares (heartbeat "failing") and the healthy node
// keeps everything. Partitions are unowned only for the grace after each
// of those few failures.
func TestAGatewayWhoseHandlersFailIsNotKeptBusyWithPartitions(t *testing.T) {
	const partitions, ttl = 2, 2 * time.Second
	n := harness.StartNATS(t)
	own := newOwnership(t)
	a := startManagerWith(t, n, ManagerOptions{Node: "gw-a", Partitions: partitions, LeaseTTL: ttl, MovePause: 50 * time.Millisecond}, own.handler("gw-a"))
	eventually(t, 5*time.Second, "gw-a owns every partition", ownsAll(a.Manager, partitions))
	var failing atomic.Int32
	b := startManagerWith(t, n, ManagerOptions{Node: "gw-b", Partitions: partitions, LeaseTTL: ttl, MovePause: 50 * time.Millisecond},
		HandlerFunc(func(ctx context.Context, l Lease, handover <-chan struct{}) {
			failing.Add(1) // gw-b can run no partition
		}))
	held := func(p int) bool {
		for _, m := range []*Manager{a.Manager, b.Manager} {
			for _, l := range m.Owned() {
				if l.Partition == p {
					return true
				}
			}
		}
		return false
	}
	const window = 10 * time.Second
	var samples, unowned int
	for end := time.Now().Add(window); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		samples++
		if !held(0) || !held(1) {
			unowned++
		}
	}
	aRel := a.Stats().Released
	nodes, err := ensureOn(t, n.JetStream(t)).ListNodes(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, nd := range nodes {
		if nd.Node == "gw-b" && (!nd.Failing || nd.Share != 0) {
			t.Errorf("gw-b's heartbeat %+v, want failing with share 0", nd)
		}
	}
	b.shutdown(t)
	a.shutdown(t)
	frac := float64(unowned) / float64(samples)
	t.Logf("over %s: some partition unowned %.0f%% of the time; gw-a handed over %d times; gw-b's handler failed %d times", window, 100*frac, aRel, failing.Load())
	if frac > 0.1 || failing.Load() > failingAfter {
		t.Fatalf("partitions bounced: unowned %.0f%% of %s, %d failed terms on gw-b, %d handovers by gw-a", 100*frac, window, failing.Load(), aRel)
	}
}
