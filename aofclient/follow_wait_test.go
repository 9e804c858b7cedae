package aofclient_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/aofclient"
)

// At the tail a follower knows its gateway is alive by the heartbeats,
// not by a request timeout: a timeout shorter than three heartbeats must
// not make it take a quiet stream for a lost gateway and ask again every
// few hundred milliseconds (each abandoned request holds a slot of the
// gateway's read.max_concurrent until it expires).
func TestFollowAtAQuietTailDoesNotAskAgainWhileHeartbeatsArrive(t *testing.T) {
	g := startGateway()
	defer g.close()
	g.publish(0, 3)
	spy := g.connect()
	var requests atomic.Int32
	sub, err := spy.Subscribe("aof.read.orders", func(*nats.Msg) { requests.Add(1) })
	must(err)
	defer sub.Unsubscribe()
	must(spy.Flush())

	c := newClient(t, g, aofclient.WithTimeout(300*time.Millisecond)) // shorter than the default heartbeat
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	seen := 0
	for _, err := range c.Follow(ctx, "orders") {
		if err != nil {
			break
		}
		seen++
	}
	if seen != 3 {
		t.Fatalf("follow yielded %d records, want 3", seen)
	}
	// One request reaches the tail and waits there (its expiry is longer
	// than the test); a second one may follow a batch that ended.
	if n := requests.Load(); n > 2 {
		t.Fatalf("follow sent %d requests in 3 s on a quiet stream with a live gateway, want at most 2", n)
	}
}
