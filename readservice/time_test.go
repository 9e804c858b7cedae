package readservice

import (
	"sync"
	"testing"
	"time"

	"github.com/bop-aof/aof/readapi"
	"github.com/bop-aof/aof/tiers"
)

// fakeClock is the store's Options.Now, moved forward by the test, so
// that every record's append time is known.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// timeT0 is the fake clock's start.
var timeT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// timeOf is when buildTimed appends record i: one a second, and 100 s
// between the segments of ten records.
func timeOf(i int) time.Time {
	return timeT0.Add(time.Duration(i+1)*time.Second + time.Duration(i/10)*100*time.Second)
}

// buildTimed writes stream "orders" as buildThreeTiers does (0-9 only in
// Tier 1, 10-19 in a sealed Tier 0 segment, 20-24 in the active one),
// appending record i at timeOf(i).
func buildTimed(t *testing.T, f *fixture, clock *fakeClock) {
	t.Helper()
	for i := range 25 {
		clock.Set(timeOf(i))
		appendN(t, f.store, "orders", i, 1, seqPlusOne)
		switch i {
		case 9:
			id := seal(t, f.store, "orders")
			if err := f.store.EvictTier0(testCtx(t), "orders", id); err != nil {
				t.Fatalf("evict tier 0: %v", err)
			}
		case 19:
			seal(t, f.store, "orders")
		}
	}
}

