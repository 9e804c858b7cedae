package tiers

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/bop-aof/aof/internal/vfs"

	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/segment"
)

func TestLostRanges(t *testing.T) {
	seg := func(id, last uint64) manifest.SegmentState {
		return manifest.SegmentState{Segment: id, LastExtID: last, Sealed: true}
	}
	// Seven segments the manifest knows: 1 to 6 sealed with ext_ids up to
	// 10, 20, ... 60; 7 opened but not sealed when the manifest was last
	// uploaded.
	segs := []manifest.SegmentState{seg(1, 10), seg(2, 20), seg(3, 30), seg(4, 40), seg(5, 50), seg(6, 60), {Segment: 7}}
	footer := func(first, last uint64) segment.Footer {
		return segment.Footer{RecordCount: last - first + 1, FirstExtID: first, LastExtID: last}
	}
	for _, tc := range []struct {
		name     string
		inTier2  []uint64
		restored map[uint64]segment.Footer
		want     []ExtRange
		highest  uint64
	}{
		{"nothing lost", []uint64{1, 2, 3, 4, 5, 6}, nil, nil, 7},
		{"one in the middle", []uint64{1, 3, 4, 5, 6}, nil, []ExtRange{{10, 20, []uint64{2}}}, 7},
		{"the first", []uint64{2, 3, 4, 5, 6}, nil, []ExtRange{{0, 10, []uint64{1}}}, 7},
		{"two adjacent make one range", []uint64{1, 2, 5, 6}, nil, []ExtRange{{20, 40, []uint64{3, 4}}}, 7},
		{"two apart", []uint64{1, 3, 5, 6}, nil, []ExtRange{{10, 20, []uint64{2}}, {30, 40, []uint64{4}}}, 7},
		// The manifest may still show the newest as uploaded: without a
		// range the gateway would count them as held.
		{"the newest", []uint64{1, 2, 3, 4}, nil, []ExtRange{{40, 60, []uint64{5, 6}}}, 7},
		{"below and above the last survivor", []uint64{1, 2, 4}, nil, []ExtRange{{20, 30, []uint64{3}}, {40, 60, []uint64{5, 6}}}, 7},
		// 7 and 8 were sealed after the last uploaded manifest chunk; 7's
		// object is gone and 8 is restored: its first ext_id shows the gap.
		{"lost before a restored segment", []uint64{1, 2, 3, 4, 5, 6, 8}, map[uint64]segment.Footer{8: footer(71, 80)}, []ExtRange{{60, 70, []uint64{7}}}, 8},
		{"restored right after", []uint64{1, 2, 3, 4, 5, 6, 7}, map[uint64]segment.Footer{7: footer(61, 70)}, nil, 7},
		// Ext_ids are sequences of the one ingest stream, shared by every
		// store stream: a restored segment starting well after the one
		// before is normal when no segment is missing.
		{"other streams' sequences in between", []uint64{1, 2, 3, 4, 5, 6, 7}, map[uint64]segment.Footer{7: footer(75, 80)}, nil, 7},
		// An id the manifest never heard of, between known segments.
		{"a missing id before a restored segment", []uint64{1, 2, 3, 4, 5, 6, 9}, map[uint64]segment.Footer{9: footer(91, 95)}, []ExtRange{{60, 90, []uint64{7, 8}}}, 9},
	} {
		in := map[uint64]bool{}
		for _, id := range tc.inTier2 {
			in[id] = true
		}
		got, _, highest := lostRanges(segs, in, tc.restored)
		if !reflect.DeepEqual(got, tc.want) || highest != tc.highest {
			t.Errorf("%s: got %v (highest %d), want %v (highest %d)", tc.name, got, highest, tc.want, tc.highest)
		}
	}
}

