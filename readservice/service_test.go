package readservice

import (
	"testing"
	"time"

	"github.com/bop-aof/aof/readapi"
)

// buildThreeTiers writes stream "orders": records 0-9 in a segment only in
// Tier 1, 10-19 in a sealed Tier 0 segment, 20-24 in the active segment.
func buildThreeTiers(t *testing.T, f *fixture, extOf func(int) uint64) {
	t.Helper()
	appendN(t, f.store, "orders", 0, 10, extOf)
	id := seal(t, f.store, "orders")
	if err := f.store.EvictTier0(testCtx(t), "orders", id); err != nil {
		t.Fatalf("evict tier 0: %v", err)
	}
	appendN(t, f.store, "orders", 10, 10, extOf)
	seal(t, f.store, "orders")
	appendN(t, f.store, "orders", 20, 5, extOf)
}

func TestReadFromZeroReturnsEveryTierAsIngested(t *testing.T) {
	f := newFixture(t)
	buildThreeTiers(t, f, seqPlusOne)
	a := request(t, f.nc, "orders", readapi.Request{}, 0)
	if len(a.records) != 25 {
		t.Fatalf("got %d records, want 25", len(a.records))
	}
	checkRecords(t, "orders", a.records, 0, seqPlusOne)
	eob := a.eob(t)
	want := readapi.EndOfBatch{Stream: "orders", NextOffset: 25, Records: 25, Bytes: eob.Bytes, Pending: 0, AtTail: true, Reason: readapi.ReasonTail}
	if eob != want || eob.Bytes == 0 {
		t.Fatalf("end of batch %+v, want %+v", eob, want)
	}
	if a.final.Header.Get(readapi.HeaderNextOffset) != "25" || a.final.Header.Get(readapi.HeaderPending) != "0" {
		t.Fatalf("end of batch headers %v", a.final.Header)
	}
}

func TestReadStartsAtTheFirstRecordAtOrAfterSequence(t *testing.T) {
	f := newFixture(t)
	// JetStream sequences with gaps: record i has seq 2i+2.
	extOf := func(i int) uint64 { return uint64(2*i + 2) }
	buildThreeTiers(t, f, extOf)
	cases := []struct {
		seq      uint64
		fromOff  int
		nRecords int
	}{
		{1, 0, 25},   // before the first: from the start
		{2, 0, 25},   // exactly the first
		{7, 3, 22},   // in a gap: the next one, seq 8
		{21, 10, 15}, // first of the sealed Tier 0 segment (seq 22 at offset 10)
		{48, 23, 2},  // in the active segment
		{50, 24, 1},  // the last
		{51, 25, 0},  // beyond the last: empty, at the tail
	}
	for _, c := range cases {
		a := request(t, f.nc, "orders", readapi.Request{StartSeq: c.seq}, 0)
		if len(a.records) != c.nRecords {
			t.Fatalf("start_seq %d: got %d records, want %d", c.seq, len(a.records), c.nRecords)
		}
		checkRecords(t, "orders", a.records, c.fromOff, extOf)
		if eob := a.eob(t); eob.NextOffset != 25 || !eob.AtTail {
			t.Fatalf("start_seq %d: end of batch %+v", c.seq, eob)
		}
	}
}

func TestReadBatchStopsAtMaxMsgsAndMaxBytesWithNextPosition(t *testing.T) {
	f := newFixture(t)
	buildThreeTiers(t, f, seqPlusOne)
	body := len(message("orders", 0).Body) // every body has this size
	cases := []struct {
		name    string
		req     readapi.Request
		records int
		reason  string
		next    uint64
		pending uint64
	}{
		{"max_msgs", readapi.Request{StartOffset: 8, MaxMsgs: 3}, 3, readapi.ReasonMaxMsgs, 11, 14},
		{"max_bytes", readapi.Request{StartOffset: 8, MaxBytes: 2*body + 1}, 2, readapi.ReasonMaxBytes, 10, 15},
		{"the first record goes out over max_bytes", readapi.Request{MaxBytes: 1}, 1, readapi.ReasonMaxBytes, 1, 24},
		{"end_offset", readapi.Request{StartOffset: 5, EndOffset: 12}, 7, readapi.ReasonEnd, 12, 0},
		{"end_offset beyond the tail", readapi.Request{StartOffset: 20, EndOffset: 100}, 5, readapi.ReasonTail, 25, 0},
		{"at the tail", readapi.Request{StartOffset: 25}, 0, readapi.ReasonTail, 25, 0},
	}
	for _, c := range cases {
		a := request(t, f.nc, "orders", c.req, 0)
		if len(a.records) != c.records {
			t.Fatalf("%s: got %d records, want %d", c.name, len(a.records), c.records)
		}
		checkRecords(t, "orders", a.records, int(c.req.StartOffset), seqPlusOne)
		eob := a.eob(t)
		if eob.Reason != c.reason || eob.NextOffset != c.next || eob.Pending != c.pending || eob.Records != c.records {
			t.Fatalf("%s: end of batch %+v, want reason %s next %d pending %d", c.name, eob, c.reason, c.next, c.pending)
		}
	}
}

