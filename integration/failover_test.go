package integration

import (
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Three gateways share one NATS and one bucket, each with its own data
// root, while producers publish to several streams. The owner of the
// partitions is SIGKILLed several times, and sometimes its disk is lost
// too before it comes back. At the end every acked message is in Tier 2
// exactly once and AOF_INGEST is empty.
func TestGatewaysSurviveKillsOfTheOwnerWithNothingLostOrStoredTwice(t *testing.T) {
	e := newEnv(t)
	nodes := []*node{e.newNode("gw-a"), e.newNode("gw-b"), e.newNode("gw-c")}
	for _, n := range nodes {
		n.start()
	}
	nc := e.nats.Connect(t)
	pub := startPublisher(t, nc, []string{"orders", "audit", "clicks", "payments"})
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 4 {
		time.Sleep(1500 * time.Millisecond)
		victim := nodes[rng.IntN(len(nodes))]
		victim.gw.kill()
		if round%2 == 1 {
			victim.wipe()
		}
		time.Sleep(clusterLeaseTTL + time.Second)
		victim.start()
	}
	acked, fails := pub.finish()
	if pub.count() < 200 {
		t.Fatalf("only %d messages acked by JetStream (%d failed): the test proves little", pub.count(), fails)
	}
	for _, n := range nodes {
		n.gw.stop()
	}
	js := e.nats.JetStream(t)
	e.waitIngestEmpty(js, 10*time.Second)
	e.checkArchiveExactlyOnce(acked)
	log := e.fullGatewayLog()
	takeovers, adopted := strings.Count(log, "msg=partition_owned"), strings.Count(log, "msg=stream_adopted_from_tier2")
	t.Logf("%d messages acked by JetStream, %d partition takeovers, %d streams adopted from Tier 2", pub.count(), takeovers, adopted)
	if takeovers < 16*2 || adopted == 0 {
		t.Fatalf("%d takeovers and %d adoptions from Tier 2: the kills did not exercise failover", takeovers, adopted)
	}
}

// The owner is paused (SIGSTOP) past its lease; another gateway takes
// over and archives; the paused one is resumed. Nothing it does after
// the resume reaches the records or the purge, and the totals are exact.
func TestZombieOwnerResumedAfterItsLeaseChangesNothing(t *testing.T) {
	e := newEnv(t)
	a, b := e.newNode("gw-a"), e.newNode("gw-b")
	a.start()
	time.Sleep(500 * time.Millisecond) // a takes every partition first
	b.start()
	nc := e.nats.Connect(t)
	pub := startPublisher(t, nc, []string{"orders", "audit"})
	time.Sleep(time.Second)
	a.signal(syscall.SIGSTOP)
	time.Sleep(3 * clusterLeaseTTL)
	a.signal(syscall.SIGCONT)
	time.Sleep(2 * time.Second)
	acked, _ := pub.finish()
	a.gw.stop()
	b.gw.stop()
	js := e.nats.JetStream(t)
	e.waitIngestEmpty(js, 10*time.Second)
	e.checkArchiveExactlyOnce(acked)
	var lost, tookOver int
	for _, line := range strings.Split(e.fullGatewayLog(), "\n") {
		switch {
		case strings.Contains(line, "msg=cluster_partition_lost") && strings.Contains(line, "node=gw-a"):
			lost++
		case strings.Contains(line, "msg=partition_owned") && strings.Contains(line, "node=gw-b"):
			tookOver++
		}
	}
	if lost == 0 || tookOver == 0 {
		t.Fatalf("gw-a lost %d partitions and gw-b took %d over: the pause did not make a zombie", lost, tookOver)
	}
	t.Logf("%d messages acked; the zombie lost %d partitions, gw-b took %d over", pub.count(), lost, tookOver)
}
