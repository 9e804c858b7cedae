package tiers

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/segment"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

// R1: Tier 1 over budget at boot with uploaded artifacts -> Open deadlocks
// (openLog holds s.mu; recover -> cache.MarkUploaded -> evict -> onTier1Evict -> s.existing -> s.mu).
func TestReviewBootDeadlockTier1OverBudget(t *testing.T) {
	t2 := memory.New()
	root := t.TempDir()
	opts := Options{Root: root, SegmentTargetBytes: 4 << 10, FrameBytes: 1 << 10, Tier2: t2}
	s := openStore(t, opts)
	appendN(t, s, "dl", 0, 300)
	waitUploaded(t, s, "dl")
	s.Close()
	opts.Tier1MaxBytes = 1 // operator lowered tier1.max_bytes (or cache was over budget)
	done := make(chan error, 1)
	go func() {
		s2, err := Open(context.Background(), opts)
		if err == nil {
			s2.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Logf("open returned: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("CONFIRMED: Open deadlocked with Tier 1 over budget")
	}
}

// writes a second Tier-0 LocalEvicted which the index folds as a Tier 1 eviction.
func TestReviewSecondTier0EvictionClearsTier1InManifest(t *testing.T) {
	ffs := vfs.NewFaultFS(nil)
	root := t.TempDir()
	opts := Options{Root: root, FS: ffs, SegmentTargetBytes: 4 << 10}
	s := openStore(t, opts)
	appendN(t, s, "e", 0, 100)
	waitFor(t, "tier1", func() bool { return s.Segments("e")[0].InTier1 })
	f := ffs.Inject(vfs.Fault{Op: vfs.OpRemove, Match: func(n string) bool { return strings.HasSuffix(n, segment.FileName(1)) }, Times: 1})
	err := s.EvictTier0(testCtx(t), "e", 1)
	t.Logf("first evict: %v (fired %v)", err, f)
	if err := s.EvictTier0(testCtx(t), "e", 1); err != nil {
		t.Fatalf("second evict: %v", err)
	}
	idx, _ := s.ManifestIndex("e")
	st, _ := idx.Get(1)
	t.Logf("manifest state of segment 1: InTier0=%v InTier1=%v Deleted=%v", st.InTier0, st.InTier1, st.Deleted)
	s.Close()
	s = openStore(t, opts)
	defer s.Close()
	t.Logf("after restart: %+v", s.Segments("e")[0])
	r, _ := s.Reader("e")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for i := 0; i < 100; i++ {
		if _, err := r.Next(ctx); err != nil {
			t.Fatalf("CONFIRMED: read offset %d after restart: %v", i, err)
		}
	}
	_ = manifest.LocalEvicted
	_ = filepath.Join
}
