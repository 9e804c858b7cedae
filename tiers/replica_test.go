package tiers

import (
	"bytes"
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

// recordSource is a settable archived record, as the cluster bucket
// would give it.
type recordSource struct {
	mu  sync.Mutex
	rec manifest.Archived
	n   int // reads
}

func (r *recordSource) set(a manifest.Archived) { r.mu.Lock(); r.rec = a; r.mu.Unlock() }

func (r *recordSource) get(context.Context, string) (manifest.Archived, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	return r.rec, nil
}

func (r *recordSource) reads() int { r.mu.Lock(); defer r.mu.Unlock(); return r.n }

func openTestReplica(t *testing.T, c tier2.Bucket, src *recordSource, refresh time.Duration) *Replica {
	t.Helper()
	r, err := OpenReplica(ReplicaOptions{Root: t.TempDir() + "/replica", Store: Options{Tier2: c}, Record: src.get, Refresh: refresh})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// readView reads offsets [from, to) from a view and checks each record.
func readView(t *testing.T, v *ReplicaView, stream string, from, to uint64) {
	t.Helper()
	r, err := v.Store.Reader(stream)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Seek(from)
	for i := from; i < to; i++ {
		e, err := r.Next(testCtx(t))
		if err != nil {
			t.Fatalf("read offset %d: %v", i, err)
		}
		if e.Offset != i || e.ExtID != i+1 || !bytes.Equal(e.Payload, payload(stream, int(i))) {
			t.Fatalf("offset %d: got offset %d ext %d payload %q", i, e.Offset, e.ExtID, e.Payload)
		}
	}
}

func tier2Keys(t *testing.T, c tier2.Bucket) map[string]bool {
	t.Helper()
	keys := map[string]bool{}
	if err := c.Iter(testCtx(t), "", func(o tier2.ObjectInfo) error { keys[o.Key] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

// A replica follows the stream's record as the owner archives further:
// its copy ends exactly at the record's next offset (never at what the
// owner stored but Tier 2 has not confirmed), a read past it refreshes
// the copy once the record moved, at most once per refresh period, and a
// read holding the old copy finishes on it. Nothing is written to Tier 2.
func TestReplicaFollowsTheArchivedRecordAndServesOnlyBelowIt(t *testing.T) {
	c := memory.New()
	const stream = "orders"
	var log syncBuffer
	owner := epochStore(t, t.TempDir(), c, 1, &log)
	defer owner.Close()
	appendN(t, owner, stream, 0, 150)
	waitArchived(t, owner, stream)
	appendN(t, owner, stream, 150, 30) // stored, not archived
	rec1, err := owner.Archived(stream)
	if err != nil {
		t.Fatal(err)
	}
	src := &recordSource{rec: rec1}
	rep := openTestReplica(t, c, src, time.Hour)
	before := tier2Keys(t, c)

	v1, err := rep.Acquire(testCtx(t), stream, 0)
	if err != nil {
		t.Fatal(err)
	}
	if v1.End != rec1.NextOffset || v1.End == 0 || v1.End >= 180 {
		t.Fatalf("copy ends at %d, want the record's next offset %d (below the 180 stored)", v1.End, rec1.NextOffset)
	}
	readView(t, v1, stream, 0, v1.End)

	appendN(t, owner, stream, 180, 100)
	waitArchived(t, owner, stream)
	rec2, _ := owner.Archived(stream)
	src.set(rec2)
	// Within the refresh period the record is not read again.
	v, err := rep.Acquire(testCtx(t), stream, v1.End)
	if err != nil || v.End != v1.End {
		t.Fatalf("acquire within the refresh period: end %v (%v), want %d", v, err, v1.End)
	}
	v.Release()
	rep.opts.Refresh = time.Nanosecond
	// A read below the copy's end does not look at the record.
	n := src.reads()
	v, _ = rep.Acquire(testCtx(t), stream, 10)
	v.Release()
	if src.reads() != n {
		t.Fatalf("a read below the copy's end read the record")
	}
	// A reader at the new record's end (the tail) gets no new copy: it
	// would serve nothing.
	v, _ = rep.Acquire(testCtx(t), stream, rec2.NextOffset)
	if v.End != v1.End {
		t.Fatalf("a read at the record's end adopted a copy to %d", v.End)
	}
	v.Release()
	v2, err := rep.Acquire(testCtx(t), stream, v1.End)
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Release()
	if v2.End != rec2.NextOffset || v2.End <= v1.End {
		t.Fatalf("refreshed copy ends at %d, want %d", v2.End, rec2.NextOffset)
	}
	readView(t, v2, stream, 0, v2.End)
	readView(t, v1, stream, 0, v1.End) // the old copy still serves its reader
	v1.Release()
	waitFor(t, "old copy removed", func() bool {
		entries, _ := os.ReadDir(rep.opts.Root + "/" + stream)
		return len(entries) == 1
	})
	if after := tier2Keys(t, c); len(after) < len(before) {
		t.Fatalf("Tier 2 lost objects while the replica read it")
	}
	for k := range tier2Keys(t, c) {
		if !before[k] && !bytes.Contains([]byte(k), []byte("/1/")) {
			t.Fatalf("object %s written by someone other than the owner (epoch 1)", k)
		}
	}
}

// A new owner (epoch 2) adopts the stream and archives further on a chain
// of its own: the replica follows the new record, offsets unchanged, and
// a record that goes away (the stream deleted) drops the copy.
func TestReplicaFollowsTheRecordAcrossAnEpochChange(t *testing.T) {
	c := memory.New()
	const stream = "orders"
	var alog, blog syncBuffer
	old := epochStore(t, t.TempDir(), c, 1, &alog)
	appendN(t, old, stream, 0, 150)
	waitArchived(t, old, stream)
	rec1, _ := old.Archived(stream)
	old.Close()
	src := &recordSource{rec: rec1}
	rep := openTestReplica(t, c, src, time.Nanosecond)
	v1, err := rep.Acquire(testCtx(t), stream, 0)
	if err != nil {
		t.Fatal(err)
	}
	readView(t, v1, stream, 0, v1.End)
	v1.Release()

	owner := epochStore(t, t.TempDir(), c, 0, &blog)
	defer owner.Close()
	if err := owner.Adopt(testCtx(t), stream, rec1, 2); err != nil {
		t.Fatal(err)
	}
	appendN(t, owner, stream, int(rec1.Through), 300-int(rec1.Through))
	waitArchived(t, owner, stream)
	rec2, _ := owner.Archived(stream)
	if rec2.Epoch != 2 || rec2.NextOffset <= rec1.NextOffset {
		t.Fatalf("new owner's record %+v: the test needs epoch 2's chain past %d", rec2, rec1.NextOffset)
	}
	src.set(rec2)
	v2, err := rep.Acquire(testCtx(t), stream, v1.End)
	if err != nil {
		t.Fatal(err)
	}
	if v2.End != rec2.NextOffset || v2.Record.Epoch != 2 {
		t.Fatalf("copy after the epoch change: end %d epoch %d, want %d, 2", v2.End, v2.Record.Epoch, rec2.NextOffset)
	}
	readView(t, v2, stream, 0, v2.End)
	v2.Release()

	src.set(manifest.Archived{})
	if _, err := rep.Acquire(testCtx(t), stream, v2.End); !errors.Is(err, ErrNotArchived) {
		t.Fatalf("acquire after the record went away: %v, want ErrNotArchived", err)
	}
}

// The replica's Tier 2 client refuses writes: a copy can never put or
// delete an object of the owner's.
func TestReplicaBucketRefusesWrites(t *testing.T) {
	b := readOnlyBucket{memory.New()}
	if _, err := tier2.UploadBytes(testCtx(t), b, "k", []byte("x"), tier2.ObjectMeta{}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("upload: %v, want ErrReadOnly", err)
	}
	if err := b.Delete(testCtx(t), "k"); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("delete: %v, want ErrReadOnly", err)
	}
}

// Invalidate drops the current copy: the next Acquire adopts again, and
// the dropped copy's reader finishes first.
func TestReplicaInvalidateAdoptsAgain(t *testing.T) {
	c := memory.New()
	const stream = "orders"
	var log syncBuffer
	owner := epochStore(t, t.TempDir(), c, 1, &log)
	defer owner.Close()
	appendN(t, owner, stream, 0, 150)
	waitArchived(t, owner, stream)
	rec, _ := owner.Archived(stream)
	src := &recordSource{rec: rec}
	rep := openTestReplica(t, c, src, time.Hour)
	v1, err := rep.Acquire(testCtx(t), stream, 0)
	if err != nil {
		t.Fatal(err)
	}
	rep.Invalidate(stream, v1)
	rep.Invalidate(stream, v1) // twice is once
	readView(t, v1, stream, 0, v1.End)
	v2, err := rep.Acquire(testCtx(t), stream, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Release()
	if v2.Store == v1.Store || src.reads() != 2 {
		t.Fatalf("after Invalidate: same copy %v, record read %d times; want a new adoption", v2.Store == v1.Store, src.reads())
	}
	v1.Release()
	readView(t, v2, stream, 0, v2.End)
}

// Reads acquire and release copies concurrently while the record moves:
// each read finishes on the copy it holds, whatever refresh replaces it,
// and replaced copies are removed once their reads end.
func TestReplicaReadsRaceRefreshes(t *testing.T) {
	c := memory.New()
	const stream = "orders"
	var log syncBuffer
	owner := epochStore(t, t.TempDir(), c, 1, &log)
	defer owner.Close()
	var recs []manifest.Archived
	for round := range 3 {
		appendN(t, owner, stream, round*100, 100)
		waitArchived(t, owner, stream)
		a, _ := owner.Archived(stream)
		recs = append(recs, a)
	}
	src := &recordSource{rec: recs[0]}
	rep := openTestReplica(t, c, src, time.Nanosecond)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				v, err := rep.Acquire(testCtx(t), stream, uint64((g*37+i*11)%300))
				if errors.Is(err, ErrNotArchived) {
					continue // a start past the record: the owner's
				}
				if err != nil {
					t.Error(err)
					return
				}
				readView(t, v, stream, v.End-min(v.End, 20), v.End)
				v.Release()
			}
		}()
	}
	for _, r := range recs[1:] {
		time.Sleep(100 * time.Millisecond)
		src.set(r)
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	v, err := rep.Acquire(testCtx(t), stream, 0)
	if err != nil || v.End != recs[2].NextOffset {
		t.Fatalf("after the refreshes: %+v (%v), want the last record's copy", v, err)
	}
	v.Release()
	waitFor(t, "replaced copies removed", func() bool {
		entries, _ := os.ReadDir(rep.opts.Root + "/" + stream)
		return len(entries) == 1
	})
}

// Past MaxStreams copies the least recently used idle one is closed and
// removed.
func TestReplicaClosesTheLeastRecentlyUsedCopyPastItsBound(t *testing.T) {
	c := memory.New()
	var log syncBuffer
	owner := epochStore(t, t.TempDir(), c, 1, &log)
	defer owner.Close()
	recs := map[string]manifest.Archived{}
	for _, s := range []string{"a", "b"} {
		appendN(t, owner, s, 0, 100)
		waitArchived(t, owner, s)
		recs[s], _ = owner.Archived(s)
	}
	r, err := OpenReplica(ReplicaOptions{Root: t.TempDir() + "/replica", Store: Options{Tier2: c}, MaxStreams: 1,
		Record: func(_ context.Context, s string) (manifest.Archived, error) { return recs[s], nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	va, err := r.Acquire(testCtx(t), "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	va.Release()
	vb, err := r.Acquire(testCtx(t), "b", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer vb.Release()
	if _, ok := r.Streams()["a"]; ok {
		t.Fatalf("copies open %v, want only b's", r.Streams())
	}
	waitFor(t, "a's copy removed", func() bool {
		entries, _ := os.ReadDir(r.opts.Root + "/a")
		return len(entries) == 0
	})
}
