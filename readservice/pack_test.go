package readservice

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/readapi"
)

// unpack decodes the pack messages of an answer into their records, and
// checks each is a pack of stream.
func unpack(t *testing.T, stream string, msgs []*nats.Msg) []readapi.PackRecord {
	t.Helper()
	var recs []readapi.PackRecord
	for i, m := range msgs {
		if m.Header.Get(readapi.HeaderPack) != "1" || m.Header.Get(readapi.HeaderStream) != stream ||
			m.Header.Get(readapi.HeaderOffset) != "" {
			t.Fatalf("message %d of the answer is not a pack of %s: %v", i, stream, m.Header)
		}
		var err error
		if recs, err = readapi.DecodePack(m.Data, recs); err != nil {
			t.Fatalf("pack %d: %v", i, err)
		}
	}
	return recs
}

// checkPacked checks that recs are records from..from+len(recs)-1 of
// stream exactly as ingested, as checkRecords does for a message each.
func checkPacked(t *testing.T, stream string, recs []readapi.PackRecord, from int, extOf func(int) uint64) {
	t.Helper()
	for k, r := range recs {
		i := from + k
		want := message(stream, i)
		h, err := nats.DecodeHeadersMsg(r.Header)
		if err != nil {
			t.Fatalf("record %d: header block %q: %v", i, r.Header, err)
		}
		if r.Offset != uint64(i) || r.Seq != extOf(i) || string(r.Subject) != want.Subject || r.Raw ||
			string(r.Body) != string(want.Body) || r.TimeMS == 0 {
			t.Fatalf("record %d: %+v", i, r)
		}
		for k, v := range want.Header {
			if h.Get(k) != v[0] {
				t.Fatalf("record %d: header %s = %q, want %q", i, k, h.Get(k), v[0])
			}
		}
	}
}

// TestPackedReadStopsAtTheSameBoundsWithTheSameNextPosition: a request
// for packs ends where the same request for a message per record ends
// (max_msgs, max_bytes, the tail), with the same end of batch, across
// Tier 0 and Tier 1.
func TestPackedReadStopsAtTheSameBoundsWithTheSameNextPosition(t *testing.T) {
	f := newFixture(t)
	appendN(t, f.store, "orders", 0, 300, seqPlusOne)
	seal(t, f.store, "orders")
	appendN(t, f.store, "orders", 300, 200, seqPlusOne)
	for _, req := range []readapi.Request{
		{StartOffset: 10, MaxMsgs: 250},
		{StartOffset: 280, MaxBytes: 1000},
		{StartOffset: 100},
		{StartOffset: 0, MaxMsgs: 10000},
	} {
		single := request(t, f.nc, "orders", req, 0)
		req.Pack = true
		packed := request(t, f.nc, "orders", req, 0)
		recs := unpack(t, "orders", packed.records)
		if len(recs) != len(single.records) {
			t.Fatalf("%+v: %d records in packs, %d one by one", req, len(recs), len(single.records))
		}
		checkPacked(t, "orders", recs, int(req.StartOffset), seqPlusOne)
		if pe, se := packed.eob(t), single.eob(t); pe != se {
			t.Fatalf("%+v: end of batch %+v in packs, %+v one by one", req, pe, se)
		}
		if len(recs) > 1 && len(packed.records) >= len(recs) {
			t.Fatalf("%+v: %d records took %d packs", req, len(recs), len(packed.records))
		}
	}
}

// TestPackedFollowSendsEachRecordAsItComesInOneBatch: a follow request
// for packs that waits at the tail sends each record appended meanwhile
// in a pack as it comes, and its batch stays open for the next one until
// the request's expiry, counted from its start, ends it at the tail.
func TestPackedFollowSendsEachRecordAsItComesInOneBatch(t *testing.T) {
	f := newFixture(t)
	appendN(t, f.store, "orders", 0, 5, seqPlusOne)
	const expires = 5 * time.Second
	start := time.Now()
	sub := send(t, f.nc, "orders", readapi.Request{StartOffset: 5, Follow: true, ExpiresMS: expires.Milliseconds(), Pack: true})
	defer sub.Unsubscribe()
	for i := 5; i < 8; i++ {
		time.Sleep(100 * time.Millisecond) // the request waits at the tail
		appendN(t, f.store, "orders", i, 1, seqPlusOne)
		m, err := sub.NextMsg(20 * time.Second)
		if err != nil {
			t.Fatalf("no pack after record %d was appended: %v", i, err)
		}
		if m.Header.Get(readapi.HeaderStatus) != "" {
			t.Fatalf("after record %d: status %s (%s) where a pack of it was due", i, m.Header.Get(readapi.HeaderStatus), m.Data)
		}
		checkPacked(t, "orders", unpack(t, "orders", []*nats.Msg{m}), i, seqPlusOne)
	}
	a := collect(t, sub, 0)
	if eob := a.eob(t); eob.NextOffset != 8 || eob.Records != 3 || eob.Reason != readapi.ReasonTail || len(a.records) != 0 {
		t.Fatalf("after the packs: %d more messages, end of batch %+v", len(a.records), eob)
	}
	if d := time.Since(start); d < expires-100*time.Millisecond {
		t.Fatalf("the batch ended after %v, before its expiry of %v", d, expires)
	}
}

// TestPacksStayUnderTheTargetSize: packs of a large batch are cut at the
// target size, so that no pack nears the server's max_payload and a
// reader's first records do not wait for the whole batch.
func TestPacksStayUnderTheTargetSize(t *testing.T) {
	f := newFixture(t)
	appendN(t, f.store, "orders", 0, 8000, seqPlusOne)
	a := request(t, f.nc, "orders", readapi.Request{MaxMsgs: 8000, MaxBytes: 16 << 20, Pack: true}, 0)
	recs := unpack(t, "orders", a.records)
	checkPacked(t, "orders", recs, 0, seqPlusOne)
	if len(recs) != 8000 {
		t.Fatalf("%d records, want 8000", len(recs))
	}
	total := 0
	for i, m := range a.records {
		if len(m.Data) > packTargetBytes {
			t.Fatalf("pack %d is %d bytes, over the target of %d", i, len(m.Data), packTargetBytes)
		}
		total += len(m.Data)
	}
	if total <= 2*packTargetBytes {
		t.Fatalf("the batch took %d bytes of packs: too few for the test to cut any", total)
	}
}
