package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/bop-aof/aof/config"
	"github.com/bop-aof/aof/integration/harness"
)

// lockedBuffer is a log sink written by the connection's callback
// goroutine and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestNATSPermissionRefusalIsLoggedAsAStructuredEvent: a publish the NATS
// server refuses reaches the gateway's log as a nats_async_error event
// naming the subject and the error, not as nats.go's raw stderr line, and
// the event carries no credentials.
func TestNATSPermissionRefusalIsLoggedAsAStructuredEvent(t *testing.T) {
	const password = "gw-secret-pw"
	port := harness.FreePort(t)
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir(),
		Users: []*server.User{{Username: "gateway", Password: password, Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"aof.forbidden"}},
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(srv.Shutdown)

	cfg := config.Default()
	cfg.NATS.URL = fmt.Sprintf("nats://127.0.0.1:%d", port)
	cfg.NATS.User, cfg.NATS.Password = "gateway", password
	var logs lockedBuffer
	g := &gateway{cfg: cfg, log: slog.New(slog.NewJSONHandler(&logs, nil))}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.connectNATS(ctx); err != nil {
		t.Fatal(err)
	}
	defer g.closeNATS()
	if err := g.nc.Publish("aof.forbidden", []byte("x")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "nats_async_error"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no nats_async_error event after a refused publish; log:\n%s", logs.String())
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if ev["msg"] != "nats_async_error" {
			continue
		}
		if ev["subject"] != "aof.forbidden" || !strings.Contains(fmt.Sprint(ev["err"]), "Permissions Violation") {
			t.Errorf("event %v: want subject aof.forbidden and the permissions violation", ev)
		}
	}
	if strings.Contains(logs.String(), password) {
		t.Errorf("the log shows the NATS password:\n%s", logs.String())
	}
}
