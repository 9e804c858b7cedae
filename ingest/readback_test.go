package ingest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/readapi"
)

// A message that fits JetStream but whose read answer (its body and
// headers plus the read API's own headers) would not fit the server's
// max_payload was stored, then answered with 413 on every read: Read and
// Follow stopped at its offset for good. It is dead-lettered with a reason
// naming the limit; one a byte smaller is stored, and what follows goes on.
func TestMessageTooLargeToReadBackIsDeadLettered(t *testing.T) {
	r := newRig(t, 5*time.Second)
	r.opts.MaxRecordBytes = 4 << 20 // only the read answer's limit applies
	limit := int(r.js.Conn().MaxPayload())
	const subject = "aof.ingest.big"
	fit := limit - readapi.RecordHeaderOverhead(subject, "big")

	ctx := context.Background()
	publish := func(m *nats.Msg) {
		t.Helper()
		if _, err := r.js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	tooBig := nats.NewMsg(subject)
	tooBig.Data = make([]byte, fit+1)
	publish(tooBig)
	withHeader := nats.NewMsg(subject)
	withHeader.Header.Set("X-Trace", "abc")
	withHeader.Data = make([]byte, fit) // fits alone, not with its header
	publish(withHeader)
	justFits := nats.NewMsg(subject)
	justFits.Data = []byte(strings.Repeat("y", fit))
	publish(justFits)
	r.publish("big", 3)

	p, err := NewPipeline(r.js, r.store, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.run(p); err != nil {
		t.Fatalf("run: %v", err)
	}
	dls := deadLetters(t, r.js)
	if len(dls) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dls))
	}
	for i, dl := range dls {
		reason := dl.Headers().Get(HeaderError)
		if !strings.Contains(reason, "max_payload") {
			t.Fatalf("dead letter %d reason %q does not name max_payload", i, reason)
		}
		if want := []string{"1", "2"}[i]; dl.Headers().Get(HeaderOriginalSeq) != want {
			t.Fatalf("dead letter %d of original sequence %s, want %s", i, dl.Headers().Get(HeaderOriginalSeq), want)
		}
	}
	rd, err := r.store.Reader("big")
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var bodies []string
	for {
		e, err := rd.TryNext(ctx)
		if err != nil {
			break
		}
		env, err := DecodeEnvelope(e.Payload)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, string(env.Body))
	}
	want := []string{strings.Repeat("y", fit), "big-0", "big-1", "big-2"}
	if len(bodies) != len(want) {
		t.Fatalf("stored %d records, want %d", len(bodies), len(want))
	}
	for i := range want {
		if bodies[i] != want[i] {
			t.Fatalf("record %d is %d bytes %.10q, want %d bytes %.10q", i, len(bodies[i]), bodies[i], len(want[i]), want[i])
		}
	}
}
