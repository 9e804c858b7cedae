package tiers

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

// Open with a Tier 1 cache over its budget (the operator lowered
// tier1.max_bytes) has uploaded artifacts to evict while the store is
// still opening. The evictions run on the store's Tier 1 eviction
// goroutine, which starts once every stream is open and records
// LocalEvicted through their logs: Open returns without waiting for them,
// and they follow.
func TestTier1OverBudgetAtOpenIsEvictedByTheEvictionGoroutine(t *testing.T) {
	root := t.TempDir()
	opts := Options{Root: root, SegmentTargetBytes: 4 << 10, FrameBytes: 1 << 10, Tier2: memory.New()}
	s := openStore(t, opts)
	appendN(t, s, "dl", 0, 300)
	waitUploaded(t, s, "dl")
	s.Close()
	opts.Tier1MaxBytes = 1
	opened := make(chan *Store, 1)
	go func() {
		s2, err := Open(context.Background(), opts)
		if err != nil {
			t.Errorf("open with Tier 1 over budget: %v", err)
		}
		opened <- s2
	}()
	var s2 *Store
	select {
	case s2 = <-opened:
	case <-time.After(10 * time.Second):
		t.Fatal("Open did not return within 10s with Tier 1 over budget: an eviction ran on Open's goroutine and waited for the store")
	}
	if s2 == nil {
		return
	}
	defer s2.Close()
	waitFor(t, "the uploaded artifacts evicted from the over-budget Tier 1", func() bool {
		for _, st := range s2.Segments("dl") {
			if st.InTier2 && st.InTier1 {
				return false
			}
		}
		return true
	})
	readAll(t, s2, "dl", 300)
}

// A crash between creating the next segment's file and committing its
// SegmentOpened record leaves a Tier 0 file the manifest never heard of.
// Recovery adopts it as the tail, so that its records are read back,
// sealed, and evicted like any other segment's, and survive a restart.
func TestRecoveryAdoptsASegmentWhoseOpenWasNeverRecorded(t *testing.T) {
	ffs := vfs.NewFaultFS(nil)
	root := t.TempDir()
	s := openStore(t, Options{Root: root, FS: ffs, SegmentTargetBytes: 1 << 20})
	appendN(t, s, "m", 0, 20)
	ffs.Inject(vfs.Fault{Op: vfs.OpWrite, Match: func(n string) bool { return strings.Contains(n, "/manifest/") }})
	ffs.Inject(vfs.Fault{Op: vfs.OpOpen, Match: func(n string) bool { return strings.Contains(n, "/manifest/") }})
	s.Seal(testCtx(t), "m", false) // fails: the manifest refuses every write
	abandonAsCrash(s)

	opts := Options{Root: root, SegmentTargetBytes: 1 << 20}
	s2 := openStore(t, opts)
	appendN(t, s2, "m", 20, 20)
	if _, err := s2.Seal(testCtx(t), "m", false); err != nil {
		t.Fatal(err)
	}
	idx, _ := s2.ManifestIndex("m")
	if st, ok := idx.Get(2); !ok || !st.InTier0 || !st.Sealed {
		t.Fatalf("manifest state of the adopted segment 2: %+v (known %v), want in Tier 0 and sealed", st, ok)
	}
	waitFor(t, "tier1", func() bool { return s2.Segments("m")[1].InTier1 })
	if err := s2.EvictTier0(testCtx(t), "m", 2); err != nil {
		t.Fatal(err)
	}
	idx, _ = s2.ManifestIndex("m")
	if st, _ := idx.Get(2); st.InTier0 || !st.InTier1 || st.Deleted {
		t.Fatalf("manifest state after evicting the adopted segment from Tier 0: %+v, want only in Tier 1", st)
	}
	s2.Close()
	s3 := openStore(t, opts)
	defer s3.Close()
	readAll(t, s3, "m", 40)
}