func TestReadErrorsAreStatusesWithCodeAndReason(t *testing.T) {
	f := newFixture(t)
	buildThreeTiers(t, f, seqPlusOne)
	first := f.store.Segments("orders")[0].Segment
	if err := f.store.Retire(testCtx(t), "orders", first); err != nil {
		t.Fatalf("retire: %v", err)
	}
	cases := []struct {
		name   string
		stream string
		req    any
		code   string
	}{
		{"unknown stream", "nosuch", readapi.Request{}, readapi.StatusNotFound},
		{"offset beyond the end", "orders", readapi.Request{StartOffset: 26}, readapi.StatusBeyondEnd},
		{"offset before retention", "orders", readapi.Request{StartOffset: 3}, readapi.StatusGone},
		{"sequence before retention", "orders", readapi.Request{StartSeq: 2}, readapi.StatusGone},
		{"time before retention", "orders", readapi.Request{StartTime: "2026-01-01T00:00:00Z"}, readapi.StatusGone},
		{"two starts", "orders", readapi.Request{StartOffset: 1, StartSeq: 1}, readapi.StatusBadRequest},
		{"max_msgs over the cap", "orders", readapi.Request{MaxMsgs: readapi.MaxMaxMsgs + 1}, readapi.StatusTooLarge},
		{"max_bytes over the cap", "orders", readapi.Request{MaxBytes: readapi.MaxMaxBytes + 1}, readapi.StatusTooLarge},
		{"malformed", "orders", "not an object", readapi.StatusBadRequest},
	}
	for _, c := range cases {
		a := request(t, f.nc, c.stream, c.req, 0)
		if len(a.records) != 0 || a.status() != c.code {
			t.Fatalf("%s: %d records and status %q (%s), want %s", c.name, len(a.records), a.status(), a.final.Data, c.code)
		}
		e := a.err(t)
		if e.Code != c.code || e.Description == "" || e.Description != a.final.Header.Get(readapi.HeaderDescription) || e.Retryable {
			t.Fatalf("%s: error body %+v", c.name, e)
		}
	}
	// The records after the retired segment are still there.
	a := request(t, f.nc, "orders", readapi.Request{StartOffset: 10}, 0)
	checkRecords(t, "orders", a.records, 10, seqPlusOne)
	if len(a.records) != 15 {
		t.Fatalf("after retirement: %d records, want 15", len(a.records))
	}
}

func TestReadRefusesAnotherAPIVersion(t *testing.T) {
	f := newFixture(t)
	appendN(t, f.store, "orders", 0, 1, seqPlusOne)
	inbox := f.nc.NewRespInbox()
	sub, _ := f.nc.SubscribeSync(inbox)
	m := natsMsg("aof.read.orders", inbox, "2")
	if err := f.nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	got, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got.Header.Get(readapi.HeaderStatus) != readapi.StatusVersionMismatch {
		t.Fatalf("status %q, want %s", got.Header.Get(readapi.HeaderStatus), readapi.StatusVersionMismatch)
	}
}

func TestSlowReaderLosesNoRecords(t *testing.T) {
	f := newFixture(t)
	const total = 3000
	appendN(t, f.store, "orders", 0, total, seqPlusOne)
	next, read := uint64(0), 0
	for read < total {
		// A full batch of the largest size, taken a message every
		// millisecond at first: the batch waits in the reader's buffer.
		delay := time.Duration(0)
		if read == 0 {
			delay = time.Millisecond
		}
		a := request(t, f.nc, "orders", readapi.Request{StartOffset: next, MaxMsgs: readapi.MaxMaxMsgs}, delay)
		checkRecords(t, "orders", a.records, read, seqPlusOne)
		read += len(a.records)
		next = a.eob(t).NextOffset
		if next != uint64(read) {
			t.Fatalf("next offset %d after %d records", next, read)
		}
	}
	if read != total {
		t.Fatalf("read %d records, want %d", read, total)
	}
}

func TestFollowWaitsForRecordsAppendedAfterTheRequest(t *testing.T) {
	f := newFixture(t)
	appendN(t, f.store, "orders", 0, 2, seqPlusOne)
	go func() {
		time.Sleep(400 * time.Millisecond)
		appendN(t, f.store, "orders", 2, 3, seqPlusOne)
	}()
	a := request(t, f.nc, "orders", readapi.Request{StartOffset: 2, Follow: true, HeartbeatMS: 100, ExpiresMS: 20000}, 0)
	if a.heartbeats == 0 {
		t.Fatalf("no heartbeat while waiting 400ms with heartbeat_ms 100")
	}
	if len(a.records) != 3 {
		t.Fatalf("got %d records, want the 3 appended after the request", len(a.records))
	}
	checkRecords(t, "orders", a.records, 2, seqPlusOne)
	if eob := a.eob(t); eob.NextOffset != 5 || eob.Reason != readapi.ReasonTail {
		t.Fatalf("end of batch %+v", eob)
	}
}

func TestFollowExpiresWithAnEmptyBatch(t *testing.T) {
	f := newFixture(t)
	appendN(t, f.store, "orders", 0, 2, seqPlusOne)
	start := time.Now()
	a := request(t, f.nc, "orders", readapi.Request{StartOffset: 2, Follow: true, HeartbeatMS: 100, ExpiresMS: 350}, 0)
	if el := time.Since(start); el < 350*time.Millisecond {
		t.Fatalf("answered after %v, before the expiry", el)
	}
	eob := a.eob(t)
	if len(a.records) != 0 || eob.Reason != readapi.ReasonExpired || eob.NextOffset != 2 || !eob.AtTail || a.heartbeats < 2 {
		t.Fatalf("%d records, %d heartbeats, end of batch %+v", len(a.records), a.heartbeats, eob)
	}
}
