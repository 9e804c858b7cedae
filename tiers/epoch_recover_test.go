package tiers

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/bop-aof/aof/tiers/backpressure"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

// epochStore opens a store writing Tier 2 objects under epoch, whose
// manifest seals a chunk holding an UploadDone after 20 ms.
func epochStore(t *testing.T, root string, c tier2.Bucket, epoch uint64, log *syncBuffer) *Store {
	return openStore(t, Options{Root: root, SegmentTargetBytes: 4 << 10, Tier2: c, Epoch: epoch,
		ManifestArchiveInterval: 20 * time.Millisecond,
		Logger:                  slog.New(slog.NewTextHandler(log, nil))})
}

// waitArchived waits until the stream's manifest reports every sealed
// segment archived in Tier 2, and returns the sealed segments.
func waitArchived(t *testing.T, s *Store, stream string) []SegmentStatus {
	t.Helper()
	waitUploaded(t, s, stream)
	var sealed []SegmentStatus
	var last uint64
	for _, st := range s.Segments(stream) {
		if st.State == "sealed" {
			sealed = append(sealed, st)
			last = max(last, st.LastExtID)
		}
	}
	l, err := s.existing(stream)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for l.man.Archived().Through < last {
		if time.Now().After(deadline) {
			for _, st := range l.man.Index().Segments() {
				t.Logf("%+v", st)
			}
			t.Fatalf("archived %+v, want through %d; chunks %+v", l.man.Archived(), last, l.man.Chunks())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return sealed
}

// readExtIDs reads stream from offset 0 to the tail and returns the ext
// ids it holds.
func readExtIDs(t *testing.T, s *Store, stream string) map[uint64]bool {
	t.Helper()
	r, err := s.Reader(stream)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := map[uint64]bool{}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		e, err := r.TryNext(testCtx(t))
		switch {
		case backpressure.Is(err, backpressure.Tail):
			return got
		case err != nil && backpressure.Is(err, backpressure.Hydration):
			time.Sleep(5 * time.Millisecond)
		case err != nil:
			t.Fatalf("read: %v", err)
		default:
			got[e.ExtID] = true
		}
	}
	t.Fatal("timed out reading to the tail")
	return nil
}

// A new owner (epoch 2) adopts a stream from Tier 2 and writes on; the
// old owner, now a zombie still at epoch 1, then seals and uploads
// segments and manifest chunks of its own, with the same segment ids and
// chunk indexes. Nothing it writes overwrites an object of the new owner,
// and `recover --from-tier2` rebuilds the new owner's history: every
// record it archived, none of the zombie's.
func TestRecoverFromTier2TakesTheNewOwnersChainOverAZombies(t *testing.T) {
	c := memory.New()
	const stream = "owned"
	var alog, blog, rlog syncBuffer
	zombie := epochStore(t, t.TempDir(), c, 1, &alog)
	defer zombie.Close()
	appendN(t, zombie, stream, 0, 100)
	adopted := waitArchived(t, zombie, stream)

	rootB := t.TempDir()
	if _, err := RecoverFromTier2(testCtx(t), RecoverOptions{Root: rootB, Tier2: c}); err != nil {
		t.Fatalf("adopt the stream from tier 2: %v", err)
	}
	owner := epochStore(t, rootB, c, 2, &blog)
	appendN(t, owner, stream, 100, 100)
	ownSealed := waitArchived(t, owner, stream)
	ownerKeys := map[string][]byte{}
	for _, k := range c.Keys() {
		if pk, _ := tier2.ParseKey(k); pk.Epoch == 2 {
			ownerKeys[k], _ = c.Bytes(k)
		}
	}

	appendN(t, zombie, stream, 1000, 100)
	zombieSealed := waitArchived(t, zombie, stream)
	if len(zombieSealed) <= len(adopted) {
		t.Fatal("the zombie sealed no segment after the takeover")
	}
	collide := false
	for _, z := range zombieSealed[len(adopted):] {
		for _, o := range ownSealed {
			collide = collide || z.Segment == o.Segment && z.Tier2Key != o.Tier2Key
		}
	}
	if !collide {
		t.Fatal("the zombie and the new owner share no segment id: the test does not exercise fencing")
	}
	for k, want := range ownerKeys {
		if got, ok := c.Bytes(k); !ok || string(got) != string(want) {
			t.Fatalf("the zombie changed the new owner's object %s", k)
		}
	}
	if err := owner.Close(); err != nil {
		t.Fatal(err)
	}

	root := t.TempDir()
	rep, err := RecoverFromTier2(testCtx(t), RecoverOptions{Root: root, Tier2: c, Logger: slog.New(slog.NewTextHandler(&rlog, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rlog.String(), "msg=stream_recovery_chain_chosen stream="+stream+" epoch=2") {
		t.Fatalf("recovery did not choose epoch 2's chain; report %+v\n%s", rep, rlog.String())
	}
	rebuilt := openStore(t, Options{Root: root, Tier2: c})
	defer rebuilt.Close()
	got := readExtIDs(t, rebuilt, stream)
	for ext := range got {
		if ext > 1000 {
			t.Fatalf("the rebuilt stream holds the zombie's ext_id %d", ext)
		}
	}
	for _, st := range append(adopted, ownSealed...) {
		for ext := st.FirstExtID; ext <= st.LastExtID; ext++ {
			if !got[ext] {
				t.Fatalf("the rebuilt stream lacks ext_id %d of archived segment %d (%s)", ext, st.Segment, st.Tier2Key)
			}
		}
	}
}

// A takeover adopts the old owner's manifest from Tier 2 up to its
// archived position and nothing after it: segments and chunks the old
// owner, now a zombie, archived later are not in the adopted index, and
// every segment archived by then is, at the key the old owner recorded.
func TestAdoptFromTier2TakesTheArchivedPrefixOnly(t *testing.T) {
	c := memory.New()
	const stream = "adopted"
	var alog syncBuffer
	old := epochStore(t, t.TempDir(), c, 3, &alog)
	defer old.Close()
	appendN(t, old, stream, 0, 100)
	archived := waitArchived(t, old, stream)
	l, err := old.existing(stream)
	if err != nil {
		t.Fatal(err)
	}
	rec := l.man.Archived()

	appendN(t, old, stream, 100, 100)
	later := waitArchived(t, old, stream)
	if len(later) <= len(archived) {
		t.Fatal("no segment archived after the recorded position")
	}

	root := t.TempDir()
	idx, err := AdoptFromTier2(testCtx(t), RecoverOptions{Root: root, Tier2: c}, stream, rec)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range archived {
		got, ok := idx.Get(st.Segment)
		if !ok || !got.InTier2 || got.Tier2Key != st.Tier2Key {
			t.Fatalf("archived segment %d adopted as %+v, want in Tier 2 at %s", st.Segment, got, st.Tier2Key)
		}
	}
	for _, st := range later[len(archived):] {
		if got, ok := idx.Get(st.Segment); ok && got.InTier2 {
			t.Fatalf("segment %d, archived after the recorded position %v, was adopted", st.Segment, rec.Position)
		}
	}
	if _, err := AdoptFromTier2(testCtx(t), RecoverOptions{Root: root, Tier2: c}, stream, rec); err == nil {
		t.Fatal("adopting into a manifest directory that is not empty succeeded")
	}
}
