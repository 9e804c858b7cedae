package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/integration/harness"
)

// A JetStream publish whose ack never comes (a subscriber took it that is
// not a stream) fails the replay after the timeout, naming the offset,
// rather than waiting for ever; the offset stays the first unconfirmed
// one, where a second run starts.
func TestReplayStopsWhenAnAckDoesNotComeWithinTheTimeout(t *testing.T) {
	n := harness.StartNATS(t)
	nc := n.Connect(t)
	silent := n.Connect(t)
	if _, err := silent.Subscribe("lost.>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if err := silent.Flush(); err != nil {
		t.Fatal(err)
	}
	pub, err := newPublisher(nc, true, 4, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	var failed error
	for off := uint64(40); off < 50 && failed == nil; off++ {
		failed = pub.publish(ctx, &nats.Msg{Subject: "lost.x", Data: []byte("r")}, off)
	}
	if failed == nil {
		_, failed = pub.finish(ctx)
	}
	if !errors.Is(failed, jetstream.ErrAsyncPublishTimeout) || !strings.Contains(failed.Error(), "offset 40") {
		t.Fatalf("err = %v, want a publish timeout of offset 40", failed)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the replay gave up after %v, with a timeout of 300ms", d)
	}
	if got := pub.unconfirmed(50); got != 40 {
		t.Fatalf("first unconfirmed offset %d, want 40", got)
	}
}
