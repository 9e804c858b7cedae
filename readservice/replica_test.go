package readservice

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/readapi"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

// lagRecord is a stream's archived record as the cluster bucket shows
// it: the test moves it when it chooses.
type lagRecord struct {
	mu  sync.Mutex
	rec manifest.Archived
}

func (l *lagRecord) set(a manifest.Archived) { l.mu.Lock(); l.rec = a; l.mu.Unlock() }
func (l *lagRecord) get(context.Context, string) (manifest.Archived, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec, nil
}

// ownerStore is an owner's store writing to Tier 2 at epoch 1, archiving
// often.
func ownerStore(t *testing.T, c tier2.Bucket) *tiers.Store {
	t.Helper()
	s, err := tiers.Open(testCtx(t), tiers.Options{Root: t.TempDir(), Tier2: c, Epoch: 1, SegmentTargetBytes: 4 << 10,
		FrameBytes: 1 << 10, ManifestArchiveInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// appendSmall appends records from..from+n-1 ten at a time, so the
// owner's small segments roll over between them.
func appendSmall(t *testing.T, s *tiers.Store, stream string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i += 10 {
		appendN(t, s, stream, i, min(10, from+n-i), seqPlusOne)
	}
}

// archivedPast waits until s has archived stream past offset off.
func archivedPast(t *testing.T, s *tiers.Store, stream string, off uint64) manifest.Archived {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		a, err := s.Archived(stream)
		if err == nil && a.NextOffset > off {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not archived past %d: %+v (%v)", stream, off, a, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newReplica(t *testing.T, c tier2.Bucket, rec func(context.Context, string) (manifest.Archived, error)) *tiers.Replica {
	t.Helper()
	r, err := tiers.OpenReplica(tiers.ReplicaOptions{Root: t.TempDir() + "/replica", Store: tiers.Options{Tier2: c},
		Record: rec, Refresh: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// gateways: "owner" owns the stream and answers only on its node subject
// (its queue subscription is dropped, so every request reaches the
// follower first); "follower" has an empty store and a replica.
func replicaGateways(t *testing.T, c tier2.Bucket, owner *tiers.Store, rec *lagRecord) *nats.Conn {
	t.Helper()
	n := harness.StartNATS(t)
	owners := map[string]string{"orders": "owner"}
	a, err := New(n.Connect(t), owner, Options{Router: &staticRouter{self: "owner", owners: owners}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	if err := a.sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	empty, err := tiers.Open(testCtx(t), tiers.Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { empty.Close() })
	b, err := New(n.Connect(t), empty, Options{Router: &staticRouter{self: "follower", owners: owners},
		Replica: newReplica(t, c, rec.get)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return n.Connect(t)
}

// A gateway that does not own a stream answers its archived history from
// its replica, up to the record's next offset and never further (reason
// archived, not the tail), and hands the rest to the owner; a reader
// continuing from each batch's next offset gets every record once, in
// order, and follows the record as it advances.
func TestANonOwnerServesArchivedHistoryFromItsReplica(t *testing.T) {
	c := memory.New()
	owner := ownerStore(t, c)
	appendSmall(t, owner, "orders", 0, 400)
	rec1 := archivedPast(t, owner, "orders", 100)
	// Records after the record the replica follows: the owner's tail,
	// however much of the first 400 the owner archived already.
	appendSmall(t, owner, "orders", 400, 50)
	rec := &lagRecord{rec: rec1}
	nc := replicaGateways(t, c, owner, rec)

	a := request(t, nc, "orders", readapi.Request{MaxMsgs: 10000}, 0)
	eob := a.eob(t)
	if eob.Reason != readapi.ReasonArchived || eob.AtTail || eob.NextOffset != rec1.NextOffset || len(a.records) != int(rec1.NextOffset) {
		t.Fatalf("from the replica: %d records, %+v; want %d records, reason archived", len(a.records), eob, rec1.NextOffset)
	}
	checkRecords(t, "orders", a.records, 0, seqPlusOne)

	// Past the replica: the owner answers, to the tail.
	a = request(t, nc, "orders", readapi.Request{StartOffset: eob.NextOffset, MaxMsgs: 10000}, 0)
	if e := a.eob(t); e.Reason != readapi.ReasonTail || e.NextOffset != 450 || len(a.records) != 450-int(rec1.NextOffset) {
		t.Fatalf("past the replica: %d records, %+v", len(a.records), e)
	}
	checkRecords(t, "orders", a.records, int(rec1.NextOffset), seqPlusOne)

	// The record advances: the next read past the old end gets the newer copy.
	appendSmall(t, owner, "orders", 450, 350)
	rec2 := archivedPast(t, owner, "orders", 450)
	rec.set(rec2)
	a = request(t, nc, "orders", readapi.Request{StartOffset: rec1.NextOffset, MaxMsgs: 10000}, 0)
	if e := a.eob(t); e.Reason != readapi.ReasonArchived || e.NextOffset != rec2.NextOffset {
		t.Fatalf("after the record advanced: %d records, %+v, want up to %d from the replica", len(a.records), e, rec2.NextOffset)
	}
	checkRecords(t, "orders", a.records, int(rec1.NextOffset), seqPlusOne)

	// A reader going batch by batch sees all 800 once, in order.
	next, got := uint64(0), 0
	for {
		a := request(t, nc, "orders", readapi.Request{StartOffset: next, MaxMsgs: 150}, 0)
		checkRecords(t, "orders", a.records, int(next), seqPlusOne)
		got += len(a.records)
		e := a.eob(t)
		next = e.NextOffset
		if e.Reason == readapi.ReasonTail {
			break
		}
	}
	if got != 800 || next != 800 {
		t.Fatalf("read %d records to %d, want 800", got, next)
	}
	// A search by sequence past the copy resolves at the owner.
	a = request(t, nc, "orders", readapi.Request{StartSeq: 1 << 62}, 0)
	if e := a.eob(t); e.NextOffset != 800 || !e.AtTail {
		t.Fatalf("end offset through the follower: %+v", e)
	}
}

// A request forwarded to a gateway that no longer owns the stream (the
// forwarder's view of the owners is a refresh behind) is not answered
// from its own copy, which may end before the new owner's: without a
// replica it is answered unavailable (retry); with one, from the replica
// up to the archived end.
func TestAFormerOwnerDoesNotServeItsStaleCopy(t *testing.T) {
	c := memory.New()
	n := harness.StartNATS(t)
	stale, err := tiers.Open(testCtx(t), tiers.Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stale.Close() })
	appendN(t, stale, "orders", 0, 50, seqPlusOne) // behind the new owner
	owner := ownerStore(t, c)
	appendSmall(t, owner, "orders", 0, 400)
	rec := archivedPast(t, owner, "orders", 100)
	owners := map[string]string{"orders": "new"}

	for _, withReplica := range []bool{false, true} {
		opts := Options{Router: &staticRouter{self: "former", owners: owners}}
		if withReplica {
			opts.Replica = newReplica(t, c, (&lagRecord{rec: rec}).get)
		}
		svc, err := New(n.Connect(t), stale, opts)
		if err != nil {
			t.Fatal(err)
		}
		nc := n.Connect(t)
		inbox := nc.NewRespInbox()
		sub, _ := nc.SubscribeSync(inbox)
		m := natsMsg(readapi.DefaultSubjectPrefix+".node.former.orders", inbox, readapi.APIVersion)
		m.Data = []byte(`{"max_msgs":10000}`)
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		a := collect(t, sub, 0)
		if !withReplica {
			if a.status() != readapi.StatusUnavailable || len(a.records) != 0 {
				t.Fatalf("former owner without a replica: %d records, status %s", len(a.records), a.status())
			}
		} else {
			if e := a.eob(t); e.Reason != readapi.ReasonArchived || len(a.records) != int(rec.NextOffset) {
				t.Fatalf("former owner with a replica: %d records, %+v; want %d", len(a.records), e, rec.NextOffset)
			}
			checkRecords(t, "orders", a.records, 0, seqPlusOne)
		}
		svc.Stop()
	}
}

// A follow request that starts past the end of the stream waits for its
// start instead of failing 416: after a failover the new owner may still
// be re-reading the tail its reader already got from the old owner. A
// request that does not follow is still refused.
func TestAFollowRequestPastTheEndWaitsForItsStart(t *testing.T) {
	f := newFixture(t)
	appendN(t, f.store, "orders", 0, 20, seqPlusOne)
	if a := request(t, f.nc, "orders", readapi.Request{StartOffset: 25}, 0); a.status() != readapi.StatusBeyondEnd {
		t.Fatalf("a read past the end: status %q, want 416", a.status())
	}
	sub := send(t, f.nc, "orders", readapi.Request{StartOffset: 25, Follow: true, ExpiresMS: 10000})
	defer sub.Unsubscribe()
	time.Sleep(200 * time.Millisecond)
	appendN(t, f.store, "orders", 20, 10, seqPlusOne)
	a := collect(t, sub, 0)
	if e := a.eob(t); len(a.records) != 5 || e.NextOffset != 30 {
		t.Fatalf("follow from 25: %d records, %+v; want 25..29", len(a.records), e)
	}
	checkRecords(t, "orders", a.records, 25, seqPlusOne)
}

// A copy that finds a Tier 2 object missing (the owner's retention
// deleted it after the copy was adopted, or it was lost) hands the
// request to the owner, which still answers it, and is dropped so that
// the next request adopts again.
func TestAReplicaMissingAnObjectHandsTheReadToTheOwner(t *testing.T) {
	c := memory.New()
	owner := ownerStore(t, c)
	appendSmall(t, owner, "orders", 0, 400)
	rec := archivedPast(t, owner, "orders", 100)
	nc := replicaGateways(t, c, owner, &lagRecord{rec: rec})
	first := owner.Segments("orders")[0]
	if first.Tier2Key == "" {
		t.Fatalf("first segment not in Tier 2: %+v", first)
	}
	if err := c.Delete(testCtx(t), first.Tier2Key); err != nil {
		t.Fatal(err)
	}
	a := request(t, nc, "orders", readapi.Request{MaxMsgs: 10000}, 0)
	if e := a.eob(t); e.Reason != readapi.ReasonTail || len(a.records) != 400 {
		t.Fatalf("read with an object missing from the copy's Tier 2: %d records, %s", len(a.records), a.final.Data)
	}
	checkRecords(t, "orders", a.records, 0, seqPlusOne)
}
