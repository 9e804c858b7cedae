package integration

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// owned returns how many partitions each node's gateway reports owning
// (-1 for one that does not answer).
func owned(nodes ...*node) []int {
	out := make([]int, len(nodes))
	for i, n := range nodes {
		st, err := n.gw.status()
		if err != nil {
			out[i] = -1
			continue
		}
		out[i] = len(st.OwnedPartitions)
	}
	return out
}

// waitSpread waits until nodes own all 16 partitions between them with
// max - min <= 1, and returns how long that took.
func waitSpread(t testing.TB, within time.Duration, nodes ...*node) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		c := owned(nodes...)
		sum := 0
		for _, n := range c {
			sum += n
		}
		if sum == 16 && slices.Min(c) >= 0 && slices.Max(c)-slices.Min(c) <= 1 {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("partitions %v after %s, want 16 spread evenly over %d gateways", c, within, len(nodes))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopInTurn stops the nodes one at a time, each once the ones still
// running own every partition, and the last once it has consumed what
// AOF_INGEST holds: it then archives everything before it exits. (A
// gateway that stops earlier leaves what it did not consume in AOF_INGEST
// for the next owner, which is safe but not what these tests count.)
func stopInTurn(t *testing.T, e *env, nodes ...*node) {
	t.Helper()
	for i, n := range nodes {
		if i > 0 {
			waitSpread(t, 30*time.Second, nodes[i:]...)
		}
		if i == len(nodes)-1 {
			nc, err := nats.Connect(e.natsURL())
			if err != nil {
				t.Fatal(err)
			}
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			e.waitDrained(js, 30*time.Second)
			nc.Close()
		}
		n.gw.stop()
	}
}

// Three gateways start one after another while producers publish: each
// join moves partitions, one handover at a time, until they are spread
// evenly. The last then leaves, and its partitions go back to the two
// that owned them before. Every acked message is in Tier 2 exactly once.
func TestGatewaysJoiningUnderLoadEndEvenlySpread(t *testing.T) {
	e := newEnv(t)
	a, b, c := e.newNode("gw-a"), e.newNode("gw-b"), e.newNode("gw-c")
	nc := e.nats.Connect(t)
	a.start()
	pub := startPublisher(t, nc, []string{"orders", "audit", "clicks", "payments", "users", "events"})
	time.Sleep(time.Second)
	if got := owned(a); got[0] != 16 {
		t.Fatalf("a lone gateway owns %d partitions, want 16", got[0])
	}
	b.start()
	took2 := waitSpread(t, 30*time.Second, a, b)
	c.start()
	took3 := waitSpread(t, 30*time.Second, a, b, c)
	t.Logf("1->2 gateways spread in %s, 2->3 in %s: %v", took2.Round(time.Millisecond), took3.Round(time.Millisecond), owned(a, b, c))
	time.Sleep(time.Second)
	// The last to join leaves: its partitions go back to gateways that
	// owned them before, whose copies of those streams are now stale.
	c.gw.stop()
	took := waitSpread(t, 60*time.Second, a, b)
	t.Logf("gw-c left; gw-a and gw-b spread again in %s: %v", took.Round(time.Millisecond), owned(a, b))
	time.Sleep(time.Second)
	acked, fails := pub.finish()
	if pub.count() < 200 {
		t.Fatalf("only %d messages acked (%d failed): the test proves little", pub.count(), fails)
	}
	stopInTurn(t, e, a, b)
	e.waitIngestEmpty(e.nats.JetStream(t), 10*time.Second)
	e.checkArchiveExactlyOnce(acked, pub.maybe())
	log := e.fullGatewayLog()
	if moves := strings.Count(log, "msg=cluster_rebalance_handover"); moves < 10 {
		t.Fatalf("%d rebalancing handovers: the joins did not move partitions", moves)
	}
	if lost := strings.Count(log, "msg=cluster_partition_lost"); lost != 0 {
		t.Fatalf("%d partitions lost their lease during graceful moves", lost)
	}
	t.Logf("%d rebalancing handovers, %d store reopens for stale copies", strings.Count(log, "msg=cluster_rebalance_handover"),
		strings.Count(log, "msg=gateway_store_reopening"))
}

// `aof2-admin cluster drain` empties one gateway while producers publish:
// the others take its partitions at once and spread them, it takes none
// back; restarted, it gets its share again. Nothing is lost or stored
// twice.
func TestDrainedGatewayGivesItsPartitionsAwayAndGetsItsShareBackAfterRestart(t *testing.T) {
	e := newEnv(t)
	a, b, c := e.newNode("gw-a"), e.newNode("gw-b"), e.newNode("gw-c")
	for _, n := range []*node{a, b, c} {
		n.start()
	}
	nc := e.nats.Connect(t)
	pub := startPublisher(t, nc, []string{"orders", "audit", "clicks", "payments"})
	waitSpread(t, 30*time.Second, a, b, c)
	out := e.mustAdmin("cluster", "drain", "--node", "gw-a")
	if !strings.Contains(out, "gateway gw-a handed over partitions") {
		t.Fatalf("drain said: %s", out)
	}
	took := waitSpread(t, 10*time.Second, b, c)
	t.Logf("gw-b and gw-c own everything %s after the drain: %v", took.Round(time.Millisecond), owned(b, c))
	view := e.mustAdmin("cluster")
	if !strings.Contains(view, "draining") {
		t.Errorf("aof2-admin cluster does not show gw-a draining:\n%s", view)
	}
	time.Sleep(2 * clusterLeaseTTL) // past its quiet time: a drained gateway still takes nothing
	if got := owned(a); got[0] != 0 {
		t.Fatalf("drained gw-a owns %d partitions", got[0])
	}
	a.gw.stop()
	a.start()
	took = waitSpread(t, 30*time.Second, a, b, c)
	t.Logf("spread again %s after gw-a restarted: %v", took.Round(time.Millisecond), owned(a, b, c))
	acked, _ := pub.finish()
	stopInTurn(t, e, a, b, c)
	e.waitIngestEmpty(e.nats.JetStream(t), 10*time.Second)
	e.checkArchiveExactlyOnce(acked, pub.maybe())
}
