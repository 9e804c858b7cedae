package tiers

import (
	"log/slog"
	"testing"
	"time"

	"github.com/bop-aof/aof/tiers/tier2/memory"
)

// A zombie (epoch 1) keeps its stream open after the takeover and goes on
// uploading, snapshotting and pruning its own epoch's manifest objects.
// The new owner's record still points at epoch 1's chain (it archived
// nothing of its own before it crashed), and no chain of epoch 1 reaches
// the record's position any more. A later takeover adopts epoch 1's newer
// chain, which covers the record, instead of nothing.
func TestAdoptTakesTheEpochsNewerChainWhenAZombiePrunedTheRecordsChain(t *testing.T) {
	c := memory.New()
	const stream = "orders"
	var zlog, blog, clog syncBuffer
	zombie := openStore(t, Options{Root: t.TempDir(), SegmentTargetBytes: 4 << 10, Tier2: c, Epoch: 1,
		ManifestArchiveInterval: 20 * time.Millisecond, SnapshotInterval: 10 * time.Millisecond, SegmentMaxAge: 40 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&zlog, nil))})
	defer zombie.Close()
	appendN(t, zombie, stream, 0, 150)
	waitArchived(t, zombie, stream)
	rec, _ := zombie.Archived(stream)
	t.Logf("record %+v", rec)

	owner := epochStore(t, t.TempDir(), c, 0, &blog)
	if err := owner.Adopt(testCtx(t), stream, rec, 2); err != nil {
		t.Fatalf("adopt: %v", err)
	}
	if d, _ := owner.DedupeView(stream); d.Last != rec.Through {
		t.Fatalf("the first adoption is already wrong: through %d", d.Last)
	}
	owner.Close() // the new owner crashes before it archives anything of its own

	// The zombie goes on: what it had in flight, evictions, seals... here
	// simply more appends, with snapshots and prunes behind them.
	for i := 0; i < 12; i++ {
		appendN(t, zombie, stream, 150+i*40, 40)
		waitArchived(t, zombie, stream)
		time.Sleep(60 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)

	third := epochStore(t, t.TempDir(), c, 0, &clog)
	defer third.Close()
	if err := third.Adopt(testCtx(t), stream, rec, 3); err != nil {
		t.Fatalf("a later takeover cannot adopt the record's chain any more: %v", err)
	}
	for _, st := range third.Segments(stream) {
		t.Logf("third seg %d state=%s base=%d next=%d first=%d last=%d inT2=%v key=%s", st.Segment, st.State, st.BaseOffset, st.NextOffset, st.FirstExtID, st.LastExtID, st.InTier2, st.Tier2Key)
	}
	checkAdoptedCoversRecord(t, third, stream, rec, &clog)
}
