package tiers

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/backpressure"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

// The archived position covers the seal of a segment whose upload never
// completed (Archived.Position is the end of the uploaded manifest chunks,
// not of the uploads). The new owner adopts it as lost: it stores the
// segment's sequences again when the ingest stream redelivers them,
// retires the lost segment once Tier 2 holds them, and its archived state
// moves past it; every record is readable. The old owner's last segment,
// opened but unsealed in the adopted manifest, is restored empty and takes
// the records after the lost ones.
func TestAdoptStoresAgainTheSegmentsSealedButNotUploadedBeforeTheRecord(t *testing.T) {
	c := memory.New()
	const stream = "orders"
	var alog, blog syncBuffer
	old, lost := storeWithALostSegment(t, c, stream, &alog)
	rec := waitRecordCoversSeal(t, c, old, stream, lost)
	old.Close()

	owner := epochStore(t, t.TempDir(), c, 0, &blog)
	defer owner.Close()
	if err := owner.Adopt(testCtx(t), stream, rec, 2); err != nil {
		t.Fatalf("adopt: %v", err)
	}
	d, _ := owner.DedupeView(stream)
	var stored []uint64
	for ext := rec.Through + 1; ext <= 200; ext++ { // the ingest stream redelivers from the record on
		if d.Stored(ext) {
			continue
		}
		if err := owner.AppendDurable(testCtx(t), stream, []Record{{Payload: payload(stream, int(ext-1)), ExtID: ext}}); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, ext)
	}
	if len(stored) != int(200-rec.Through) {
		t.Fatalf("stored %d of the %d sequences after the record again (dedupe %+v)", len(stored), 200-rec.Through, d)
	}
	c.FailPutsWhere(nil)
	if _, err := owner.Seal(testCtx(t), stream, true); err != nil {
		t.Fatal(err)
	}
	var a manifest.Archived
	retired := false
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		a, _ = owner.Archived(stream)
		retired = true
		for _, st := range owner.Segments(stream) {
			retired = retired && st.Segment != lost
		}
		if a.Through >= 200 && retired {
			break
		}
	}
	for _, st := range owner.Segments(stream) {
		t.Logf("segment %d state=%s base=%d next=%d ext %d..%d in Tier 2 %v", st.Segment, st.State, st.BaseOffset, st.NextOffset, st.FirstExtID, st.LastExtID, st.InTier2)
	}
	if a.Through < 200 || !retired {
		t.Fatalf("archived through %d (want 200), lost segment %d retired %v\n%s", a.Through, lost, retired, lastLines(blog.String(), 15))
	}
	got := readExtIDsAcrossGaps(t, owner, stream)
	for ext := uint64(1); ext <= 200; ext++ {
		if !got[ext] {
			t.Fatalf("sequence %d is not readable", ext)
		}
	}
}

// storeWithALostSegment returns an owner at epoch 1 that archived 150
// records, then sealed two segments while the upload of the first of them
// (lost) fails for good, and holds 10 records in an open segment after
// them: sequences 1..200 in all.
func storeWithALostSegment(t *testing.T, c *memory.Bucket, stream string, log *syncBuffer) (*Store, uint64) {
	t.Helper()
	old := openStore(t, Options{Root: t.TempDir(), SegmentTargetBytes: 4 << 10, Tier2: c, Epoch: 1,
		ManifestArchiveInterval: 20 * time.Millisecond,
		// One manifest record per chunk: the archived position soon
		// covers every seal, whatever the uploads do.
		ManifestChunkCapacity: 1,
		Logger:                slog.New(slog.NewTextHandler(log, nil))})
	appendN(t, old, stream, 0, 150)
	waitArchived(t, old, stream)
	segs := old.Segments(stream)
	lost := segs[len(segs)-1].Segment + 1
	blocked := tier2.SegmentKeyAt(stream, 1, lost)
	c.FailPutsWhere(func(key string) error {
		if key == blocked {
			return errors.New("injected")
		}
		return nil
	})
	appendN(t, old, stream, 150, 20)
	if _, err := old.Seal(testCtx(t), stream, true); err != nil {
		t.Fatal(err)
	}
	appendN(t, old, stream, 170, 20)
	if _, err := old.Seal(testCtx(t), stream, true); err != nil {
		t.Fatal(err)
	}
	appendN(t, old, stream, 190, 10) // active, unsealed
	return old, lost
}

// waitRecordCoversSeal waits until the old owner's archived position
// covers the seal of segment id, not its upload, and returns the record.
func waitRecordCoversSeal(t *testing.T, c tier2.Bucket, old *Store, stream string, id uint64) manifest.Archived {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		rec, err := old.Archived(stream)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := AdoptFromTier2(testCtx(t), RecoverOptions{Root: t.TempDir(), Tier2: c}, stream, rec)
		if err != nil {
			t.Fatal(err)
		}
		if st, ok := idx.Get(id); ok && st.Sealed && !st.InTier2 {
			return rec
		}
	}
	t.Fatalf("the archived position never covered the seal of segment %d", id)
	return manifest.Archived{}
}

// readExtIDsAcrossGaps reads the stream from offset 0 as a client does
// that seeks past a retired range (StatusGone) to the next segment: the
// retired lost segments leave their offsets unused, their records come
// back at the end of the stream.
func readExtIDsAcrossGaps(t *testing.T, s *Store, stream string) map[uint64]bool {
	t.Helper()
	r, err := s.Reader(stream)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := map[uint64]bool{}
	var off uint64
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		e, err := r.TryNext(testCtx(t))
		switch {
		case backpressure.Is(err, backpressure.Tail):
			return got
		case err != nil && backpressure.Is(err, backpressure.Hydration):
			time.Sleep(5 * time.Millisecond)
		case errors.Is(err, ErrOffsetNotFound):
			next := off
			for _, st := range s.Segments(stream) {
				if st.BaseOffset > off && (next == off || st.BaseOffset < next) {
					next = st.BaseOffset
				}
			}
			if next == off {
				t.Fatalf("read at %d: %v, and no segment after it", off, err)
			}
			t.Logf("offsets %d to %d retired; reading on from %d", off, next, next)
			off = next
			r.Seek(off)
		case err != nil:
			t.Fatalf("read at %d: %v", off, err)
		default:
			got[e.ExtID] = true
			off = e.Offset + 1
		}
	}
	t.Fatal("timed out reading to the tail")
	return nil
}

func lastLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
