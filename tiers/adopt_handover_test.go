package tiers

import (
	"strings"
	"testing"
	"time"

	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

// A handover leaves the stream sealed, archived, and a new open segment
// behind it, which the archived manifest holds. The next owner adopts that
// open segment as an empty tail, not as a segment whose only copy is
// missing: nothing is marked needing recovery, no error is logged, and the
// redelivered records continue at the offsets the archive ends at, in that
// segment.
func TestAdoptAfterAHandoverRestoresTheOpenSegmentEmpty(t *testing.T) {
	c := memory.New()
	const stream = "orders"
	var alog, blog syncBuffer
	old := epochStore(t, t.TempDir(), c, 1, &alog)
	appendN(t, old, stream, 0, 120)
	if _, err := old.Seal(testCtx(t), stream, true); err != nil {
		t.Fatal(err)
	}
	waitArchived(t, old, stream)
	if err := old.ArchiveNow(stream); err != nil {
		t.Fatal(err)
	}
	rec := waitArchivedRecordOpensTail(t, old, stream)
	old.Close()

	owner := epochStore(t, t.TempDir(), c, 0, &blog)
	defer owner.Close()
	if err := owner.Adopt(testCtx(t), stream, rec, 2); err != nil {
		t.Fatalf("adopt: %v", err)
	}
	segs := owner.Segments(stream)
	tail := segs[len(segs)-1]
	for _, st := range segs {
		if st.State == PhaseNeedsRecovery {
			t.Fatalf("segment %d needs recovery after a clean handover: %s", st.Segment, st.Reason)
		}
	}
	if tail.State != PhaseActive || tail.BaseOffset != rec.NextOffset {
		t.Fatalf("tail %+v, want the handed-over open segment active at offset %d", tail, rec.NextOffset)
	}
	if strings.Contains(blog.String(), "level=ERROR") {
		t.Fatalf("the adoption logged an error:\n%s", lastLines(blog.String(), 10))
	}
	appendN(t, owner, stream, 120, 5)
	got := readExtIDs(t, owner, stream)
	for ext := uint64(1); ext <= 125; ext++ {
		if !got[ext] {
			t.Fatalf("sequence %d is not readable after the adoption", ext)
		}
	}
	if n := owner.Segments(stream); n[len(n)-1].Segment != tail.Segment || n[len(n)-1].NextOffset != rec.NextOffset+5 {
		t.Fatalf("the redelivered records went to %+v, want segment %d from offset %d", n[len(n)-1], tail.Segment, rec.NextOffset)
	}
}

// waitArchivedRecordOpensTail waits until the archived position covers the
// opening of the segment after the last sealed one, as a handover's
// ArchiveNow does, and returns the record.
func waitArchivedRecordOpensTail(t *testing.T, old *Store, stream string) manifest.Archived {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		rec, err := old.Archived(stream)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := AdoptFromTier2(testCtx(t), RecoverOptions{Root: t.TempDir(), Tier2: old.opts.Tier2}, stream, rec)
		if err != nil {
			t.Fatal(err)
		}
		if segs := idx.Segments(); len(segs) > 0 && !segs[len(segs)-1].Sealed {
			return rec
		}
		if err := old.ArchiveNow(stream); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("the archived position never covered the open segment")
	return manifest.Archived{}
}
