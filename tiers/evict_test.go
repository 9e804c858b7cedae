package tiers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/tiers/segment"
	"github.com/bop-aof/aof/tiers/tier1"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

// A Tier 0 eviction whose file removal failed is redone; the second
// LocalEvicted record must still say Tier 0, so that the manifest never
// folds it as the Tier 1 copy going and the records stay readable after a
// restart. This is where the log's copy of segment state once drifted
// from the manifest's (the log still counted the Tier 1 copy the manifest
// had folded away): the log's view must be the manifest's fold, before
// and after the restart.
func TestRepeatedTier0EvictionKeepsTier1InTheManifest(t *testing.T) {
	ffs := vfs.NewFaultFS(nil)
	opts := Options{Root: t.TempDir(), FS: ffs, SegmentTargetBytes: 4 << 10}
	s := openStore(t, opts)
	appendN(t, s, "e", 0, 100)
	waitFor(t, "tier1", func() bool { return s.Segments("e")[0].InTier1 })
	ffs.Inject(vfs.Fault{Op: vfs.OpRemove, Match: func(n string) bool { return strings.HasSuffix(n, segment.FileName(1)) }, Times: 1})
	s.EvictTier0(testCtx(t), "e", 1) // the file removal fails once
	if err := s.EvictTier0(testCtx(t), "e", 1); err != nil {
		t.Fatalf("second eviction: %v", err)
	}
	idx, _ := s.ManifestIndex("e")
	if st, _ := idx.Get(1); st.InTier0 || !st.InTier1 || st.Deleted {
		t.Fatalf("manifest state of segment 1 after two Tier 0 evictions: %+v, want only in Tier 1", st)
	}
	requireViewIsTheManifestFold(t, s, "e")
	s.Close()
	s = openStore(t, opts)
	defer s.Close()
	requireViewIsTheManifestFold(t, s, "e")
	readAll(t, s, "e", 100)
}

// requireViewIsTheManifestFold checks that what the log reports of each
// segment (phase and copies) is what the fold of its committed manifest
// records says. Background work may be between a record's commit and its
// effect, so they must agree within a few seconds; a drift never does.
func requireViewIsTheManifestFold(t *testing.T, s *Store, stream string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		diff := viewDrift(t, s, stream)
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(diff)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// viewDrift describes the first segment whose reported state is not the
// manifest's fold, or returns "".
func viewDrift(t *testing.T, s *Store, stream string) string {
	idx, err := s.ManifestIndex(stream)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range s.Segments(stream) {
		ms, ok := idx.Get(st.Segment)
		if !ok || st.InTier0 != ms.InTier0 || st.InTier1 != ms.InTier1 || st.InTier2 != ms.InTier2 ||
			st.NeedsRecovery != ms.NeedsRecovery || (st.State == PhaseSealed) != ms.Sealed {
			return fmt.Sprintf("segment %d: the log reports %s T0=%v T1=%v T2=%v needs_recovery=%v; the manifest folds sealed=%v T0=%v T1=%v T2=%v needs_recovery=%v",
				st.Segment, st.State, st.InTier0, st.InTier1, st.InTier2, st.NeedsRecovery,
				ms.Sealed, ms.InTier0, ms.InTier1, ms.InTier2, ms.NeedsRecovery)
		}
	}
	return ""
}

// A hydration into a Tier 1 cache too small to keep anything must not
// leave the segment marked as in Tier 1 after the cache evicted the fresh
// artifact: the read is served, and later reads hydrate again.
func TestHydrationIntoAFullTier1ServesTheRead(t *testing.T) {
	opts := Options{Root: t.TempDir(), SegmentTargetBytes: 4 << 10, FrameBytes: 1 << 10, Tier2: memory.New()}
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
			if err := evictIdle(ctx, s, "h", st.Segment); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.SetTier1MaxBytes(1)
	r, err := s.Reader("h")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := r.Next(rctx); err != nil {
		t.Fatalf("read of a segment hydrated into a full Tier 1: %v (segment %+v, cache %+v)", err, s.Segments("h")[0], s.Tier1Stats())
	}
}

// A Tier 0 eviction whose LocalEvicted commit fails counts the segment out
// of Tier 0 at once (the record may commit with any later write) but keeps
// its file, and the Tier 0 budget keeps counting the file's bytes; the
// budget's next eviction of it commits the record and removes the file.
func TestTier0EvictionWhoseCommitFailedIsFinishedByTheNextEviction(t *testing.T) {
	ffs := vfs.NewFaultFS(nil)
	opts := Options{Root: t.TempDir(), FS: ffs, SegmentTargetBytes: 4 << 10}
	s := openStore(t, opts)
	defer s.Close()
	appendN(t, s, "ef", 0, 100)
	// Every sealed segment compressed: no background record takes the
	// injected failure.
	waitFor(t, "every sealed segment in tier 1", func() bool {
		for _, st := range s.Segments("ef") {
			if st.State == PhaseSealed && !st.InTier1 {
				return false
			}
		}
		return true
	})
	file := filepath.Join(opts.Root, "tier0", "ef", segment.FileName(1))
	used := s.Tier0Stats().UsedBytes
	ffs.Inject(vfs.Fault{Op: vfs.OpSync, Times: 1, Err: vfs.ENOSPC, Match: manifestOf("ef")})
	if err := s.EvictTier0(testCtx(t), "ef", 1); err == nil {
		t.Fatal("EvictTier0 succeeded although its LocalEvicted commit failed")
	}
	if st := s.Segments("ef")[0]; st.InTier0 {
		t.Fatalf("segment 1 still counts its Tier 0 copy after its LocalEvicted was taken: %+v", st)
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("the Tier 0 file went before its LocalEvicted committed: %v", err)
	}
	if got := s.Tier0Stats().UsedBytes; got != used {
		t.Fatalf("Tier 0 budget counts %d bytes after the failed eviction, want %d: the file is still there", got, used)
	}
	if err := s.evictForTier0Budget(testCtx(t), newSegmentKey("ef", 1)); err != nil {
		t.Fatalf("the budget's eviction of the pending one: %v", err)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Tier 0 file after the finished eviction: %v", err)
	}
	if got := s.Tier0Stats().UsedBytes; got >= used {
		t.Fatalf("Tier 0 budget counts %d bytes after the file went, want less than %d", got, used)
	}
	requireViewIsTheManifestFold(t, s, "ef")
}

// A hydration that finds the artifact in the cache while the log does not
// count it (its LocalEvicted is recorded: a leftover) downloads it again
// and records the hydration, rather than count a copy the manifest does
// not: the log's view stays the manifest's fold.
func TestHydrationOfAnUncountedArtifactIsRecorded(t *testing.T) {
	ctx := testCtx(t)
	s := openStore(t, Options{Root: t.TempDir(), SegmentTargetBytes: 4 << 10, Tier2: memory.New()})
	defer s.Close()
	id := sealUploaded(t, s, "hu")
	key := tier1.Key{Stream: "hu", Segment: id}
	art, err := os.ReadFile(s.bg.cache.Path(key))
	if err != nil {
		t.Fatal(err)
	}
	if err := evictIdle(ctx, s, "hu", id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.bg.cache.PutBytes(key, art); err != nil {
		t.Fatal(err)
	}
	if err := s.Hydrate(ctx, "hu", id); err != nil {
		t.Fatal(err)
	}
	if st := segmentStatus(t, s, "hu", id); !st.InTier1 {
		t.Fatalf("segment %d after its hydration: %+v, want in Tier 1", id, st)
	}
	requireViewIsTheManifestFold(t, s, "hu")
}
