package tiers

import (
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/tiers/tier1"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

type removeGate struct {
	vfs.FS
	suffix  string
	mu      sync.Mutex
	armed   bool
	entered chan struct{}
	release chan struct{}
}

func (g *removeGate) Remove(name string) error {
	g.mu.Lock()
	hold := g.armed && strings.HasSuffix(name, g.suffix)
	if hold {
		g.armed = false
	}
	g.mu.Unlock()
	if hold {
		close(g.entered)
		<-g.release
	}
	return g.FS.Remove(name)
}

// A budget eviction of a segment's artifact has recorded LocalEvicted but
// not yet removed the file when a Reupload compresses the artifact again
// from Tier 0: the eviction must remove only the old file, never the new
// one the log counts in Tier 1 (Tier 0 would then be evicted as "in Tier
// 1" and the only good copy lost, Tier 2 holding a damaged object).
func TestEvictionNeverRemovesTheArtifactThatReplacedIt(t *testing.T) {
	ctx := testCtx(t)
	b := memory.New()
	const stream = "er"
	g := &removeGate{FS: vfs.Default, suffix: "/tier1/" + stream + "/00000000000000000001.zst", entered: make(chan struct{}), release: make(chan struct{})}
	s := openStore(t, Options{Root: t.TempDir(), FS: g, SegmentTargetBytes: 4 << 10, Tier2: b})
	defer s.Close()
	id := sealUploaded(t, s, stream)
	key := tier1.Key{Stream: stream, Segment: id}
	b.Corrupt(tier2.SegmentKey(stream, id), 100)
	g.mu.Lock()
	g.armed = true
	g.mu.Unlock()
	go s.bg.cache.SetMaxBytes(1) // a budget eviction of the uploaded artifact
	<-g.entered                  // LocalEvicted recorded, entry dropped, file not removed yet
	done := make(chan error, 1)
	go func() { done <- s.Reupload(ctx, stream, id) }() // repair: recompress from Tier 0
	waitFor(t, "Reupload's new artifact written", func() bool {
		_, err := os.Stat(s.bg.cache.Path(key) + ".tmp")
		return err == nil || s.bg.cache.Contains(key)
	})
	time.Sleep(20 * time.Millisecond) // time for a rename that does not wait for the eviction
	close(g.release)
	if err := <-done; err != nil {
		t.Fatalf("Reupload: %v", err)
	}
	_, statErr := os.Stat(s.bg.cache.Path(key))
	st := s.Segments(stream)[0]
	t.Logf("after: T0=%v T1=%v T2=%v; artifact file: %v", st.InTier0, st.InTier1, st.InTier2, statErr)
	if statErr != nil && st.InTier1 {
		t.Errorf("log counts segment %d in Tier 1 but the eviction removed the new artifact", id)
		if err := s.EvictTier0(ctx, stream, id); err == nil {
			t.Errorf("EvictTier0 accepted: the last good copy (Tier 0) is gone; Tier 2 holds the damaged object")
		}
	}
	requireManifestCountsACopy(t, s, stream, id)
}
