package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/segment"
)

// rig is an embedded JetStream, a real store and a pipeline over them.
type rig struct {
	t     *testing.T
	js    jetstream.JetStream
	store *tiers.Store
	opts  Options
}

func newRig(t *testing.T, ackWait time.Duration) *rig {
	t.Helper()
	n := harness.StartNATS(t)
	js := n.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := EnsureIngestStream(ctx, js, StreamSettings{Name: "AOF_INGEST", Subjects: []string{"aof.ingest.>"}}); err != nil {
		t.Fatal(err)
	}
	if err := EnsureDeadLetterStream(ctx, js, "AOF_INGEST_DEADLETTER", "aof.deadletter"); err != nil {
		t.Fatal(err)
	}
	store, err := tiers.Open(ctx, tiers.Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return &rig{t: t, js: js, store: store, opts: Options{
		Consumer:  ConsumerSettings{Stream: "AOF_INGEST", Durable: "gw", AckWait: ackWait, MaxAckPending: 1000},
		BatchSize: 16,
	}}
}

func (r *rig) publish(stream string, n int) {
	r.t.Helper()
	for i := 0; i < n; i++ {
		if _, err := r.js.Publish(context.Background(), "aof.ingest."+stream, []byte(fmt.Sprintf("%s-%d", stream, i))); err != nil {
			r.t.Fatal(err)
		}
	}
}

// run runs p until every published message is acked, then stops it.
func (r *rig) run(p *Pipeline) error {
	r.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	startsBefore := p.consumerStarts()
	go func() { errc <- p.Run(ctx) }()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case err := <-errc:
			cancel()
			return err
		case <-deadline:
			cancel()
			r.t.Fatal("pipeline did not drain within 60s")
		case <-time.After(20 * time.Millisecond):
		}
		// Run moves the consumer to its ack floor at its start: its
		// state says nothing about this run before that.
		if p.consumerStarts() == startsBefore {
			continue
		}
		c, err := r.js.Consumer(context.Background(), "AOF_INGEST", p.opts.Consumer.Durable)
		if err != nil {
			continue
		}
		info, err := c.Info(context.Background())
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
			cancel()
			return <-errc
		}
	}
}

// expectStored checks stream holds exactly bodies stream-0..n-1, in order, once.
func (r *rig) expectStored(stream string, n int) {
	r.t.Helper()
	rd, err := r.store.Reader(stream)
	if err != nil {
		r.t.Fatal(err)
	}
	defer rd.Close()
	for i := 0; i < n; i++ {
		e, err := rd.TryNext(context.Background())
		if err != nil {
			r.t.Fatalf("%s record %d: %v", stream, i, err)
		}
		env, err := DecodeEnvelope(e.Payload)
		if err != nil {
			r.t.Fatal(err)
		}
		if want := fmt.Sprintf("%s-%d", stream, i); !bytes.Equal(env.Body, []byte(want)) {
			r.t.Fatalf("%s record %d = %q, want %q", stream, i, env.Body, want)
		}
	}
	if e, err := rd.TryNext(context.Background()); err == nil {
		r.t.Fatalf("%s holds an extra record at offset %d: stored twice", stream, e.Offset)
	}
}

// slowStore delays the first appends beyond the ack wait.
type slowStore struct {
	*tiers.Store
	delay time.Duration
	slow  atomic.Int32
}

func (s *slowStore) SyncTo(ctx context.Context, stream string, next uint64) error {
	if s.slow.Add(-1) >= 0 {
		time.Sleep(s.delay)
	}
	return s.Store.SyncTo(ctx, stream, next)
}

