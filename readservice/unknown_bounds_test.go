package readservice

import (
	"encoding/binary"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/readapi"
	"github.com/bop-aof/aof/tiers"
)

// Byte layout of an AOF2SNAP v4 file with an index of version 3 (package
// manifest's doc): what forgetBounds needs to find a segment's bounds.
const (
	snapHeaderBytes  = 52  // magic, version, flags, id, chunk, offset, next_record, index_len
	segFixedBytes    = 142 // a segment's fixed-width fields, flags last
	segFirstExtAt    = 76  // first_ext_id, first_append_ms, last_append_ms follow
	segFlagsAt       = 141
	flagBoundsKnown  = 1 << 7
	indexHeaderBytes = 8 * 4 // records, unknown, custom, last_snapshot_id
)

// forgetBounds rewrites the snapshot file at path as if segment id had
// been sealed by a release before SegmentBounds: its first ext id and
// append times zero, BoundsKnown unset (its last ext id stays, as the
// SealSegment record carried it).
func forgetBounds(t *testing.T, path string, id uint64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	p := snapHeaderBytes + 2
	p += 2 + int(le.Uint16(b[p:])) + indexHeaderBytes
	n := le.Uint32(b[p:])
	p += 4
	for range n {
		if le.Uint64(b[p:]) == id {
			clear(b[p+segFirstExtAt : p+segFirstExtAt+24])
			b[p+segFlagsAt] &^= flagBoundsKnown
		}
		p += segFixedBytes
		for range 2 { // tier2 key, etag
			p += 2 + int(le.Uint16(b[p:]))
		}
	}
	le.PutUint64(b[len(b)-8:], manifest.CRC64(b[:len(b)-8]))
	snap, err := manifest.DecodeSnapshot(b)
	if err != nil {
		t.Fatalf("rewritten snapshot: %v", err)
	}
	if st, ok := snap.Index.Get(id); !ok || st.BoundsKnown || st.LastAppendMS != 0 || st.LastExtID == 0 || !st.Sealed {
		t.Fatalf("rewritten snapshot: segment %d is %+v, want sealed with unknown bounds", id, st)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func snapshotFile(t *testing.T, root string, id uint64) string {
	t.Helper()
	var found string
	want := filepath.Base(manifest.SnapshotPath("", id))
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == want && strings.Contains(p, "orders") {
			found = p
		}
		return nil
	})
	if found == "" {
		t.Fatalf("snapshot %d of orders not under %s", id, root)
	}
	return found
}

// A segment sealed before the manifest kept append times (its bounds
// unknown, manifest.SeekUnknown) is searched by binary search like the
// others, from the first segment that could hold the time up to the first
// known to end after it. Once retention retires it, its times are still
// unknown, so a time before the earliest retained record is gone.
func TestReadStartTimeSearchesSegmentsOfUnknownBounds(t *testing.T) {
	root := t.TempDir()
	clock := &fakeClock{t: timeT0}
	so := tiers.Options{Root: root, SegmentTargetBytes: 1 << 20, FrameBytes: 1 << 10, CompressionWorkers: 1, Now: clock.Now}
	s, err := tiers.Open(testCtx(t), so)
	if err != nil {
		t.Fatal(err)
	}
	buildTimed(t, &fixture{store: s}, clock)
	first := s.Segments("orders")[0].Segment
	snap, err := s.Snapshot("orders")
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	forgetBounds(t, snapshotFile(t, root, snap), first)

	s, err = tiers.Open(testCtx(t), so)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	idx, err := s.ManifestIndex("orders")
	if err != nil {
		t.Fatal(err)
	}
	if res := manifest.SegmentForTime(idx.Segments(), timeOf(4).UnixMilli()); res.Outcome != manifest.SeekUnknown || res.Segment != first {
		t.Fatalf("the manifest still knows segment %d's times: %+v", first, res)
	}
	n := harness.StartNATS(t)
	svc, err := New(n.Connect(t), s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Stop)
	nc := n.Connect(t)

	for _, c := range []struct{ at, fromOff int }{{0, 0}, {4, 4}, {9, 9}, {12, 12}, {22, 22}} {
		a := request(t, nc, "orders", readapi.Request{StartTime: rfc3339(timeOf(c.at))}, 0)
		if len(a.records) != 25-c.fromOff {
			t.Fatalf("start_time of record %d: %d records (%s), want %d", c.at, len(a.records), a.final.Data, 25-c.fromOff)
		}
		checkRecords(t, "orders", a.records, c.fromOff, seqPlusOne)
	}

	if err := s.Retire(testCtx(t), "orders", first); err != nil {
		t.Fatalf("retire: %v", err)
	}
	a := request(t, nc, "orders", readapi.Request{StartTime: rfc3339(timeOf(9).Add(1))}, 0)
	if a.status() != readapi.StatusGone {
		t.Fatalf("after retiring a segment of unknown times: status %q (%s), want 410", a.status(), a.final.Data)
	}
}
