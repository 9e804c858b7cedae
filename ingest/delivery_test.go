package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A delivery lost to the pipeline (here another puller takes it) would be
// redelivered after newer messages and taken for a duplicate; the gap in
// the consumer's delivery sequence restarts the pipeline instead.
func TestLostDeliveryRestartsFromTheAckFloor(t *testing.T) {
	r := newRig(t, time.Second)
	r.publish("x", 1)
	p, err := NewPipeline(r.js, r.store, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	time.Sleep(500 * time.Millisecond)
	nc2, err := nats.Connect(r.js.Conn().ConnectedUrl())
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	js2, _ := jetstream.New(nc2)
	c2, err := js2.Consumer(context.Background(), "AOF_INGEST", "gw")
	if err != nil {
		t.Fatal(err)
	}
	stolen := make(chan struct{})
	go func() {
		defer close(stolen)
		if b, err := c2.Fetch(1, jetstream.FetchMaxWait(3*time.Second)); err == nil {
			for range b.Messages() {
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)
	for i := 1; i < 60; i++ {
		if _, err := r.js.Publish(context.Background(), "aof.ingest.x", []byte(fmt.Sprintf("x-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	<-stolen
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "delivery") {
			t.Fatalf("run after a lost delivery: %v, want the gap reported", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the pipeline did not notice the lost delivery")
	}
	// The restart (as the gateway does) stores everything, once, in order.
	if err := r.run(p); err != nil {
		t.Fatal(err)
	}
	r.expectStored("x", 60)
}

// A consumer deleted under the pipeline is an error, so the gateway
// restarts the pipeline instead of exiting as if it were shut down.
func TestDeletedConsumerIsAnErrorNotAShutdown(t *testing.T) {
	r := newRig(t, 2*time.Second)
	r.publish("d", 1)
	p, err := NewPipeline(r.js, r.store, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- p.Run(context.Background()) }()
	time.Sleep(500 * time.Millisecond)
	if err := r.js.DeleteConsumer(context.Background(), "AOF_INGEST", "gw"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Run returned nil after its consumer was deleted")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after its consumer was deleted")
	}
}

// A pull request waiting on the consumer when the pipeline positions it
// (another process pulling it, or an iterator of an earlier run whose
// unsubscribe has not reached the server) takes the first deliveries
// after the reset. The pipeline sees that its first delivery is not the
// first, starts again a few times, and then gives up with
// ErrDeliveryLost rather than take the later messages for the first.
func TestFirstDeliveriesTakenByAnotherPullRequestAreNotSkipped(t *testing.T) {
	r := newRig(t, time.Second)
	r.publish("x", 5)
	first, err := NewPipeline(r.js, r.store, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.run(first); err != nil {
		t.Fatal(err)
	}
	r.publish("y", 5)
	nc2, err := nats.Connect(r.js.Conn().ConnectedUrl())
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	js2, _ := jetstream.New(nc2)
	c2, err := js2.Consumer(context.Background(), "AOF_INGEST", "gw")
	if err != nil {
		t.Fatal(err)
	}
	// A stray pull request for one message at a time, never acked, so
	// that it takes the first delivery of every start.
	stray, err := c2.Messages(jetstream.PullMaxMessages(1))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			if _, err := stray.Next(); err != nil {
				return
			}
		}
	}()
	time.Sleep(200 * time.Millisecond) // its pull request is waiting
	p, err := NewPipeline(r.js, r.store, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = p.Run(ctx)
	switch {
	case errors.Is(err, ErrDeliveryLost):
		if v, _ := r.store.DedupeView("y"); v.Last != 0 {
			t.Fatalf("stream y stored through %d although its first messages went elsewhere", v.Last)
		}
	case err == nil && ctx.Err() != nil:
		// On a starved machine the stray's request may miss some starts,
		// and the pipeline then gets its first delivery itself. Whatever
		// it stored must then begin at y's first message, without a gap.
		ids := extIDs(t, r.store, "y")
		for i, id := range ids {
			if id != uint64(6+i) {
				t.Fatalf("stream y holds sequences %v: skipped what the stray took", ids)
			}
		}
		t.Logf("the pipeline won the race with the stray puller; y holds %v", ids)
	default:
		t.Fatalf("Run with a stray puller: %v, want ErrDeliveryLost", err)
	}
	stray.Stop()
	nc2.Close()
	if err := r.run(p); err != nil {
		t.Fatal(err)
	}
	r.expectStored("x", 5)
	r.expectStored("y", 5)
}