func TestAckWaitExpiryRedeliveriesAreNotStoredTwice(t *testing.T) {
	r := newRig(t, 300*time.Millisecond)
	r.publish("slow", 100)
	store := &slowStore{Store: r.store, delay: 900 * time.Millisecond}
	store.slow.Store(2)
	p, err := NewPipeline(r.js, store, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	// Redeliveries pile up behind the slow fsyncs; on a loaded machine the
	// client may drop some (slow consumer), and the pipeline stops with
	// ErrDeliveryLost. The gateway then runs it again, and so does this.
	err = r.run(p)
	for attempt := 0; errors.Is(err, ErrDeliveryLost) && attempt < 5; attempt++ {
		err = r.run(p)
	}
	if err != nil {
		t.Fatal(err)
	}
	if st := p.Status(); st.Duplicates == 0 {
		t.Fatalf("no redelivery was seen (status %+v): the test did not exercise ack-wait expiry", st)
	}
	r.expectStored("slow", 100)
}

func TestNakedMessagesAreRecognisedBySequenceOnRedelivery(t *testing.T) {
	r := newRig(t, 5*time.Second)
	r.publish("nak", 50)
	p, err := NewPipeline(r.js, r.store, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	// The first 20 stored messages are naked instead of acked, as if the
	// ack were lost: JetStream delivers them again at once.
	var naks atomic.Int32
	p.ack = func(m jetstream.Msg) error {
		if naks.Add(1) <= 20 {
			return m.Nak()
		}
		return m.Ack()
	}
	if err := r.run(p); err != nil {
		t.Fatal(err)
	}
	if st := p.Status(); st.Duplicates < 20 || st.Stored != 50 {
		t.Fatalf("status %+v: want 50 stored and the 20 naked ones recognised as duplicates", st)
	}
	r.expectStored("nak", 50)
}

// failingStore fails one append after some have succeeded.
type failingStore struct {
	*tiers.Store
	mu       sync.Mutex
	okBefore int
}

var errDisk = errors.New("injected: disk went away")

func (s *failingStore) Append(ctx context.Context, stream string, recs []segment.Record) (uint64, error) {
	s.mu.Lock()
	s.okBefore--
	fail := s.okBefore == 0
	s.mu.Unlock()
	if fail {
		return 0, errDisk
	}
	return s.Store.Append(ctx, stream, recs)
}

func TestStoreFailureStopsThePipelineAndARestartResumesAtTheAckFloor(t *testing.T) {
	r := newRig(t, 5*time.Second)
	r.publish("a", 60)
	r.publish("b", 60)
	store := &failingStore{Store: r.store, okBefore: 3}
	p, err := NewPipeline(r.js, store, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.run(p); !errors.Is(err, errDisk) {
		t.Fatalf("run: %v, want the store error", err)
	}
	// A new pipeline (a restarted gateway) gets everything not acked,
	// in order, and stores each message once.
	p2, err := NewPipeline(r.js, r.store, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.run(p2); err != nil {
		t.Fatal(err)
	}
	r.expectStored("a", 60)
	r.expectStored("b", 60)
}

func TestEnvelopeRoundTripKeepsSubjectHeadersAndBody(t *testing.T) {
	cases := []Envelope{
		{Subject: "aof.ingest.x", Body: []byte("plain")},
		{Subject: "aof.ingest.y", Header: map[string][]string{"A": {"1", "2"}, "traceparent": {"00-abc-def-01"}}, Body: []byte{}},
		{Subject: "aof.ingest.z", Header: map[string][]string{"K": {""}}, Body: bytes.Repeat([]byte{0, 1, 2}, 1000)},
	}
	for _, c := range cases {
		got, err := DecodeEnvelope(AppendEnvelope(nil, c))
		if err != nil {
			t.Fatalf("%s: %v", c.Subject, err)
		}
		if got.Subject != c.Subject || !bytes.Equal(got.Body, c.Body) || fmt.Sprint(got.Header) != fmt.Sprint(c.Header) {
			if !(len(c.Header) == 0 && len(got.Header) == 0) || got.Subject != c.Subject || !bytes.Equal(got.Body, c.Body) {
				t.Fatalf("round trip of %+v gave %+v", c, got)
			}
		}
	}
	for _, bad := range [][]byte{nil, {2, 0, 0, 0, 0, 0, 0}, {1, 5, 0, 0, 0, 0, 0, 'a'}} {
		if _, err := DecodeEnvelope(bad); !errors.Is(err, ErrEnvelope) {
			t.Fatalf("DecodeEnvelope(%v) = %v, want ErrEnvelope", bad, err)
		}
	}
}

func TestStreamFromSubject(t *testing.T) {
	for _, c := range []struct {
		subject, stream, errPart string
	}{
		{"aof.ingest.orders", "orders", ""},
		{"aof.ingest.Orders_2-x", "Orders_2-x", ""},
		{"aof.ingest.a.b", "", "one token"},
		{"aof.other.a", "", "not under"},
		{"aof.ingest.bad$", "", "stream name"},
	} {
		got, err := StreamFromSubject("aof.ingest", c.subject)
		if c.errPart == "" && (err != nil || got != c.stream) {
			t.Errorf("%s: got %q, %v; want %q", c.subject, got, err, c.stream)
		}
		if c.errPart != "" && (err == nil || !bytes.Contains([]byte(err.Error()), []byte(c.errPart))) {
			t.Errorf("%s: error %v, want one containing %q", c.subject, err, c.errPart)
		}
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(AppendEnvelope(nil, Envelope{Subject: "aof.ingest.x", Header: map[string][]string{"A": {"b"}}, Body: []byte("c")}))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0})
	// Header blocks a NATS parser reads otherwise than DecodeEnvelope: a
	// blank line inside, a line with no ": ", a line "K:v".
	for _, hdr := range []string{"NATS/1.0\r\nA: 1\r\n\r\nB: 2\r\n\r\n", "NATS/1.0\r\nBad\r\n\r\n", "NATS/1.0\r\nK:v\r\n\r\n"} {
		b := []byte{EnvelopeVersion, 1, 0, byte(len(hdr)), 0, 0, 0, 'x'}
		f.Add(append(append(b, hdr...), "body"...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEnvelope(b)
		subject, hdr, body, perr := EnvelopeParts(b)
		if (err == nil) != (perr == nil) {
			t.Fatalf("EnvelopeParts says %v where DecodeEnvelope says %v", perr, err)
		}
		if err != nil {
			return
		}
		// What the read API's packs send is what decodes: the subject,
		// the body, and headers that a NATS client's parser reads as a
		// message per record gives them (its header map, written by
		// nats.go as encodeHeader writes it, parsed by nats.go).
		if string(subject) != e.Subject || !bytes.Equal(body, e.Body) {
			t.Fatalf("EnvelopeParts disagrees with DecodeEnvelope: %q %q", subject, body)
		}
		if len(e.Header) > 0 || len(hdr) > 0 {
			viaPack, perr := nats.DecodeHeadersMsg(hdr)
			viaMsg, merr := nats.DecodeHeadersMsg(encodeHeader(e.Header))
			if (perr == nil) != (merr == nil) || !reflect.DeepEqual(viaPack, viaMsg) {
				t.Fatalf("headers in a pack %v (%v), in a message per record %v (%v)", viaPack, perr, viaMsg, merr)
			}
		}
		again, err := DecodeEnvelope(AppendEnvelope(nil, e))
		if err != nil || again.Subject != e.Subject || !bytes.Equal(again.Body, e.Body) {
			t.Fatalf("re-encoding a decoded envelope changed it: %+v vs %+v (%v)", e, again, err)
		}
	})
}

// A write that fails (disk full) after some records were appended must not
// let any of them be acked, nor let their redeliveries pass for
// duplicates: the stream is held, and once it resumes, without a restart
// of the pipeline, every message ends up stored once, in order.
func TestFailedWriteLosesNoMessageWhileItsStreamIsHeld(t *testing.T) {
	n := harness.StartNATS(t)
	js := n.JetStream(t)
	ctx := context.Background()
	if _, err := EnsureIngestStream(ctx, js, StreamSettings{Name: "AOF_INGEST", Subjects: []string{"aof.ingest.>"}}); err != nil {
		t.Fatal(err)
	}
	if err := EnsureDeadLetterStream(ctx, js, "AOF_INGEST_DEADLETTER", "aof.deadletter"); err != nil {
		t.Fatal(err)
	}
	ffs := vfs.NewFaultFS(nil)
	store, err := tiers.Open(ctx, tiers.Options{Root: t.TempDir(), FS: ffs})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	r := &rig{t: t, js: js, store: store, opts: Options{
		Consumer:  ConsumerSettings{Stream: "AOF_INGEST", Durable: "gw", AckWait: 5 * time.Second, MaxAckPending: 1000},
		BatchSize: 16,
	}}
	p, err := NewPipeline(js, store, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	r.publish("a", 1)
	if err := r.run(p); err != nil {
		t.Fatal(err)
	}
	fault := ffs.Inject(vfs.Fault{Op: vfs.OpSync, Match: func(s string) bool { return strings.HasSuffix(s, ".seg") }, Times: 1, Err: vfs.ENOSPC})
	for i := 1; i <= 40; i++ {
		if _, err := js.Publish(ctx, "aof.ingest.a", []byte(fmt.Sprintf("a-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// The failed fsync holds the stream instead of stopping the
	// pipeline; the same Run resumes it.
	err = r.run(p)
	for attempt := 0; errors.Is(err, ErrDeliveryLost) && attempt < 5; attempt++ {
		err = r.run(p)
	}
	if err != nil {
		t.Fatalf("run with a failing fsync: %v, want the stream held and resumed", err)
	}
	if fault.Fired() != 1 {
		t.Fatalf("the fsync fault fired %d times, want 1", fault.Fired())
	}
	r.expectStored("a", 41)
}

// A gateway whose partition lease may have expired stores what it has in
// hand but acks none of it: the acks would land on the consumer the next
// owner pulls and take its pending messages off their redeliveries.
func TestNoAckOnceTheLeaseMayHaveExpired(t *testing.T) {
	r := newRig(t, time.Minute)
	r.publish("orders", 5)
	opts := r.opts
	opts.MayAck = func() bool { return false }
	p, err := NewPipeline(r.js, r.store, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for p.Status().Stored < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("stored %d of 5", p.Status().Stored)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c, err := r.js.Consumer(context.Background(), "AOF_INGEST", "gw")
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.AckFloor.Stream != 0 || info.NumAckPending != 5 {
		t.Fatalf("ack floor %d, %d pending: want nothing acked", info.AckFloor.Stream, info.NumAckPending)
	}
	r.expectStored("orders", 5)
}
