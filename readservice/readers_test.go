package readservice

import (
	"testing"
	"time"

	"github.com/bop-aof/aof/readapi"
)

// A read asks for its next batch from the next_offset of the last one:
// the service keeps the last batch's reader there and the next batch
// continues on it, rather than opening the segment and finding the
// position again. A batch from elsewhere, or from a sequence, does not
// take it.
func TestNextBatchContinuesOnTheReaderTheBatchBeforeParked(t *testing.T) {
	f := newFixture(t)
	buildThreeTiers(t, f, seqPlusOne)
	first := request(t, f.nc, "orders", readapi.Request{StartOffset: 12, MaxMsgs: 3}, 0)
	if eob := first.eob(t); eob.NextOffset != 15 {
		t.Fatalf("first batch ended at %d, want 15", eob.NextOffset)
	}
	parked := f.svc.idle.take("orders", 15)
	if parked == nil {
		t.Fatal("no reader parked at the first batch's next offset 15")
	}
	if parked.Offset() != 15 {
		t.Fatalf("the parked reader is at offset %d, want 15", parked.Offset())
	}
	f.svc.idle.park("orders", 15, parked)

	next := request(t, f.nc, "orders", readapi.Request{StartOffset: 15, MaxMsgs: 4}, 0)
	checkRecords(t, "orders", next.records, 15, seqPlusOne)
	if len(next.records) != 4 {
		t.Fatalf("next batch: %d records, want 4", len(next.records))
	}
	if f.svc.idle.take("orders", 15) != nil {
		t.Fatal("the reader parked at 15 is still there: the batch from 15 opened another one")
	}
	if r := f.svc.idle.take("orders", 19); r == nil {
		t.Fatal("the second batch's reader is not parked at its next offset 19")
	} else {
		f.svc.idle.park("orders", 19, r)
	}

	// A start by sequence resolves its offset with a reader of its own.
	bySeq := request(t, f.nc, "orders", readapi.Request{StartSeq: 20, MaxMsgs: 2}, 0)
	checkRecords(t, "orders", bySeq.records, 19, seqPlusOne)
	if f.svc.idle.take("orders", 19) == nil {
		t.Fatal("a request by sequence took the reader parked at offset 19")
	}
}

// A parked reader holds its segment open: it is closed after
// idleReaderTTL, when the service stops, and not parked at all beyond the
// bound.
func TestParkedReadersAreBoundedExpireAndCloseOnStop(t *testing.T) {
	f := newFixture(t)
	buildThreeTiers(t, f, seqPlusOne)
	idle := newIdleReaders(2)
	for off := range uint64(3) {
		r, err := f.store.Reader("orders")
		if err != nil {
			t.Fatal(err)
		}
		r.Seek(off)
		idle.park("orders", off, r)
	}
	if n := idle.len(); n != 2 {
		t.Fatalf("%d readers parked, want the bound of 2", n)
	}
	deadline := time.Now().Add(idleReaderTTL + 2*time.Second)
	for idle.len() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d readers still parked %v after they were parked, want none after %v", idle.len(), idleReaderTTL+2*time.Second, idleReaderTTL)
		}
		time.Sleep(20 * time.Millisecond)
	}

	r, err := f.store.Reader("orders")
	if err != nil {
		t.Fatal(err)
	}
	idle.park("orders", 0, r)
	idle.stop()
	if n := idle.len(); n != 0 {
		t.Fatalf("%d readers parked after stop", n)
	}
	r2, err := f.store.Reader("orders")
	if err != nil {
		t.Fatal(err)
	}
	idle.park("orders", 0, r2)
	if idle.take("orders", 0) != nil {
		t.Fatal("a reader parked after stop can be taken")
	}
}
