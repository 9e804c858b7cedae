package tiers

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bop-aof/aof/tiers/tier2/memory"
)

// The old owner (epoch 1) archived part of a stream and stored more that
// Tier 2 does not hold yet; it is lost. The new owner (epoch 2, empty
// root) adopts the archived state, stores the rest again as the ingest
// stream redelivers it (ext_ids after the archived one, in order), and
// ends with every record once, at the offsets the old owner gave them.
func TestTakeoverAdoptsTheArchivedStateAndContinuesItsOffsets(t *testing.T) {
	c := memory.New()
	const stream = "orders"
	var alog, blog syncBuffer
	old := epochStore(t, t.TempDir(), c, 1, &alog)
	appendN(t, old, stream, 0, 150)
	waitArchived(t, old, stream)
	appendN(t, old, stream, 150, 30) // stored, in the active segment, not archived
	rec, err := old.Archived(stream)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Through == 0 || rec.Through >= 180 {
		t.Fatalf("archived through %d: the test needs a partly archived stream", rec.Through)
	}
	old.Close()

	owner := epochStore(t, t.TempDir(), c, 0, &blog)
	defer owner.Close()
	if err := owner.Adopt(testCtx(t), stream, rec, 2); err != nil {
		t.Fatalf("adopt: %v", err)
	}
	if e, ok := owner.LocalEpoch(stream); !ok || e != 2 {
		t.Fatalf("adopted copy at epoch %d (%v), want 2", e, ok)
	}
	d, err := owner.DedupeView(stream)
	if err != nil || d.Last != rec.Through {
		t.Fatalf("dedupe view %+v (%v) after adoption, want last %d", d, err, rec.Through)
	}
	appendN(t, owner, stream, int(rec.Through), 180-int(rec.Through))
	readAll(t, owner, stream, 180)

	if err := owner.Adopt(testCtx(t), stream, rec, 3); !errors.Is(err, ErrStreamOpen) {
		t.Fatalf("adopting an open stream: %v, want ErrStreamOpen", err)
	}
}

// A stream whose local copy another owner archived past is removed at
// Open, before anything reads it; the others are kept.
func TestOpenDiscardsTheStreamsItIsToldAreStale(t *testing.T) {
	c := memory.New()
	root := t.TempDir()
	var log syncBuffer
	s := epochStore(t, root, c, 1, &log)
	appendN(t, s, "stale", 0, 20)
	appendN(t, s, "kept", 0, 20)
	s.Close()

	asked := map[string]uint64{}
	s = openStore(t, Options{Root: root, Tier2: c, Discard: func(stream string, epoch uint64) bool {
		asked[stream] = epoch
		return stream == "stale"
	}})
	defer s.Close()
	if asked["stale"] != 1 || asked["kept"] != 1 {
		t.Fatalf("Discard was asked %v, want both streams at epoch 1", asked)
	}
	if got := s.Streams(); len(got) != 1 || got[0] != "kept" {
		t.Fatalf("streams after Open = %v, want only kept", got)
	}
	for _, d := range streamDirs(root, "stale") {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Fatalf("%s still exists (%v)", filepath.Base(d), err)
		}
	}
	readAll(t, s, "kept", 20)
}

// A stream created while its partition is owned writes its first Tier 2
// object under the owner's epoch.
func TestANewStreamOpensAtTheEpochOfItsPartition(t *testing.T) {
	c := memory.New()
	s := openStore(t, Options{Root: t.TempDir(), Tier2: c, SegmentTargetBytes: 4 << 10,
		ManifestArchiveInterval: 20 * time.Millisecond,
		EpochOf:                 func(stream string) uint64 { return map[string]uint64{"owned": 7}[stream] }})
	defer s.Close()
	appendN(t, s, "owned", 0, 100)
	for _, st := range waitArchived(t, s, "owned") {
		if want := "segments/owned/7/"; len(st.Tier2Key) < len(want) || st.Tier2Key[:len(want)] != want {
			t.Fatalf("segment %d uploaded as %s, want under %s", st.Segment, st.Tier2Key, want)
		}
	}
}
