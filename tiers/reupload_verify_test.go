package tiers

import (
	"bytes"
	"os"
	"testing"

	"github.com/bop-aof/aof/tiers/tier1"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

// A repair re-upload with a damaged Tier 1 artifact and a good Tier 0
// file must upload a good copy (compressed again from Tier 0), never the
// damaged artifact: that would become the confirmed Tier 2 copy, and the
// good Tier 0 file could then be evicted.
func TestReuploadNeverConfirmsADamagedArtifact(t *testing.T) {
	ctx := testCtx(t)
	b := memory.New()
	s := openStore(t, Options{Root: t.TempDir(), SegmentTargetBytes: 4 << 10, Tier2: b})
	defer s.Close()
	const stream = "rv"
	id := sealUploaded(t, s, stream)
	path := s.bg.cache.Path(tier1.Key{Stream: stream, Segment: id})
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	b.Corrupt(tier2.SegmentKey(stream, id), 100)
	if si := s.Segments(stream)[0]; !si.InTier0 {
		t.Fatalf("want a Tier 0 copy: %+v", si)
	}
	if err := s.Reupload(ctx, stream, id); err != nil {
		t.Fatalf("Reupload with a good Tier 0 copy: %v", err)
	}
	{
		// The recompression queues its own upload of the new artifact.
		waitFor(t, "uploads of the new artifact to finish", func() bool {
			return s.Queues().Upload == 0 && s.Tier1Stats().Pinned == 0 && segmentStatus(t, s, stream, id).InTier2
		})
		if err := evictIdle(ctx, s, stream, id); err != nil {
			t.Fatalf("evict local: %v", err)
		}
		if err := s.Hydrate(ctx, stream, id); err != nil {
			t.Errorf("Reupload confirmed a damaged artifact as the Tier 2 copy; after EvictLocal the segment is lost: %v", err)
		}
		r, err := s.Reader(stream)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		for i := 0; i < 50; i++ {
			e, err := r.Next(ctx)
			if err != nil {
				t.Fatalf("Reupload confirmed a damaged artifact as the Tier 2 copy; after EvictLocal offset %d is unreadable: %v", i, err)
			}
			if !bytes.Equal(e.Payload, payload(stream, i)) {
				t.Fatalf("offset %d: wrong payload", i)
			}
		}
	}
}
