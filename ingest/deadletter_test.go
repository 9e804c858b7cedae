package ingest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// nextDeadLetter returns the next message of the dead-letter stream.
func nextDeadLetter(t *testing.T, js jetstream.JetStream) jetstream.Msg {
	t.Helper()
	c, err := js.OrderedConsumer(context.Background(), "AOF_INGEST_DEADLETTER", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatalf("no dead letter: %v", err)
	}
	return m
}

// A producer's Nats-Expected-Stream (or rollup, TTL...) header was meant
// for the ingest stream: copied onto the dead-letter publish it made that
// publish fail forever and blocked all ingest.
func TestDeadLetterDoesNotApplyTheProducersNatsHeaders(t *testing.T) {
	r := newRig(t, 2*time.Second)
	r.opts.MaxRecordBytes = 100
	m := nats.NewMsg("aof.ingest.dl")
	m.Header.Set("Nats-Expected-Stream", "AOF_INGEST")
	m.Data = make([]byte, 500)
	if _, err := r.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	r.publish("dl", 3)
	p, err := NewPipeline(r.js, r.store, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.run(p); err != nil {
		t.Fatalf("run: %v", err)
	}
	if st := p.Status(); st.DeadLetters != 1 {
		t.Fatalf("status %+v: want one dead letter", st)
	}
	dl := nextDeadLetter(t, r.js)
	if dl.Headers().Get("Aof-Original-Nats-Expected-Stream") != "AOF_INGEST" || dl.Headers().Get("Nats-Expected-Stream") != "" {
		t.Fatalf("dead letter headers: %v", dl.Headers())
	}
	r.expectStored("dl", 3)
}

// A message just under the server's payload limit grows past it with the
// dead-letter headers: its body is cut to fit and the cut is recorded.
func TestDeadLetterAtTheServerPayloadLimitIsTruncatedNotRetriedForever(t *testing.T) {
	r := newRig(t, 2*time.Second)
	limit := int(r.js.Conn().MaxPayload())
	if _, err := r.js.Publish(context.Background(), "aof.ingest.big", make([]byte, limit-10)); err != nil {
		t.Fatal(err)
	}
	p, err := NewPipeline(r.js, r.store, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.run(p); err != nil {
		t.Fatalf("run: %v", err)
	}
	dl := nextDeadLetter(t, r.js)
	if dl.Headers().Get(HeaderTruncated) != fmt.Sprint(limit-10) || len(dl.Data()) >= limit-10 {
		t.Fatalf("dead letter of %d bytes, headers %v", len(dl.Data()), dl.Headers())
	}
}
