package tiers

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/manifest"
)

// boundsT0 is the fake clock's start; record i (ext id i+1) is appended at
// boundsT0 + (i+1) seconds by appendTimed.
var boundsT0 = time.UnixMilli(1_800_000_000_000)

func appendTimed(t *testing.T, s *Store, clock *fakeClock, stream string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		clock.Add(time.Second)
		if err := s.AppendDurable(testCtx(t), stream, []Record{{Payload: payload(stream, i), ExtID: uint64(i + 1)}}); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

// msOf is the append time of record i as appendTimed stamps it.
func msOf(i int) int64 { return boundsT0.UnixMilli() + int64(i+1)*1000 }

func statusOf(t *testing.T, s *Store, stream string, id uint64) SegmentStatus {
	t.Helper()
	for _, st := range s.Segments(stream) {
		if st.Segment == id {
			return st
		}
	}
	t.Fatalf("segment %d of %s not listed", id, stream)
	return SegmentStatus{}
}

func requireBounds(t *testing.T, what string, st SegmentStatus, firstExt, lastExt uint64, firstMS, lastMS int64) {
	t.Helper()
	if !st.BoundsKnown || st.FirstExtID != firstExt || st.LastExtID != lastExt || st.FirstAppendMS != firstMS || st.LastAppendMS != lastMS {
		t.Fatalf("%s: segment %d bounds known=%v ext %d-%d ms %d-%d, want ext %d-%d ms %d-%d", what, st.Segment,
			st.BoundsKnown, st.FirstExtID, st.LastExtID, st.FirstAppendMS, st.LastAppendMS, firstExt, lastExt, firstMS, lastMS)
	}
}

func requireManifestBounds(t *testing.T, what string, x *manifest.Index, id, firstExt, lastExt uint64, firstMS, lastMS int64) {
	t.Helper()
	st, ok := x.Get(id)
	if !ok || !st.BoundsKnown || st.FirstExtID != firstExt || st.LastExtID != lastExt || st.FirstAppendMS != firstMS || st.LastAppendMS != lastMS {
		t.Fatalf("%s: manifest segment %d (known %v): %+v", what, id, ok, st)
	}
}

// The seal records the first and last ext id and append time of the
// segment's records in the manifest; they survive a restart that replays
// the chunks and one that loads a snapshot, and a reader finds the segment
// for a time or a sequence from the manifest index alone. The active
// segment's bounds come from its writer.
func TestSegmentBoundsSurviveReplayAndSnapshot(t *testing.T) {
	root := t.TempDir()
	const stream = "bt"
	clock := &fakeClock{t: boundsT0}
	open := func() *Store { return openStore(t, Options{Root: root, Now: clock.Now}) }
	s := open()
	appendTimed(t, s, clock, stream, 0, 10)
	if _, err := s.Seal(testCtx(t), stream, false); err != nil {
		t.Fatal(err)
	}
	appendTimed(t, s, clock, stream, 10, 5)
	if _, err := s.Seal(testCtx(t), stream, false); err != nil {
		t.Fatal(err)
	}
	appendTimed(t, s, clock, stream, 15, 3)

	check := func(what string, s *Store) {
		t.Helper()
		requireBounds(t, what, statusOf(t, s, stream, 1), 1, 10, msOf(0), msOf(9))
		requireBounds(t, what, statusOf(t, s, stream, 2), 11, 15, msOf(10), msOf(14))
		requireBounds(t, what+" (active)", statusOf(t, s, stream, 3), 16, 18, msOf(15), msOf(17))
		x, err := s.ManifestIndex(stream)
		if err != nil {
			t.Fatal(err)
		}
		requireManifestBounds(t, what, x, 1, 1, 10, msOf(0), msOf(9))
		requireManifestBounds(t, what, x, 2, 11, 15, msOf(10), msOf(14))
		segs := x.Segments()
		for _, c := range []struct {
			ms   int64
			want manifest.SeekResult
		}{
			{msOf(0) - 1, manifest.SeekResult{Outcome: manifest.SeekFound, Segment: 1}},
			{msOf(12), manifest.SeekResult{Outcome: manifest.SeekFound, Segment: 2}},
			{msOf(16), manifest.SeekResult{Outcome: manifest.SeekPastSealed}},
		} {
			if got := manifest.SegmentForTime(segs, c.ms); got != c.want {
				t.Fatalf("%s: SegmentForTime(%d) = %+v, want %+v", what, c.ms, got, c.want)
			}
		}
		if got := manifest.SegmentForSeq(segs, 11); got != (manifest.SeekResult{Outcome: manifest.SeekFound, Segment: 2}) {
			t.Fatalf("%s: SegmentForSeq(11) = %+v", what, got)
		}
	}
	check("live", s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open()
	check("after replay", s)
	id, err := s.Snapshot(stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(manifest.SnapshotPath(filepath.Join(root, "manifest", stream), id))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := manifest.DecodeSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	requireManifestBounds(t, "in the snapshot", snap.Index, 1, 1, 10, msOf(0), msOf(9))
	requireManifestBounds(t, "in the snapshot", snap.Index, 2, 11, 15, msOf(10), msOf(14))

	s = open()
	defer s.Close()
	check("after snapshot load", s)
}

// A crash after the footer is durable but before the SealSegment record
// commits: the restart records the seal from the footer and reads the
// bounds from the segment's first and last record, so they are not lost.
func TestRedoneSealRecordsBoundsFromTheSegmentFile(t *testing.T) {
	ffs := vfs.NewFaultFS(nil)
	root := t.TempDir()
	const stream = "cr"
	clock := &fakeClock{t: boundsT0}
	s := openStore(t, Options{Root: root, FS: ffs, Now: clock.Now})
	appendTimed(t, s, clock, stream, 0, 10)
	ffs.CrashAfter(vfs.OpSyncDir, nameEnds("/tier0/"+stream), 0) // current.sealed in place
	s.Seal(testCtx(t), stream, false)
	if !ffs.Crashed() {
		t.Fatal("the seal never reached the current.sealed directory fsync")
	}
	s.Close()

	s = openStore(t, Options{Root: root, Now: clock.Now})
	defer s.Close()
	x, err := s.ManifestIndex(stream)
	if err != nil {
		t.Fatal(err)
	}
	requireManifestBounds(t, "redone seal", x, 1, 1, 10, msOf(0), msOf(9))
	requireBounds(t, "redone seal", statusOf(t, s, stream, 1), 1, 10, msOf(0), msOf(9))
}
