package cluster

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/bop-aof/aof/integration/harness"
)

func TestSharesAddUpAndDifferByAtMostOne(t *testing.T) {
	for _, partitions := range []int{1, 2, 7, 16, 1024} {
		for n := 1; n <= 9; n++ {
			var active []string
			for i := range n {
				active = append(active, fmt.Sprintf("gw-%d", i))
			}
			sum, lo, hi := 0, partitions, 0
			for _, id := range active {
				s := shareOf(id, active, partitions)
				sum += s
				lo, hi = min(lo, s), max(hi, s)
			}
			if sum != partitions || hi-lo > 1 {
				t.Errorf("P=%d n=%d: shares sum to %d (min %d, max %d)", partitions, n, sum, lo, hi)
			}
			if hi != (partitions+n-1)/n {
				t.Errorf("P=%d n=%d: largest share %d, want ceil(P/n)", partitions, n, hi)
			}
		}
	}
	if s := shareOf("gw-x", []string{"gw-a"}, 16); s != 0 {
		t.Errorf("a node that is not active has share %d", s)
	}
}

// counts returns how many partitions each manager holds.
func counts(ms ...*runningManager) []int {
	out := make([]int, len(ms))
	for i, m := range ms {
		out[i] = len(m.Owned())
	}
	return out
}

// spread reports whether the managers hold every partition between them
// with max - min <= 1.
func spread(partitions int, ms ...*runningManager) func() bool {
	return func() bool {
		c := counts(ms...)
		sum := 0
		for _, n := range c {
			sum += n
		}
		return sum == partitions && slices.Max(c)-slices.Min(c) <= 1
	}
}

// Nodes joining one after another end evenly spread; a drained node gives
// everything away and takes nothing; it takes its share again when the
// drain is lifted, and the survivors take a dead node's share. No
// partition is ever run twice (ownership fails the test at once).
func TestPartitionsSpreadAsNodesJoinDrainAndDie(t *testing.T) {
	const partitions, ttl = 16, 2 * time.Second
	n := harness.StartNATS(t)
	own := newOwnership(t)
	start := func(node string) *runningManager {
		return startManagerWith(t, n, ManagerOptions{Node: node, Partitions: partitions, LeaseTTL: ttl,
			MovePause: 50 * time.Millisecond}, own.handler(node))
	}
	a := start("gw-a")
	eventually(t, 5*time.Second, "gw-a owns every partition", ownsAll(a.Manager, partitions))
	b := start("gw-b")
	eventually(t, 20*time.Second, "8/8 after gw-b joins", spread(partitions, a, b))
	c := start("gw-c")
	begun := time.Now()
	eventually(t, 20*time.Second, "an even spread after gw-c joins", spread(partitions, a, b, c))
	t.Logf("gw-c's join rebalanced in %s: %v", time.Since(begun), counts(a, b, c))
	// Held steady: no further moves once spread.
	moves := a.Stats().Released + b.Stats().Released + c.Stats().Released
	time.Sleep(ttl)
	if again := a.Stats().Released + b.Stats().Released + c.Stats().Released; again != moves {
		t.Errorf("%d handovers after the spread was even: %v", again-moves, counts(a, b, c))
	}

	if err := c.Drain(testCtx(t), true); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "gw-a and gw-b hold everything after gw-c drained", spread(partitions, a, b))
	time.Sleep(2 * ttl) // past c's quiet time: a draining node still takes nothing
	if got := c.Owned(); len(got) != 0 {
		t.Fatalf("draining gw-c holds %+v", got)
	}
	if st := c.Stats(); !st.Draining || st.Share != 0 {
		t.Errorf("draining gw-c stats %+v", st)
	}
	if err := c.Drain(testCtx(t), false); err != nil {
		t.Fatal(err)
	}
	// Well within a TTL: the drain's quiet time is lifted with it.
	eventually(t, ttl, "an even spread after gw-c's drain is lifted", spread(partitions, a, b, c))

	// gw-b dies (stops renewing and heartbeating): a and c share its part.
	b.paused.Store(true)
	died := time.Now()
	eventually(t, 4*ttl, "gw-a and gw-c hold everything after gw-b died", spread(partitions, a, c))
	t.Logf("gw-b's share moved in %s: %v", time.Since(died), counts(a, c))
}

// A follower heartbeats but takes nothing, even a partition nobody holds,
// and the active nodes leave it out of their shares.
func TestAFollowerTakesNothing(t *testing.T) {
	const partitions, ttl = 4, 2 * time.Second
	n := harness.StartNATS(t)
	own := newOwnership(t)
	f := startManagerWith(t, n, ManagerOptions{Node: "gw-f", Partitions: partitions, LeaseTTL: ttl, Follower: true}, own.handler("gw-f"))
	time.Sleep(2 * ttl)
	if got := f.Owned(); len(got) != 0 {
		t.Fatalf("follower took %+v", got)
	}
	a := startManager(t, n, "gw-a", partitions, ttl, own.handler("gw-a"))
	eventually(t, 5*time.Second, "gw-a owns every partition beside the follower", ownsAll(a.Manager, partitions))
	nodes, err := ensureOn(t, n.JetStream(t)).ListNodes(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	var follower bool
	for _, nd := range nodes {
		follower = follower || (nd.Node == "gw-f" && nd.Follower && len(nd.Owned) == 0)
	}
	if !follower {
		t.Fatalf("no follower heartbeat in %+v", nodes)
	}
	if err := f.Drain(testCtx(t), true); err == nil {
		t.Fatal("a follower accepted a drain")
	}
}

// Lifting a drain gives the node its share back at once: the partitions
// the drain gave away are not left resting for a TTL.
func TestLiftingADrainTakesTheShareBackWithinTheTTL(t *testing.T) {
	const partitions, ttl = 8, 10 * time.Second
	n := harness.StartNATS(t)
	own := newOwnership(t)
	start := func(node string) *runningManager {
		return startManagerWith(t, n, ManagerOptions{Node: node, Partitions: partitions, LeaseTTL: ttl,
			MovePause: 50 * time.Millisecond}, own.handler(node))
	}
	a, b := start("gw-a"), start("gw-b")
	eventually(t, 20*time.Second, "4/4", spread(partitions, a, b))
	if err := b.Drain(testCtx(t), true); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "gw-a holds everything", ownsAll(a.Manager, partitions))
	lifted := time.Now()
	if err := b.Drain(testCtx(t), false); err != nil {
		t.Fatal(err)
	}
	eventually(t, ttl/2, "4/4 again after the drain is lifted", spread(partitions, a, b))
	t.Logf("spread again %s after the drain was lifted", time.Since(lifted).Round(time.Millisecond))
}
