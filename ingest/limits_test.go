package ingest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/tiers"
)

// publishBody publishes one message with body to stream.
func (r *rig) publishBody(stream, body string) {
	r.t.Helper()
	if _, err := r.js.Publish(context.Background(), "aof.ingest."+stream, []byte(body)); err != nil {
		r.t.Fatal(err)
	}
}

// deadLetters returns every message of the dead-letter stream.
func deadLetters(t *testing.T, js jetstream.JetStream) []jetstream.Msg {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, "AOF_INGEST_DEADLETTER")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := int(info.State.Msgs)
	if n == 0 {
		return nil
	}
	c, err := js.OrderedConsumer(ctx, "AOF_INGEST_DEADLETTER", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.Msg
	for len(out) < n {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("dead letter %d of %d: %v", len(out)+1, n, err)
		}
		out = append(out, m)
	}
	return out
}

// A message under ingest.max_record_bytes but larger than the whole Tier 0
// budget can never be admitted: it used to fail the pipeline on every
// restart, wedging all ingest. It is dead-lettered with a reason naming
// the limit, and everything after it is stored.
func TestMessageLargerThanTier0BudgetIsDeadLettered(t *testing.T) {
	r := newRig(t, 5*time.Second)
	store, err := tiers.Open(context.Background(), tiers.Options{
		Root: t.TempDir(), Tier0MaxBytes: 64 << 10, SegmentTargetBytes: 16 << 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	r.store = store // MaxRecordBytes stays at its 1 MiB default

	r.publishBody("a", "a-0")
	r.publishBody("a", "a-1")
	r.publishBody("a", strings.Repeat("x", 100<<10))
	for i := 2; i < 20; i++ {
		r.publishBody("a", fmt.Sprintf("a-%d", i))
	}
	r.publish("b", 20)
	p, err := NewPipeline(r.js, store, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.run(p); err != nil {
		t.Fatalf("run: %v", err)
	}
	r.expectStored("a", 20)
	r.expectStored("b", 20)
	dls := deadLetters(t, r.js)
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dls))
	}
	dl := dls[0]
	if reason := dl.Headers().Get(HeaderError); !strings.Contains(reason, "tier0.cluster_max_bytes") {
		t.Fatalf("dead letter reason %q does not name tier0.cluster_max_bytes", reason)
	}
	if dl.Subject() != "aof.deadletter.a" || dl.Headers().Get(HeaderOriginalSeq) != "3" || len(dl.Data()) != 100<<10 {
		t.Fatalf("dead letter on %s, original sequence %s, %d bytes", dl.Subject(), dl.Headers().Get(HeaderOriginalSeq), len(dl.Data()))
	}

	// A restart neither fails on it again nor dead-letters it twice.
	r.publish("c", 5)
	p2, err := NewPipeline(r.js, store, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.run(p2); err != nil {
		t.Fatalf("run after restart: %v", err)
	}
	r.expectStored("c", 5)
	if n := len(deadLetters(t, r.js)); n != 1 {
		t.Fatalf("%d dead letters after the restart, want 1", n)
	}
}

// Every valid subject token used to create a stream for good, each with
// files held open. Beyond ingest.max_streams, counting the streams the
// store already holds on disk, messages for a new stream are
// dead-lettered; existing streams, and new ones within the limit, go on.
func TestStreamsBeyondMaxStreamsAreDeadLettered(t *testing.T) {
	r := newRig(t, 5*time.Second)
	root := t.TempDir()
	ctx := context.Background()
	store, err := tiers.Open(ctx, tiers.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	r.store = store
	r.publish("old1", 3)
	r.publish("old2", 3)
	p, err := NewPipeline(r.js, store, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.run(p); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	// A restarted gateway finds old1 and old2 on disk: with a limit of
	// three streams, one new stream fits.
	if store, err = tiers.Open(ctx, tiers.Options{Root: root}); err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	r.store = store
	r.opts.MaxStreams = 3
	for i := 3; i < 6; i++ {
		r.publishBody("old1", fmt.Sprintf("old1-%d", i))
	}
	r.publish("new1", 4)
	r.publish("new2", 2)
	r.publish("new3", 1)
	for i := 3; i < 5; i++ {
		r.publishBody("old2", fmt.Sprintf("old2-%d", i))
	}
	p, err = NewPipeline(r.js, store, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.run(p); err != nil {
		t.Fatalf("run: %v", err)
	}
	r.expectStored("old1", 6)
	r.expectStored("old2", 5)
	r.expectStored("new1", 4)
	if got := store.Streams(); fmt.Sprint(got) != "[new1 old1 old2]" {
		t.Fatalf("store streams %v, want [new1 old1 old2]", got)
	}
	dls := deadLetters(t, r.js)
	if len(dls) != 3 {
		t.Fatalf("%d dead letters, want the 3 messages of new2 and new3", len(dls))
	}
	for _, dl := range dls {
		if reason := dl.Headers().Get(HeaderError); !strings.Contains(reason, "ingest.max_streams (3)") {
			t.Fatalf("dead letter on %s: reason %q does not name ingest.max_streams", dl.Subject(), reason)
		}
		if s := dl.Subject(); s != "aof.deadletter.new2" && s != "aof.deadletter.new3" {
			t.Fatalf("dead letter on %s", s)
		}
	}

	// After another restart the admitted stream is one the store holds.
	r.publishBody("new1", "new1-4")
	r.publishBody("new2", "refused")
	p, err = NewPipeline(r.js, store, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.run(p); err != nil {
		t.Fatalf("run after restart: %v", err)
	}
	r.expectStored("new1", 5)
	if n := len(deadLetters(t, r.js)); n != 4 {
		t.Fatalf("%d dead letters after the restart, want 4", n)
	}
}
