package harness

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATS is an embedded JetStream-enabled nats-server on a loopback port.
type NATS struct {
	t        testing.TB
	Server   *server.Server
	URL      string
	Port     int
	StoreDir string
}

// StartNATS starts an embedded nats-server with JetStream and a temporary
// store directory. It is shut down when the test ends.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	n := &NATS{t: t, StoreDir: t.TempDir(), Port: FreePort(t)}
	n.URL = fmt.Sprintf("nats://127.0.0.1:%d", n.Port)
	n.start()
	t.Cleanup(n.Stop)
	return n
}

func (n *NATS) start() {
	n.t.Helper()
	opts := &server.Options{
		ServerName: "aof-test",
		Host:       "127.0.0.1",
		Port:       n.Port,
		JetStream:  true,
		StoreDir:   n.StoreDir,
		NoLog:      true,
		NoSigs:     true,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		n.t.Fatalf("harness: new nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		n.t.Fatalf("harness: nats server not ready on %s", n.URL)
	}
	n.Server = s
}

// Stop shuts the server down; its store directory is kept for Restart.
func (n *NATS) Stop() {
	if n.Server == nil {
		return
	}
	n.Server.Shutdown()
	n.Server.WaitForShutdown()
	n.Server = nil
}

// Restart stops the server and starts it again on the same port with the
// same JetStream store, as a broker restart in production would.
func (n *NATS) Restart() {
	n.t.Helper()
	n.Stop()
	n.start()
}

// Connect returns a client connection closed when the test ends. It
// reconnects forever so tests can restart the server under it.
func (n *NATS) Connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(n.URL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("harness: connect %s: %v", n.URL, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// JetStream returns a JetStream context over a new connection.
func (n *NATS) JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(n.Connect(t))
	if err != nil {
		t.Fatalf("harness: jetstream: %v", err)
	}
	return js
}
