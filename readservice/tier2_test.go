package readservice

import (
	"testing"
	"time"

	"github.com/bop-aof/aof/readapi"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

func TestTier2UnavailableIsARetryableStatus(t *testing.T) {
	b := memory.New()
	f := newFixtureWith(t, b, Options{RequestTimeout: 2 * time.Second})
	appendN(t, f.store, "orders", 0, 10, seqPlusOne)
	id := seal(t, f.store, "orders")
	deadline := time.Now().Add(30 * time.Second)
	for st := f.store.Segments("orders")[0]; !st.InTier2; st = f.store.Segments("orders")[0] {
		if time.Now().After(deadline) {
			t.Fatalf("segment %d not uploaded", id)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := f.store.EvictLocal(testCtx(t), "orders", id); err != nil {
		t.Fatalf("evict local copies: %v", err)
	}
	b.FailGets(1<<30, tier2.ErrBreakerOpen)
	// A batch that hydrates the segment and a Get-sized one that reads it
	// with ranged GETs.
	for _, req := range []readapi.Request{{MaxMsgs: 100}, {MaxMsgs: 1}} {
		a := request(t, f.nc, "orders", req, 0)
		if len(a.records) != 0 || a.status() != readapi.StatusUnavailable {
			t.Fatalf("max_msgs %d with Tier 2 down: %d records, status %q (%s)", req.MaxMsgs, len(a.records), a.status(), a.final.Data)
		}
		t.Logf("max_msgs %d: %s", req.MaxMsgs, a.final.Data)
		if e := a.err(t); !e.Retryable {
			t.Fatalf("max_msgs %d: error %+v is not retryable", req.MaxMsgs, e)
		}
	}
	b.FailGets(0, nil)
	deadline = time.Now().Add(30 * time.Second)
	for {
		a := request(t, f.nc, "orders", readapi.Request{}, 0)
		if a.status() == readapi.StatusEndOfBatch {
			checkRecords(t, "orders", a.records, 0, seqPlusOne)
			if len(a.records) != 10 {
				t.Fatalf("after Tier 2 came back: %d records, want 10", len(a.records))
			}
			return
		}
		if a.status() != readapi.StatusUnavailable || time.Now().After(deadline) {
			t.Fatalf("after Tier 2 came back: status %q (%s)", a.status(), a.final.Data)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestRequestsOverMaxConcurrentAreRefusedRetryably(t *testing.T) {
	f := newFixtureWith(t, nil, Options{MaxConcurrent: 1})
	appendN(t, f.store, "orders", 0, 1, seqPlusOne)
	held := send(t, f.nc, "orders", readapi.Request{StartOffset: 1, Follow: true, ExpiresMS: 1500, HeartbeatMS: 100})
	// The follow request holds the only slot once its first heartbeat came.
	if msg, err := held.NextMsg(10 * time.Second); err != nil || msg.Header.Get(readapi.HeaderStatus) != readapi.StatusHeartbeat {
		t.Fatalf("the follow request: %v %v", msg, err)
	}
	a := request(t, f.nc, "orders", readapi.Request{}, 0)
	if a.status() != readapi.StatusUnavailable || !a.err(t).Retryable {
		t.Fatalf("second request: status %q (%s), want 503 retryable", a.status(), a.final.Data)
	}
	if eob := collect(t, held, 0).eob(t); eob.Reason != readapi.ReasonExpired {
		t.Fatalf("the follow request: %+v", eob)
	}
	// The slot is free again once the follow request's goroutine ends,
	// just after its last message: a request in between is refused
	// retryably, as a reader retries it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		a := request(t, f.nc, "orders", readapi.Request{}, 0)
		if len(a.records) == 1 {
			break
		}
		if a.status() != readapi.StatusUnavailable || time.Now().After(deadline) {
			t.Fatalf("after the slot freed: %d records (%s)", len(a.records), a.final.Data)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A batch over history that is only in Tier 2 reads it ahead in memory:
// the records arrive, and no segment was hydrated into Tier 1.
func TestLargeBatchOverColdSegmentsReadsAheadWithoutHydrating(t *testing.T) {
	b := memory.New()
	f := newFixtureOn(t, tiers.Options{Tier2: b, PrefetchSegments: 2}, Options{})
	const perSegment, segments = 20, 5
	for i := range segments {
		appendN(t, f.store, "orders", i*perSegment, perSegment, seqPlusOne)
		seal(t, f.store, "orders")
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, st := range f.store.Segments("orders") {
		if st.State != "sealed" {
			continue
		}
		for !f.store.Segments("orders")[st.Segment-1].InTier2 {
			if time.Now().After(deadline) {
				t.Fatalf("segment %d not uploaded", st.Segment)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := f.store.EvictLocal(testCtx(t), "orders", st.Segment); err != nil {
			t.Fatalf("evict local copies of segment %d: %v", st.Segment, err)
		}
	}
	a := request(t, f.nc, "orders", readapi.Request{MaxMsgs: 1000}, 0)
	if a.status() != readapi.StatusEndOfBatch || len(a.records) != perSegment*segments {
		t.Fatalf("batch over cold segments: %d records, status %q (%s)", len(a.records), a.status(), a.final.Data)
	}
	checkRecords(t, "orders", a.records, 0, seqPlusOne)
	for _, st := range f.store.Segments("orders") {
		if st.InTier1 || st.PendingHydration {
			t.Errorf("segment %d after a read-ahead batch: in Tier 1 %v, pending hydration %v; want it left in Tier 2 only", st.Segment, st.InTier1, st.PendingHydration)
		}
	}
}
