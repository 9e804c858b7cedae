package tiers

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/backpressure"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

func waitUploaded(t *testing.T, s *Store, stream string) {
	t.Helper()
	waitFor(t, "every sealed segment uploaded", func() bool {
		for _, st := range s.Segments(stream) {
			if st.State == "sealed" && !st.InTier2 {
				return false
			}
		}
		return true
	})
}

func TestEvictTier0KeepsTheTier1CopyServing(t *testing.T) {
	s := openStore(t, Options{Root: t.TempDir(), SegmentTargetBytes: 4 << 10})
	defer s.Close()
	appendN(t, s, "t0", 0, 100)
	waitFor(t, "tier 1 copies", func() bool { return s.Segments("t0")[0].InTier1 })
	if err := s.EvictTier0(testCtx(t), "t0", 1); err != nil {
		t.Fatal(err)
	}
	if st := s.Segments("t0")[0]; st.InTier0 || !st.InTier1 {
		t.Fatalf("after EvictTier0: %+v", st)
	}
	readAll(t, s, "t0", 100)
	active := s.Segments("t0")[len(s.Segments("t0"))-1].Segment
	if err := s.EvictTier0(testCtx(t), "t0", active); err == nil {
		t.Fatal("evicting the active segment's only copy was allowed")
	}
}

