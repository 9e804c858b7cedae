package tiers

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

// An adoption after a crash: the record covers the seal, not the upload,
// of a lost segment, and an open segment follows it. restoreEmptyTail
// recreates that tail empty and the refill of the lost sequences goes into
// it; HolesFile's AfterSegment must be below the tail, since DedupeView
// counts as refilled only segments above it. Otherwise the refilled range
// stays missing, a redelivery of it is stored a second time, and the lost
// segments never retire.
func TestARefillIntoTheRestoredOpenTailCountsAsStored(t *testing.T) {
	c := memory.New()
	const stream = "orders"
	var blog syncBuffer
	owner, rec := adoptAfterALostUpload(t, c, stream, t.TempDir(), &blog)
	defer owner.Close()
	for _, st := range owner.Segments(stream) {
		t.Logf("after adopt: segment %d state=%s base=%d next=%d", st.Segment, st.State, st.BaseOffset, st.NextOffset)
	}
	const upTo = 190 // the lost range ends here; the tail does not roll over before
	refillTo(t, owner, stream, rec, upTo)
	for _, st := range owner.Segments(stream) {
		t.Logf("after refill: segment %d state=%s base=%d next=%d ext %d..%d", st.Segment, st.State, st.BaseOffset, st.NextOffset, st.FirstExtID, st.LastExtID)
	}
	// A handover now seals and uploads the tail: do the lost segments
	// retire (the refill is in Tier 2)?
	if _, err := owner.Seal(testCtx(t), stream, true); err != nil {
		t.Fatal(err)
	}
	retired := false
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !retired; time.Sleep(20 * time.Millisecond) {
		owner.DedupeView(stream)
		retired = true
		for _, st := range owner.Segments(stream) {
			retired = retired && st.State != PhaseNeedsRecovery
		}
	}
	a, _ := owner.Archived(stream)
	t.Logf("after sealing the tail: lost segments retired %v, archived through %d", retired, a.Through)
	d, _ := owner.DedupeView(stream)
	var again []uint64
	for ext := rec.Through + 1; ext <= upTo; ext++ {
		if !d.Stored(ext) {
			again = append(again, ext)
		}
	}
	if len(again) > 0 {
		t.Fatalf("after storing every sequence through %d once, a redelivery of %d of them (%d..%d) would be stored again; dedupe %+v",
			upTo, len(again), again[0], again[len(again)-1], d)
	}
}

// adoptAfterALostUpload is a takeover at root after a crash: the old
// owner sealed a segment it never uploaded, and its record covers that
// seal and an open segment after it. It returns the new owner and the
// record it adopted.
func adoptAfterALostUpload(t *testing.T, c *memory.Bucket, stream, root string, log *syncBuffer) (*Store, manifest.Archived) {
	t.Helper()
	var alog syncBuffer
	old, lost := storeWithALostSegment(t, c, stream, &alog)
	rec := waitRecordCoversSealAndTail(t, c, old, stream, lost)
	old.Close()
	owner := epochStore(t, root, c, 0, log)
	if err := owner.Adopt(testCtx(t), stream, rec, 2); err != nil {
		t.Fatalf("adopt: %v", err)
	}
	return owner, rec
}

// refillTo stores the sequences after rec.Through up to upTo as the
// pipeline would, redelivered from the ingest stream: a fresh DedupeView
// per batch, one record per batch, and what it says is stored skipped.
func refillTo(t *testing.T, owner *Store, stream string, rec manifest.Archived, upTo uint64) {
	t.Helper()
	for ext := rec.Through + 1; ext <= upTo; ext++ {
		d, _ := owner.DedupeView(stream)
		if d.Stored(ext) {
			continue
		}
		if err := owner.AppendDurable(testCtx(t), stream, []Record{{Payload: payload(stream, int(ext-1)), ExtID: ext}}); err != nil {
			t.Fatal(err)
		}
	}
}

// waitRecordCoversSealAndTail waits until the archived position covers the
// seal of segment id (not its upload) and the opening of an unsealed last
// segment after it: a crash failover's usual adopted state.
func waitRecordCoversSealAndTail(t *testing.T, c tier2.Bucket, old *Store, stream string, id uint64) manifest.Archived {
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
		segs := idx.Segments()
		if st, ok := idx.Get(id); ok && st.Sealed && !st.InTier2 && len(segs) > 0 && !segs[len(segs)-1].Sealed {
			t.Logf("adopted index ends with open segment %d", segs[len(segs)-1].Segment)
			return rec
		}
		_ = old.ArchiveNow(stream)
	}
	t.Fatalf("the archived position never covered the seal of segment %d and an open tail", id)
	return manifest.Archived{}
}

