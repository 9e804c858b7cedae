package integration

import (
	"context"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/integration/harness"
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
	stopInTurn(t, e, nodes...)
	js := e.nats.JetStream(t)
	e.waitIngestEmpty(js, 10*time.Second)
	e.checkArchiveExactlyOnce(acked, pub.maybe())
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
	stopInTurn(t, e, a, b)
	js := e.nats.JetStream(t)
	e.waitIngestEmpty(js, 10*time.Second)
	e.checkArchiveExactlyOnce(acked, pub.maybe())
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

// Two gateways on a three-server NATS cluster, with AOF_INGEST,
// AOF_MANIFEST and the cluster bucket at three replicas, given all three
// URLs. One server is SIGKILLed mid-ingest and restarted: the gateways
// ride through, and every acked message is in Tier 2 once.
func TestGatewaysRideThroughTheLossOfANATSServer(t *testing.T) {
	lossOfANATSServer(t, 30*time.Second, true)
}

// At the default lease TTL an election may outlast the leases renewed
// through the killed server: they are lost and taken over, and still
// every acked message is in Tier 2 once.
func TestTheLossOfANATSServerAtTheDefaultLeaseTTLLosesNoMessage(t *testing.T) {
	lossOfANATSServer(t, 10*time.Second, false)
}

// lossOfANATSServer runs two gateways with lease TTL ttl on a 3-node
// cluster, kills the server that leads the cluster bucket mid-ingest and
// restarts it, and checks the totals; with noLeaseLost, also that no
// partition changed owner.
func lossOfANATSServer(t *testing.T, ttl time.Duration, noLeaseLost bool) {
	c := harness.StartCluster(t, 3)
	e := &env{t: t, s3: harness.StartS3(t), root: t.TempDir(), cluster: c,
		extra: []string{"AOF2_INGEST_REPLICAS=3", "AOF2_CLUSTER_REPLICAS=3"}}
	a, b := e.newNode("gw-a"), e.newNode("gw-b")
	// A lease TTL longer than a stream election: the streams the killed
	// server led elect a new leader after nats-server's raft election
	// timeout (4 to 9 s, random) and the gateways reconnect, and a lease
	// is valid for 0.9 TTL after a renewal made up to TTL/3 before the
	// kill. At the default 10 s that leaves 5.7 s, which about half of
	// the elections outlast (leases lost and taken over, nothing lost:
	// docs/architecture.md, "A NATS node lost"); at 30 s it leaves 17 s,
	// and no partition may change owner.
	a.leaseTTL, b.leaseTTL = ttl, ttl
	a.start()
	b.start()
	nc := c.Connect(t)
	pub := startPublisher(t, nc, []string{"orders", "audit", "clicks"})
	// Ownership settles first: a partition moving while the bucket elects
	// a leader could not write its lease, which is not what this test is
	// about.
	waitSpread(t, time.Minute, a, b)
	time.Sleep(time.Second)
	// The server that leads the cluster bucket is killed: its streams
	// elect a new leader within the lease TTL, so no lease is lost.
	victim, ingestLeader := streamLeader(t, c, "KV_AOF_CLUSTER"), streamLeader(t, c, "AOF_INGEST")
	t.Logf("killing n%d (leads the cluster bucket; AOF_INGEST is led by n%d)", victim, ingestLeader)
	c.Kill(victim)
	time.Sleep(8 * time.Second)
	c.Start(victim)
	c.WaitReady(time.Minute)
	time.Sleep(2 * time.Second)
	acked, fails := pub.finish()
	if pub.count() < 200 {
		t.Fatalf("only %d messages acked (%d failed)", pub.count(), fails)
	}
	stopInTurn(t, e, a, b)
	js, err := jetstream.New(c.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	e.waitIngestEmpty(js, 30*time.Second)
	e.checkArchiveExactlyOnce(acked, pub.maybe())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, name := range []string{"AOF_INGEST", "AOF_MANIFEST", "KV_AOF_CLUSTER"} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if r := st.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("%s has %d replicas, want 3", name, r)
		}
	}
	lost := strings.Count(e.fullGatewayLog(), "msg=cluster_partition_lost")
	if lost > 0 && noLeaseLost {
		for _, line := range strings.Split(e.fullGatewayLog(), "\n") {
			if strings.Contains(line, "msg=cluster_partition_lost") || strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
				t.Log(line)
			}
		}
		t.Errorf("%d partition leases lost across the loss of one NATS server", lost)
	}
	t.Logf("%d messages acked across the loss of a NATS server (%d publishes failed while it was down), %d leases lost at TTL %v",
		pub.count(), fails, lost, ttl)
}

// streamLeader is the index of the server that leads stream.
func streamLeader(t *testing.T, c *harness.Cluster, stream string) int {
	t.Helper()
	js, err := jetstream.New(c.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil || info.Cluster == nil || len(info.Cluster.Leader) != 2 {
		t.Fatalf("leader of %s: %+v %v", stream, info, err)
	}
	return int(info.Cluster.Leader[1] - '0')
}