// TestLostRangesAfterRetention: segments retention deleted still bound
// the range of the first one left, so a lost first survivor does not
// bring back what retention removed.
func TestLostRangesAfterRetention(t *testing.T) {
	segs := []manifest.SegmentState{
		{Segment: 1, LastExtID: 10, Sealed: true, Deleted: true},
		{Segment: 2, LastExtID: 20, Sealed: true, Deleted: true},
		{Segment: 3, LastExtID: 30, Sealed: true},
		{Segment: 4, LastExtID: 40, Sealed: true},
	}
	got, _, _ := lostRanges(segs, map[uint64]bool{4: true}, nil)
	if want := []ExtRange{{20, 30, []uint64{3}}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestLostRangesNamesARefillSegmentItCannotBound: a lost segment whose
// ext_ids are older than those before it held records of an earlier
// refill; its range is unknown, and the recovery says so.
func TestLostRangesNamesARefillSegmentItCannotBound(t *testing.T) {
	segs := []manifest.SegmentState{
		{Segment: 1, LastExtID: 10, Sealed: true},
		{Segment: 2, LastExtID: 20, Sealed: true, Deleted: true}, // lost once, refilled, retired
		{Segment: 3, LastExtID: 30, Sealed: true},
		{Segment: 4, LastExtID: 20, Sealed: true}, // the refill of 11..20
		{Segment: 5, LastExtID: 40, Sealed: true},
	}
	holes, unbounded, _ := lostRanges(segs, map[uint64]bool{1: true, 3: true, 5: true}, nil)
	if len(holes) != 0 || !reflect.DeepEqual(unbounded, []uint64{4}) {
		t.Fatalf("holes %v, unbounded %v; want none and [4]", holes, unbounded)
	}
}

func TestDedupeStoredAndAdd(t *testing.T) {
	d := Dedupe{Last: 100, Missing: []ExtRange{{From: 10, To: 20}, {From: 50, To: 60}}}
	for ext, want := range map[uint64]bool{1: true, 10: true, 11: false, 20: false, 21: true, 55: false, 60: false, 100: true, 101: false} {
		if got := d.Stored(ext); got != want {
			t.Errorf("Stored(%d) = %v, want %v", ext, got, want)
		}
	}
	// Storing 11 and 12 again, in order, leaves 13 to 20 missing.
	d.Add(11)
	d.Add(12)
	if d.Stored(13) || !d.Stored(12) || !d.Stored(11) || d.Last != 100 {
		t.Errorf("after refilling 11 and 12: %+v", d)
	}
	d.Add(101)
	if d.Last != 101 || !d.Stored(101) {
		t.Errorf("after a new sequence: %+v", d)
	}
}

// TestLostSegmentIsNotRetiredWhileItsRefillIsNotSafe: a segment written
// after the recovery that itself loses its copies stops retirement, even
// when a later segment is fine: retiring would forget the first loss while
// its records exist nowhere readable.
func TestLostSegmentIsNotRetiredWhileItsRefillIsNotSafe(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, Options{Root: root})
	ctx := testCtx(t)
	var sealed []uint64
	for i := range 3 {
		appendN(t, s, "s", i*10, 10) // ext_ids 1..10, 11..20, 21..30
		id, err := s.Seal(ctx, "s", true)
		if err != nil {
			t.Fatal(err)
		}
		sealed = append(sealed, id)
	}
	s.Close()
	lost := sealed[1]
	os.Remove(filepath.Join(root, "tier0", "s", segment.FileName(lost)))
	os.Remove(filepath.Join(root, "tier1", "s", fmt.Sprintf("%020d.zst", lost)))
	if err := writeHoles(vfs.Default, root, map[string]streamHoles{"s": {AfterSegment: sealed[2],
		Holes: []ExtRange{{From: 10, To: 20, Segments: []uint64{lost}}}}}); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, Options{Root: root})
	defer s.Close()
	// The refill, in a segment of its own, then newer records.
	for i := 10; i < 20; i++ {
		if err := s.AppendDurable(ctx, "s", []Record{{Payload: payload("s", i), ExtID: uint64(i + 1)}}); err != nil {
			t.Fatal(err)
		}
	}
	refill, err := s.Seal(ctx, "s", true)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "s", 30, 5)
	l, err := s.Log(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	// The refill's copies are lost as a hydration finds it: the record
	// that makes a segment need recovery at run time.
	if err := l.record(manifest.Record{Type: manifest.HydrationFailed, Segment: refill,
		Payload: manifest.HydrationFailedPayload{Reason: manifest.ReasonMissing}}); err != nil {
		t.Fatal(err)
	}
	v := l.DedupeView()
	if v.Last != 35 {
		t.Fatalf("dedupe view %+v, want Last 35", v)
	}
	time.Sleep(100 * time.Millisecond) // a retirement would run in the background
	if l.info(lost) == nil {
		t.Fatalf("lost segment %d retired although its refill (segment %d) is lost too", lost, refill)
	}
	idx, err := s.ManifestIndex("s")
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := idx.Get(lost); st.Deleted {
		t.Fatalf("lost segment %d recorded as deleted: %+v", lost, st)
	}
}
