package tiers

import (
	"log/slog"
	"testing"
	"time"

	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

// The old owner (epoch 1) is killed right after a record write; the new
// owner adopts through that record; the old node restarts as a standby
// with its copy kept (not stale: the record's chain is its own), opens
// the stream at its local epoch 1, anchors and prunes chain 1. A later
// takeover of the (idle) stream still adopts what the record names.
func TestAdoptCoversTheRecordAfterTheRestartedOldOwnerPrunedItsChain(t *testing.T) {
	c := memory.New()
	const stream = "orders"
	var alog, blog, clog syncBuffer
	rootA := t.TempDir()
	opts := func(log *syncBuffer, epoch uint64) Options {
		return Options{Root: rootA, SegmentTargetBytes: 4 << 10, Tier2: c, Epoch: epoch,
			ManifestArchiveInterval: 20 * time.Millisecond, SnapshotInterval: 10 * time.Millisecond, SegmentMaxAge: 40 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(log, nil))}
	}
	a := openStore(t, opts(&alog, 1))
	appendN(t, a, stream, 0, 150)
	waitArchived(t, a, stream)
	rec, _ := a.Archived(stream) // the last record the owner wrote
	// Ingest goes on for a moment before the kill: segments, uploads, a snapshot or two.
	appendN(t, a, stream, 150, 60)
	waitArchived(t, a, stream)
	time.Sleep(100 * time.Millisecond)
	a.Close() // killed
	t.Logf("keys at the kill: %v", c.Keys())
	t.Logf("record %+v", rec)

	b := epochStore(t, t.TempDir(), c, 0, &blog)
	if err := b.Adopt(testCtx(t), stream, rec, 2); err != nil {
		t.Fatalf("adopt: %v", err)
	}
	b.Close()

	// The old node restarts as a standby: nothing appended, its copy kept.
	a = openStore(t, opts(&alog, 0))
	time.Sleep(500 * time.Millisecond)
	a.Close()
	t.Logf("keys: %v", c.Keys())

	third := epochStore(t, t.TempDir(), c, 0, &clog)
	defer third.Close()
	if err := third.Adopt(testCtx(t), stream, rec, 3); err != nil {
		t.Fatalf("adopt: %v", err)
	}
	checkAdoptedCoversRecord(t, third, stream, rec, &clog)
}

// checkAdoptedCoversRecord fails unless the adopted stream holds every
// record the record says is archived, at offsets from its next offset on
// for what comes after: no sequence up to rec.Through is stored again,
// none is missing, and the next record cannot take an archived offset.
func checkAdoptedCoversRecord(t *testing.T, s *Store, stream string, rec manifest.Archived, log *syncBuffer) {
	t.Helper()
	d, err := s.DedupeView(stream)
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Log(testCtx(t), stream)
	if err != nil {
		t.Fatal(err)
	}
	for ext := uint64(1); ext <= rec.Through; ext++ {
		if !d.Stored(ext) {
			t.Fatalf("sequence %d, archived by the record %+v, counts as not stored: dedupe %+v\n%s", ext, rec, d, lastLines(log.String(), 8))
		}
	}
	if l.NextOffset() < rec.NextOffset {
		t.Fatalf("next offset %d after adoption, below the record's %d", l.NextOffset(), rec.NextOffset)
	}
	got := readExtIDs(t, s, stream)
	for ext := uint64(1); ext <= rec.Through; ext++ {
		if !got[ext] {
			t.Fatalf("sequence %d, archived by the record %+v, is not readable after adoption", ext, rec)
		}
	}
	t.Logf("adopted through %d, next offset %d; the record: through %d, next offset %d", d.Last, l.NextOffset(), rec.Through, rec.NextOffset)
}