func newTimedFixture(t *testing.T) (*fixture, *fakeClock) {
	clock := &fakeClock{t: timeT0}
	return newFixtureOn(t, tiers.Options{Now: clock.Now}, Options{}), clock
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func TestReadStartsAtTheFirstRecordAppendedAtOrAfterTime(t *testing.T) {
	f, clock := newTimedFixture(t)
	buildTimed(t, f, clock)
	cases := []struct {
		name    string
		at      time.Time
		fromOff int
	}{
		{"before the first record", timeT0, 0},
		{"exactly the first record", timeOf(0), 0},
		{"inside the Tier 1 segment", timeOf(4).Add(-500 * time.Millisecond), 4},
		{"exactly a record", timeOf(4), 4},
		{"a nanosecond after a record", timeOf(4).Add(time.Nanosecond), 5},
		{"between two segments", timeOf(9).Add(50 * time.Second), 10},
		{"inside the sealed Tier 0 segment", timeOf(15).Add(-time.Millisecond), 15},
		{"between the sealed and the active segment", timeOf(19).Add(time.Second), 20},
		{"inside the active segment", timeOf(22).Add(-time.Millisecond), 22},
		{"exactly the last record", timeOf(24), 24},
		{"after the last record: the tail", timeOf(24).Add(time.Millisecond), 25},
		{"in a time zone", timeOf(12).In(time.FixedZone("UTC-5", -5*3600)), 12},
	}
	for _, c := range cases {
		start := c.at.Format(time.RFC3339Nano)
		a := request(t, f.nc, "orders", readapi.Request{StartTime: start}, 0)
		if len(a.records) != 25-c.fromOff {
			t.Fatalf("%s (start_time %s): got %d records, want %d", c.name, start, len(a.records), 25-c.fromOff)
		}
		checkRecords(t, "orders", a.records, c.fromOff, seqPlusOne)
		for k, m := range a.records {
			if got, want := m.Header.Get(readapi.HeaderTime), rfc3339(timeOf(c.fromOff+k)); got != want {
				t.Fatalf("%s: record %d Aof-Time %s, want %s", c.name, c.fromOff+k, got, want)
			}
		}
		if eob := a.eob(t); eob.NextOffset != 25 || !eob.AtTail {
			t.Fatalf("%s: end of batch %+v", c.name, eob)
		}
	}
}

// Once retention retired the first segment, a time at or before its last
// record is gone (410): records at or after it were deleted. A time after
// it, before the earliest retained record, starts there: nothing at or
// after that time is missing.
func TestReadStartTimeBeforeRetentionIsGone(t *testing.T) {
	f, clock := newTimedFixture(t)
	buildTimed(t, f, clock)
	first := f.store.Segments("orders")[0].Segment
	if err := f.store.Retire(testCtx(t), "orders", first); err != nil {
		t.Fatalf("retire: %v", err)
	}
	for _, at := range []time.Time{timeT0, timeOf(3), timeOf(9)} {
		a := request(t, f.nc, "orders", readapi.Request{StartTime: rfc3339(at)}, 0)
		if len(a.records) != 0 || a.status() != readapi.StatusGone {
			t.Fatalf("start_time %s after retirement: %d records, status %q (%s), want 410", rfc3339(at), len(a.records), a.status(), a.final.Data)
		}
		if e := a.err(t); e.Retryable || e.Stream != "orders" {
			t.Fatalf("start_time %s: error %+v", rfc3339(at), e)
		}
	}
	cases := []struct {
		at      time.Time
		fromOff int
	}{
		{timeOf(9).Add(time.Millisecond), 10},
		{timeOf(10), 10},
		{timeOf(13), 13},
	}
	for _, c := range cases {
		a := request(t, f.nc, "orders", readapi.Request{StartTime: rfc3339(c.at)}, 0)
		if a.status() != readapi.StatusEndOfBatch || len(a.records) != 25-c.fromOff {
			t.Fatalf("start_time %s: %d records, status %q (%s), want %d from offset %d",
				rfc3339(c.at), len(a.records), a.status(), a.final.Data, 25-c.fromOff, c.fromOff)
		}
		checkRecords(t, "orders", a.records, c.fromOff, seqPlusOne)
	}
}

// A follow request for a time after the last record waits at the tail and
// gets the first record appended after it.
func TestFollowFromAFutureTimeWaitsForTheNextRecord(t *testing.T) {
	f, clock := newTimedFixture(t)
	buildTimed(t, f, clock)
	sub := send(t, f.nc, "orders", readapi.Request{StartTime: rfc3339(timeOf(30)), Follow: true, MaxMsgs: 1, ExpiresMS: 20000})
	defer sub.Unsubscribe()
	time.Sleep(100 * time.Millisecond)
	clock.Set(timeOf(25))
	appendN(t, f.store, "orders", 25, 1, seqPlusOne)
	a := collect(t, sub, 0)
	if len(a.records) != 1 {
		t.Fatalf("got %d records, want record 25", len(a.records))
	}
	checkRecords(t, "orders", a.records, 25, seqPlusOne)
}

func TestReadStartTimeIsCheckedAndExclusive(t *testing.T) {
	f, clock := newTimedFixture(t)
	buildTimed(t, f, clock)
	cases := []struct {
		name string
		req  readapi.Request
	}{
		{"not RFC 3339", readapi.Request{StartTime: "yesterday"}},
		{"a date without a time", readapi.Request{StartTime: "2026-03-01"}},
		{"with start_offset", readapi.Request{StartTime: rfc3339(timeT0), StartOffset: 3}},
		{"with start_seq", readapi.Request{StartTime: rfc3339(timeT0), StartSeq: 3}},
	}
	for _, c := range cases {
		a := request(t, f.nc, "orders", c.req, 0)
		if len(a.records) != 0 || a.status() != readapi.StatusBadRequest {
			t.Fatalf("%s: %d records, status %q (%s), want 400", c.name, len(a.records), a.status(), a.final.Data)
		}
	}
}

// The manifest picks the segment, so a seek reads about log2(records of
// one segment) records, whichever segment the target is in: no segment
// before it is read, none is scanned.
func TestSeekReadsOnlyTheTargetSegmentByBinarySearch(t *testing.T) {
	f, clock := newTimedFixture(t)
	buildTimed(t, f, clock)
	r, err := f.store.Reader("orders")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b := &batch{s: f.svc, stream: "orders", r: r, store: f.store}
	const maxReads = 4 // ceil(log2(10)) records of one ten-record segment
	for _, i := range []int{0, 7, 10, 18, 20, 24} {
		th, err := seek(testCtx(t), b, byTime, timeOf(i).UnixMilli())
		if err != nil || !th.found || th.off != uint64(i) || th.reads > maxReads {
			t.Fatalf("seek time of record %d: %+v, %v; want offset %d in at most %d reads", i, th, err, i, maxReads)
		}
		sh, err := seek(testCtx(t), b, bySeq, seqPlusOne(i))
		if err != nil || !sh.found || sh.off != uint64(i) || sh.reads > maxReads {
			t.Fatalf("seek seq of record %d: %+v, %v; want offset %d in at most %d reads", i, sh, err, i, maxReads)
		}
	}
	if h, err := seek(testCtx(t), b, byTime, timeOf(24).UnixMilli()+1); err != nil || h.found || h.reads > 0 {
		t.Fatalf("seek after the last record: %+v, %v; want not found without a read", h, err)
	}
}
