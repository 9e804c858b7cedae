package tiers

import (
	"reflect"
	"testing"

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
		{"lost before a restored segment", []uint64{1, 2, 3, 4, 5, 6, 8}, map[uint64]segment.Footer{8: footer(71, 80)}, []ExtRange{{60, 70, nil}}, 8},
		{"restored right after", []uint64{1, 2, 3, 4, 5, 6, 7}, map[uint64]segment.Footer{7: footer(61, 70)}, nil, 7},
	} {
		in := map[uint64]bool{}
		for _, id := range tc.inTier2 {
			in[id] = true
		}
		got, highest := lostRanges(segs, in, tc.restored)
		if !reflect.DeepEqual(got, tc.want) || highest != tc.highest {
			t.Errorf("%s: got %v (highest %d), want %v (highest %d)", tc.name, got, highest, tc.want, tc.highest)
		}
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