func TestRetireDeletesEveryCopyAndRecordsIt(t *testing.T) {
	t2 := memory.New()
	root := t.TempDir()
	s := openStore(t, Options{Root: root, SegmentTargetBytes: 4 << 10, Tier2: t2})
	appendN(t, s, "ret", 0, 100)
	waitUploaded(t, s, "ret")
	if err := s.Retire(testCtx(t), "ret", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := t2.Attributes(testCtx(t), tier2.SegmentKey("ret", 1)); tier2.Reason(err) != tier2.ReasonMissing {
		t.Fatalf("object of a retired segment: %v, want missing", err)
	}
	r, _ := s.Reader("ret")
	if _, err := r.Next(testCtx(t)); !errors.Is(err, ErrOffsetNotFound) {
		t.Fatalf("read of a retired offset: %v, want ErrOffsetNotFound", err)
	}
	s.Close()
	s = openStore(t, Options{Root: root, SegmentTargetBytes: 4 << 10, Tier2: t2})
	defer s.Close()
	for _, st := range s.Segments("ret") {
		if st.Segment == 1 {
			t.Fatalf("retired segment back after restart: %+v", st)
		}
	}
	idx, _ := s.ManifestIndex("ret")
	if st, ok := idx.Get(1); !ok || !st.Deleted {
		t.Fatalf("manifest does not record segment 1 deleted: %+v", st)
	}
}

func TestReuploadRepairsAMissingObject(t *testing.T) {
	t2 := memory.New()
	s := openStore(t, Options{Root: t.TempDir(), SegmentTargetBytes: 4 << 10, Tier2: t2})
	defer s.Close()
	appendN(t, s, "re", 0, 60)
	waitUploaded(t, s, "re")
	key := tier2.SegmentKey("re", 1)
	if err := t2.Delete(testCtx(t), key); err != nil {
		t.Fatal(err)
	}
	if err := s.Reupload(testCtx(t), "re", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := t2.Attributes(testCtx(t), key); err != nil {
		t.Fatalf("object after reupload: %v", err)
	}
	// And it serves reads once the local copies are gone.
	if err := evictIdle(testCtx(t), s, "re", 1); err != nil {
		t.Fatal(err)
	}
	readAll(t, s, "re", 60)
}

func TestFailedFsyncIsFlushBackpressureAndTheLogRecovers(t *testing.T) {
	ffs := vfs.NewFaultFS(nil)
	root := t.TempDir()
	s := openStore(t, Options{Root: root, FS: ffs})
	defer s.Close()
	appendN(t, s, "fl", 0, 10)
	ffs.Inject(vfs.Fault{Op: vfs.OpSync, Times: 1, Match: func(n string) bool { return strings.HasSuffix(n, ".seg") }})
	err := s.AppendDurable(testCtx(t), "fl", []Record{{Payload: payload("fl", 10), ExtID: 11}})
	if !backpressure.Is(err, backpressure.Flush) {
		t.Fatalf("append with failing fsync: %v, want Flush backpressure", err)
	}
	// The record whose fsync failed was never acknowledged: it is cut,
	// even though the page cache may still hold it, and the watermark
	// the ingest pipeline dedupes by falls back to the durable one.
	if d, _ := s.DedupeView("fl"); d.Last != 10 {
		t.Fatalf("DedupeView().Last after the failure = %d, want 10", d.Last)
	}
	// Appends are refused until the caller resumes, so nothing is
	// appended ahead of the redeliveries that must come first.
	if err := s.AppendDurable(testCtx(t), "fl", []Record{{Payload: payload("fl", 11), ExtID: 12}}); !backpressure.Is(err, backpressure.Flush) {
		t.Fatalf("append before Resume: %v, want Flush backpressure", err)
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendDurable(testCtx(t), "fl", []Record{{Payload: payload("fl", 10), ExtID: 11}}); err != nil {
		t.Fatalf("append after Resume: %v", err)
	}
	readAll(t, s, "fl", 11)
}

// A caller that appended before a failed fsync learns that its records
// are gone instead of acknowledging them.
func TestSyncOfRecordsCutByAFailedFsyncFails(t *testing.T) {
	ffs := vfs.NewFaultFS(nil)
	s := openStore(t, Options{Root: t.TempDir(), FS: ffs})
	defer s.Close()
	appendN(t, s, "cut", 0, 5)
	l, _ := s.existing("cut")
	_, nextA, err := l.Append(testCtx(t), []Record{{Payload: payload("cut", 5), ExtID: 6}})
	if err != nil {
		t.Fatal(err)
	}
	_, nextB, err := l.Append(testCtx(t), []Record{{Payload: payload("cut", 6), ExtID: 7}})
	if err != nil {
		t.Fatal(err)
	}
	ffs.Inject(vfs.Fault{Op: vfs.OpSync, Times: 1, Match: func(n string) bool { return strings.HasSuffix(n, ".seg") }})
	if err := l.SyncTo(testCtx(t), nextA); !backpressure.Is(err, backpressure.Flush) {
		t.Fatalf("sync with failing fsync: %v", err)
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := l.SyncTo(testCtx(t), nextB); !backpressure.Is(err, backpressure.Flush) {
		t.Fatalf("sync of records cut by the failure: %v, want Flush backpressure", err)
	}
}

func TestPeriodicSnapshotsAreWritten(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, Options{Root: root, SegmentTargetBytes: 4 << 10, SnapshotInterval: 50 * time.Millisecond})
	appendN(t, s, "snap", 0, 200)
	waitFor(t, "a snapshot file", func() bool {
		m, _ := filepath.Glob(filepath.Join(root, "manifest", "snap", "snapshot_*.bin"))
		return len(m) > 0
	})
	s.Close()
	s = openStore(t, Options{Root: root})
	defer s.Close()
	readAll(t, s, "snap", 200)
}

func TestRangedReadsServeAColdSegmentWithoutHydrating(t *testing.T) {
	t2 := memory.New()
	s := openStore(t, Options{Root: t.TempDir(), SegmentTargetBytes: 64 << 10, FrameBytes: 4 << 10, Tier2: t2})
	defer s.Close()
	appendN(t, s, "cold", 0, 400)
	if _, err := s.Seal(testCtx(t), "cold", false); err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, s, "cold")
	for _, st := range s.Segments("cold") {
		if st.State == "sealed" {
			if err := evictIdle(testCtx(t), s, "cold", st.Segment); err != nil {
				t.Fatal(err)
			}
		}
	}
	r, _ := s.Reader("cold")
	defer r.Close()
	r.SetRangedReads(true)
	for _, off := range []uint64{350, 351, 7, 0, 399} {
		r.Seek(off)
		e, err := r.Next(testCtx(t))
		if err != nil {
			t.Fatalf("ranged read of offset %d: %v", off, err)
		}
		if e.Offset != off || string(e.Payload) != string(payload("cold", int(off))) {
			t.Fatalf("offset %d: got offset %d payload %q", off, e.Offset, e.Payload)
		}
	}
	for _, st := range s.Segments("cold") {
		if st.State == "sealed" && (st.InTier1 || st.InTier0) {
			t.Fatalf("ranged reads hydrated segment %d: %+v", st.Segment, st)
		}
	}
	if q := s.Tier1Stats(); q.Files != 0 {
		t.Fatalf("tier 1 holds %d artifacts after ranged reads, want 0", q.Files)
	}
}

// Uploads of one stream complete in segment order, whatever the upload
// concurrency, so Tier 2 never holds a segment while an older one exists
// only locally.
func TestUploadsOfAStreamCompleteInSegmentOrder(t *testing.T) {
	t2 := memory.New()
	s := openStore(t, Options{Root: t.TempDir(), SegmentTargetBytes: 2 << 10, Tier2: t2, Tier2Concurrency: 4, CompressionWorkers: 3})
	defer s.Close()
	appendN(t, s, "order", 0, 300)
	if _, err := s.Seal(testCtx(t), "order", false); err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, s, "order")
	var done []uint64
	for _, r := range manifestRecords(t, s, "order") {
		if r.Type == manifest.UploadDone {
			done = append(done, r.Segment)
		}
	}
	if len(done) < 5 {
		t.Fatalf("only %d uploads", len(done))
	}
	for i := 1; i < len(done); i++ {
		if done[i] <= done[i-1] {
			t.Fatalf("uploads done out of segment order: %v", done)
		}
	}
}