// The layout TestARefillIntoTheRestoredOpenTailCountsAsStored reaches only
// now and then, built directly: the adopted index ends with an open
// segment whose bounds the record knows and which Tier 2 does not hold.
// Its records are a hole to be stored again, but the segment itself is
// restored empty and holds the refill: it must count among the segments
// after the holes, and never among their lost segments, or it would be
// retired, refill and all, once the refill reached Tier 2.
func TestTheRestoredOpenTailIsNeverAmongTheLostSegments(t *testing.T) {
	const stream = "orders"
	idx := manifest.NewIndex(stream)
	apply := func(seg uint64, p manifest.Payload) {
		idx.Apply(manifest.Record{Type: p.RecordType(), Segment: seg, Payload: p})
	}
	for seg, base := range map[uint64]uint64{4: 123, 5: 162, 6: 170} {
		apply(seg, manifest.SegmentOpenedPayload{BaseOffset: base})
	}
	apply(4, manifest.SealSegmentPayload{ExtID: 162})
	apply(4, manifest.UploadDonePayload{Key: "k4"})
	apply(5, manifest.SealSegmentPayload{ExtID: 170}) // sealed, not uploaded: lost
	apply(6, manifest.SegmentBoundsPayload{FirstExtID: 171, LastExtID: 190})
	root := t.TempDir()
	o := RecoverOptions{Root: root, FS: vfs.Default, Logger: slog.New(slog.DiscardHandler)}
	if err := recordAdoptedLoss(o, stream, idx); err != nil {
		t.Fatal(err)
	}
	all, err := loadHoles(vfs.Default, root)
	if err != nil {
		t.Fatal(err)
	}
	h := all[stream]
	if h.AfterSegment != 5 || len(h.Holes) != 1 || h.Holes[0].From != 162 || h.Holes[0].To != 190 ||
		fmt.Sprint(h.Holes[0].Segments) != "[5]" {
		t.Fatalf("holes %+v; want after segment 5, one range 162..190 of lost segment 5 alone", h)
	}
}

// A holes file written before the fix above lists the restored tail among
// a hole's lost segments. Upgraded, the store must still never retire it:
// a segment above AfterSegment was written after the adoption and holds
// the refill. The refill then stays in the stream, in Tier 2, whatever
// the file says.
func TestAHolesFileListingTheRestoredTailNeverRetiresIt(t *testing.T) {
	c := memory.New()
	const stream = "orders"
	var blog syncBuffer
	root := t.TempDir()
	owner, rec := adoptAfterALostUpload(t, c, stream, root, &blog)
	segs := owner.Segments(stream)
	tail := segs[len(segs)-1].Segment
	owner.Close()
	// The file as the release before wrote it: the tail among the lost.
	all, err := loadHoles(vfs.Default, root)
	if err != nil || len(all[stream].Holes) == 0 {
		t.Fatalf("holes after the adoption: %+v, %v", all, err)
	}
	h := all[stream]
	h.Holes[len(h.Holes)-1].Segments = append(h.Holes[len(h.Holes)-1].Segments, tail)
	h.Holes[len(h.Holes)-1].To = max(h.Holes[len(h.Holes)-1].To, 190)
	if err := setStreamHoles(vfs.Default, root, stream, h); err != nil {
		t.Fatal(err)
	}
	owner = epochStore(t, root, c, 2, &blog)
	defer owner.Close()
	refillTo(t, owner, stream, rec, 190)
	if _, err := owner.Seal(testCtx(t), stream, true); err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, owner, stream)
	for i := 0; i < 20; i++ { // retirements run in the background
		owner.DedupeView(stream)
		time.Sleep(20 * time.Millisecond)
	}
	found := false
	for _, st := range owner.Segments(stream) {
		found = found || st.Segment == tail
	}
	d, _ := owner.DedupeView(stream)
	if !found || !d.Stored(190) {
		t.Fatalf("the restored tail %d was retired (still listed: %v); dedupe %+v; log:\n%s", tail, found, d, blog.String())
	}
}
