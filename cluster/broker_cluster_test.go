package cluster

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/integration/harness"
)

// brokerCluster is three JetStream servers routed on loopback.
type brokerCluster struct {
	servers []*server.Server
	urls    []string
}

func startBrokerCluster(t *testing.T) *brokerCluster {
	t.Helper()
	const size = 3
	clientPorts, routePorts := make([]int, size), make([]int, size)
	var routes []*url.URL
	for i := range size {
		clientPorts[i], routePorts[i] = harness.FreePort(t), harness.FreePort(t)
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", routePorts[i])})
	}
	c := &brokerCluster{}
	for i := range size {
		s, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: clientPorts[i],
			JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "aof", Host: "127.0.0.1", Port: routePorts[i]},
			Routes:  routes,
		})
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		t.Cleanup(s.Shutdown)
		c.servers = append(c.servers, s)
		c.urls = append(c.urls, fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i]))
	}
	for _, s := range c.servers {
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("cluster server not ready")
		}
	}
	return c
}

// connect connects to every server, first to the i-th, as a gateway given
// all three URLs does.
func (c *brokerCluster) connect(t *testing.T, i int) jetstream.JetStream {
	t.Helper()
	urls := append([]string{c.urls[i]}, append(append([]string{}, c.urls[:i]...), c.urls[i+1:]...)...)
	nc, err := nats.Connect(strings.Join(urls, ","), nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// On a 3-node NATS cluster with the bucket at R3, losing any one server
// never gives a partition two owners, and every partition has an owner
// again once the remaining two have elected leaders.
func TestLeasesRideThroughTheLossOfOneBroker(t *testing.T) {
	const partitions, ttl = 4, 3 * time.Second
	c := startBrokerCluster(t)
	var b0 *Bucket
	eventually(t, 20*time.Second, "the R3 bucket is created once JetStream has a meta leader", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var err error
		b0, err = EnsureBucket(ctx, c.connect(t, 0), BucketOptions{Replicas: 3})
		return err == nil
	})
	own := newOwnership(t)
	var ms []*Manager
	for i, node := range []string{"gw-a", "gw-b"} {
		b, err := OpenBucket(testCtx(t), c.connect(t, i+1), "")
		if err != nil {
			t.Fatal(err)
		}
		m, err := NewManager(b, ManagerOptions{Node: node, Partitions: partitions, LeaseTTL: ttl, Logger: testLogger()}, own.handler(node))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = m.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		ms = append(ms, m)
	}
	owned := func() bool { return len(ms[0].Owned())+len(ms[1].Owned()) == partitions }
	eventually(t, 10*time.Second, "every partition has an owner", owned)

	// Shut the bucket's stream leader down: the worst server to lose.
	info, err := b0.kv.Status(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	leader := info.(*jetstream.KeyValueBucketStatus).StreamInfo().Cluster.Leader
	for _, s := range c.servers {
		if s.Name() == leader {
			s.Shutdown()
			t.Logf("shut down %s, the leader of the bucket's stream", leader)
		}
	}
	time.Sleep(2 * ttl)
	eventually(t, 4*ttl, "every partition has an owner after the loss", owned)
	before := ms[0].Stats().Acquired + ms[1].Stats().Acquired
	time.Sleep(2 * ttl)
	if after := ms[0].Stats().Acquired + ms[1].Stats().Acquired; after != before || !owned() {
		t.Fatalf("ownership still moving after the loss: %d acquisitions, then %d", before, after)
	}
	t.Logf("stats after the loss: %+v %+v", ms[0].Stats(), ms[1].Stats())
}
