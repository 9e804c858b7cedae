package aofclient_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/readservice"
	"github.com/bop-aof/aof/tiers"
)

// gateway is what the examples and tests read from: an embedded
// nats-server and a store in a temporary directory served by the read
// service, as aof-gateway runs them.
type gateway struct {
	ns    *server.Server
	store *tiers.Store
	svc   *readservice.Service
	nc    *nats.Conn // the service's connection
	dir   string
}

// startGateway starts a gateway; it panics on failure, so examples
// (which have no *testing.T) can use it too.
func startGateway() *gateway {
	dir, err := os.MkdirTemp("", "aofclient-example-")
	must(err)
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	must(err)
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		panic("nats-server not ready")
	}
	g := &gateway{ns: ns, dir: dir}
	g.store, err = tiers.Open(context.Background(), tiers.Options{Root: dir, SegmentTargetBytes: 1 << 20, FrameBytes: 1 << 10, CompressionWorkers: 1})
	must(err)
	g.startService()
	return g
}

func (g *gateway) startService() {
	nc, err := nats.Connect(g.ns.ClientURL())
	must(err)
	g.nc = nc
	g.svc, err = readservice.New(nc, g.store, readservice.Options{})
	must(err)
}

// stopService stops the read service as a gateway restart does.
func (g *gateway) stopService() {
	g.svc.Stop()
	g.nc.Close()
}

// connect is a reader's connection.
func (g *gateway) connect() *nats.Conn {
	nc, err := nats.Connect(g.ns.ClientURL())
	must(err)
	return nc
}

func (g *gateway) close() {
	g.stopService()
	must(g.store.Close())
	g.ns.Shutdown()
	os.RemoveAll(g.dir)
}

// publish stores messages i in [from, from+n) on stream "orders" as
// ingest would: subject orders.created, a header, a body.
func (g *gateway) publish(from, n int) {
	recs := make([]tiers.Record, 0, n)
	for i := from; i < from+n; i++ {
		env := ingest.Envelope{Subject: "orders.created", Header: map[string][]string{"Order": {fmt.Sprint(i)}},
			Body: fmt.Appendf(nil, "order %d", i)}
		recs = append(recs, tiers.Record{Payload: ingest.AppendEnvelope(nil, env), ExtID: uint64(100 + i)})
	}
	must(g.store.AppendDurable(context.Background(), "orders", recs))
}

// sealAndEvict seals the active segment of "orders" and, once it is in
// Tier 1, removes its Tier 0 file.
func (g *gateway) sealAndEvict() {
	id, err := g.store.Seal(context.Background(), "orders", false)
	must(err)
	for {
		for _, st := range g.store.Segments("orders") {
			if st.Segment == id && st.InTier1 {
				must(g.store.EvictTier0(context.Background(), "orders", id))
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
