package tiers

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

// R4: hydrate sets inTier1=true after MarkUploaded may already have evicted
// the fresh artifact (and onTier1Evict set it false).
func TestReviewHydrateSelfEvictStaleTier1(t *testing.T) {
	t2 := memory.New()
	opts := Options{Root: t.TempDir(), SegmentTargetBytes: 4 << 10, FrameBytes: 1 << 10, Tier2: t2}
	s := openStore(t, opts)
	defer s.Close()
	ctx := testCtx(t)
	appendN(t, s, "h", 0, 200)
	if _, err := s.Seal(ctx, "h", false); err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, s, "h")
	for _, st := range s.Segments("h") {
		if st.State == "sealed" {
			if err := s.EvictLocal(ctx, "h", st.Segment); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.SetTier1MaxBytes(1)
	r, _ := s.Reader("h")
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := r.Next(rctx)
	t.Logf("read: err=%v", err)
	t.Logf("segment 1: %+v; cache: %+v", s.Segments("h")[0], s.Tier1Stats())
	if err != nil {
		t.Fatalf("CONFIRMED: read after hydration fails: %v", err)
	}
}

// R5: crash between segment.Create of the next segment and the manifest
// commit of its SegmentOpened: recover adopts the tail without SegmentOpened.
func TestReviewMissingSegmentOpenedAfterCrash(t *testing.T) {
	ffs := vfs.NewFaultFS(nil)
	root := t.TempDir()
	s := openStore(t, Options{Root: root, FS: ffs, SegmentTargetBytes: 1 << 20})
	appendN(t, s, "m", 0, 20)
	ffs.Inject(vfs.Fault{Op: vfs.OpWrite, Match: func(n string) bool { return strings.Contains(n, "/manifest/") }})
	ffs.Inject(vfs.Fault{Op: vfs.OpOpen, Match: func(n string) bool { return strings.Contains(n, "/manifest/") }})
	_, err := s.Seal(testCtx(t), "m", false)
	t.Logf("seal with failing manifest: %v", err)
	// "crash": abandon s, reopen on the real FS.
	abandonAsCrash(s)
	opts := Options{Root: root, SegmentTargetBytes: 1 << 20}
	s2 := openStore(t, opts)
	appendN(t, s2, "m", 20, 20)
	if _, err := s2.Seal(testCtx(t), "m", false); err != nil {
		t.Fatal(err)
	}
	idx, _ := s2.ManifestIndex("m")
	st, _ := idx.Get(2)
	t.Logf("manifest segment 2: base=%d InTier0=%v sealed=%v opened=%d", st.BaseOffset, st.InTier0, st.Sealed, st.OpenedMS)
	waitFor(t, "tier1", func() bool { return s2.Segments("m")[1].InTier1 })
	if err := s2.EvictTier0(testCtx(t), "m", 2); err != nil {
		t.Fatal(err)
	}
	idx, _ = s2.ManifestIndex("m")
	st, _ = idx.Get(2)
	t.Logf("after EvictTier0 of 2: InTier0=%v InTier1=%v Deleted=%v", st.InTier0, st.InTier1, st.Deleted)
	s2.Close()
	s3 := openStore(t, opts)
	defer s3.Close()
	for _, x := range s3.Segments("m") {
		t.Logf("after restart: %+v", x)
	}
	r, _ := s3.Reader("m")
	for i := 0; i < 40; i++ {
		e, err := r.TryNext(testCtx(t))
		if err != nil || e.Offset != uint64(i) {
			t.Fatalf("CONFIRMED: read %d: %v (%v)", i, err, e.Offset)
		}
	}
}
