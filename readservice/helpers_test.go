package readservice

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/readapi"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/tier2"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fixture is a store in a temp dir served by a Service on an embedded
// nats-server, with a client connection.
type fixture struct {
	store *tiers.Store
	nc    *nats.Conn
	svc   *Service
}

func newFixture(t *testing.T) *fixture {
	return newFixtureWith(t, nil, Options{})
}

// newFixtureWith opens the store with Tier 2 bucket t2 (none when nil) and
// starts the service with opts.
func newFixtureWith(t *testing.T, t2 tier2.Bucket, opts Options) *fixture {
	t.Helper()
	return newFixtureOn(t, tiers.Options{Tier2: t2}, opts)
}

// newFixtureOn opens the store with so (in a temp dir, with small
// segments and frames) and starts the service with opts.
func newFixtureOn(t *testing.T, so tiers.Options, opts Options) *fixture {
	t.Helper()
	n := harness.StartNATS(t)
	so.Root, so.SegmentTargetBytes, so.FrameBytes, so.CompressionWorkers = t.TempDir(), 1<<20, 1<<10, 1
	s, err := tiers.Open(testCtx(t), so)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	svc, err := New(n.Connect(t), s, opts)
	if err != nil {
		t.Fatalf("start read service: %v", err)
	}
	t.Cleanup(svc.Stop)
	return &fixture{store: s, nc: n.Connect(t), svc: svc}
}

// message is the NATS message of record i of stream as ingest stored it.
func message(stream string, i int) ingest.Envelope {
	return ingest.Envelope{
		Subject: fmt.Sprintf("aof.ingest.%s.%d", stream, i%3),
		Header:  map[string][]string{"Seq": {fmt.Sprint(i)}, "Nats-Msg-Id": {fmt.Sprintf("id-%d", i)}},
		Body:    fmt.Appendf(nil, "%s message %04d", stream, i),
	}
}

// appendN appends records from..from+n-1 of stream with ext id extOf(i).
func appendN(t *testing.T, s *tiers.Store, stream string, from, n int, extOf func(int) uint64) {
	t.Helper()
	recs := make([]tiers.Record, 0, n)
	for i := from; i < from+n; i++ {
		recs = append(recs, tiers.Record{Payload: ingest.AppendEnvelope(nil, message(stream, i)), ExtID: extOf(i)})
	}
	if err := s.AppendDurable(testCtx(t), stream, recs); err != nil {
		t.Fatalf("append %d..%d: %v", from, from+n-1, err)
	}
}

func seqPlusOne(i int) uint64 { return uint64(i + 1) }

// seal seals stream's active segment and waits for its Tier 1 copy.
func seal(t *testing.T, s *tiers.Store, stream string) uint64 {
	t.Helper()
	id, err := s.Seal(testCtx(t), stream, false)
	if err != nil || id == 0 {
		t.Fatalf("seal %s: id %d, %v", stream, id, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !inTier1(s, stream, id) {
		if time.Now().After(deadline) {
			t.Fatalf("segment %d of %s not in Tier 1", id, stream)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return id
}

func inTier1(s *tiers.Store, stream string, id uint64) bool {
	for _, st := range s.Segments(stream) {
		if st.Segment == id {
			return st.InTier1
		}
	}
	return false
}

// answer is what one request got: the record messages, the heartbeats
// and the final control message.
type answer struct {
	records    []*nats.Msg
	heartbeats int
	final      *nats.Msg
}

func (a answer) status() string { return a.final.Header.Get(readapi.HeaderStatus) }

func (a answer) eob(t *testing.T) readapi.EndOfBatch {
	t.Helper()
	if a.status() != readapi.StatusEndOfBatch {
		t.Fatalf("final message has status %q (%s), want end of batch", a.status(), a.final.Data)
	}
	var eob readapi.EndOfBatch
	if err := json.Unmarshal(a.final.Data, &eob); err != nil {
		t.Fatalf("decode end of batch %s: %v", a.final.Data, err)
	}
	return eob
}

func (a answer) err(t *testing.T) readapi.Error {
	t.Helper()
	var e readapi.Error
	if err := json.Unmarshal(a.final.Data, &e); err != nil {
		t.Fatalf("decode error %s: %v", a.final.Data, err)
	}
	return e
}

// request sends req to stream's read subject and collects the answer,
// taking each message after delay (a slow reader).
func request(t *testing.T, nc *nats.Conn, stream string, req any, delay time.Duration) answer {
	t.Helper()
	sub := send(t, nc, stream, req)
	defer sub.Unsubscribe()
	return collect(t, sub, delay)
}

// send sends req to stream's read subject; the answer comes to sub.
func send(t *testing.T, nc *nats.Conn, stream string, req any) *nats.Subscription {
	t.Helper()
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(req)
	m := &nats.Msg{Subject: readapi.DefaultSubjectPrefix + "." + stream, Reply: inbox, Data: body, Header: nats.Header{}}
	m.Header.Set(readapi.APIVersionHeader, readapi.APIVersion)
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	return sub
}

// collect takes the answer from sub up to its final message.
func collect(t *testing.T, sub *nats.Subscription, delay time.Duration) answer {
	t.Helper()
	var a answer
	for {
		time.Sleep(delay)
		msg, err := sub.NextMsg(20 * time.Second)
		if err != nil {
			t.Fatalf("answer on %s after %d records: %v", sub.Subject, len(a.records), err)
		}
		switch msg.Header.Get(readapi.HeaderStatus) {
		case "":
			a.records = append(a.records, msg)
		case readapi.StatusHeartbeat:
			a.heartbeats++
		default:
			a.final = msg
			return a
		}
	}
}

// checkRecords checks that msgs are records from..from+len(msgs)-1 of
// stream exactly as ingested: subject, headers, body, offset, sequence.
func checkRecords(t *testing.T, stream string, msgs []*nats.Msg, from int, extOf func(int) uint64) {
	t.Helper()
	for k, m := range msgs {
		i := from + k
		want := message(stream, i)
		h := m.Header
		if got := h.Get(readapi.HeaderOffset); got != fmt.Sprint(i) {
			t.Fatalf("record %d: offset %s", i, got)
		}
		if got := h.Get(readapi.HeaderSeq); got != fmt.Sprint(extOf(i)) {
			t.Fatalf("record %d: seq %s, want %d", i, got, extOf(i))
		}
		if h.Get(readapi.HeaderSubject) != want.Subject || h.Get(readapi.HeaderStream) != stream {
			t.Fatalf("record %d: subject %q stream %q", i, h.Get(readapi.HeaderSubject), h.Get(readapi.HeaderStream))
		}
		for k, v := range want.Header {
			if h.Get(k) != v[0] {
				t.Fatalf("record %d: header %s = %q, want %q", i, k, h.Get(k), v[0])
			}
		}
		if _, err := time.Parse(time.RFC3339Nano, h.Get(readapi.HeaderTime)); err != nil {
			t.Fatalf("record %d: Aof-Time %q: %v", i, h.Get(readapi.HeaderTime), err)
		}
		if string(m.Data) != string(want.Body) {
			t.Fatalf("record %d: body %q, want %q", i, m.Data, want.Body)
		}
	}
}

// natsMsg is an empty read request to subject with the given API version.
func natsMsg(subject, reply, version string) *nats.Msg {
	m := &nats.Msg{Subject: subject, Reply: reply, Header: nats.Header{}}
	m.Header.Set(readapi.APIVersionHeader, version)
	return m
}
