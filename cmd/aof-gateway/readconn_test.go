package main

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/bop-aof/aof/config"
	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/tiers"
)

// The read service subscribes, and so sends its records, on a NATS
// connection of its own, not on the one that carries ingest's acks; it is
// closed when the read service stops.
func TestReadServiceHasANATSConnectionOfItsOwn(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: harness.FreePort(t), NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(srv.Shutdown)
	cfg := config.Default()
	cfg.NATS.URL = srv.ClientURL()
	g := &gateway{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.connectNATS(ctx); err != nil {
		t.Fatal(err)
	}
	defer g.closeNATS()
	if g.store, err = tiers.Open(ctx, tiers.Options{Root: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	defer g.store.Close()
	if err := g.startRead(nil); err != nil {
		t.Fatal(err)
	}

	readSubject := cfg.Read.SubjectPrefix + ".*"
	subsByConn := func() map[string][]string {
		cz, err := srv.Connz(&server.ConnzOptions{Subscriptions: true})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]string{}
		for _, c := range cz.Conns {
			out[c.Name] = append(out[c.Name], c.Subs...)
		}
		return out
	}
	subs := subsByConn()
	if !slices.Contains(subs[readConnName], readSubject) {
		t.Fatalf("connection %s subscribes to %v, want %s; all: %v", readConnName, subs[readConnName], readSubject, subs)
	}
	if slices.Contains(subs["aof-gateway"], readSubject) {
		t.Fatalf("the ingest connection subscribes to %s too: %v", readSubject, subs["aof-gateway"])
	}

	g.stopRead()
	if !g.readNC.IsClosed() {
		t.Fatal("the read service's connection is open after stopRead")
	}
	// The server notices the closed socket on its own goroutine.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, still := subsByConn()[readConnName]; !still {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server still has the read service's connection 5 s after stopRead")
		}
	}
	if g.nc.IsClosed() {
		t.Fatal("stopRead closed the ingest connection")
	}
}
