package tiers

import (
	"reflect"
	"testing"

	"github.com/bop-aof/aof/manifest"
)

func TestLostBelowSurvivors(t *testing.T) {
	seg := func(id, last uint64) manifest.SegmentState {
		return manifest.SegmentState{Segment: id, LastExtID: last, Sealed: true}
	}
	segs := []manifest.SegmentState{seg(1, 10), seg(2, 20), seg(3, 30), seg(4, 40), seg(5, 50), seg(6, 60), {Segment: 7}}
	for _, tc := range []struct {
		name    string
		inTier2 []uint64
		last    uint64
		want    []ExtRange
		highest uint64
	}{
		{"nothing lost", []uint64{1, 2, 3, 4, 5, 6}, 60, nil, 7},
		{"one in the middle", []uint64{1, 3, 4, 5, 6}, 60, []ExtRange{{10, 20}}, 7},
		{"the first", []uint64{2, 3, 4, 5, 6}, 60, []ExtRange{{0, 10}}, 7},
		{"two adjacent make one range", []uint64{1, 2, 5, 6}, 60, []ExtRange{{20, 40}}, 7},
		{"two apart", []uint64{1, 3, 5, 6}, 60, []ExtRange{{10, 20}, {30, 40}}, 7},
		// Lost above the highest survivor: the replay stores them anyway.
		{"the newest", []uint64{1, 2, 3, 4}, 40, nil, 7},
		{"straddling the highest survivor", []uint64{1, 2, 4}, 40, []ExtRange{{20, 30}}, 7},
	} {
		in := map[uint64]bool{}
		for _, id := range tc.inTier2 {
			in[id] = true
		}
		got, highest := lostBelowSurvivors(segs, in, tc.last)
		if !reflect.DeepEqual(got, tc.want) || highest != tc.highest {
			t.Errorf("%s: got %v (highest %d), want %v (highest %d)", tc.name, got, highest, tc.want, tc.highest)
		}
	}
}

func TestDedupeStoredAndAdd(t *testing.T) {
	d := Dedupe{Last: 100, Missing: []ExtRange{{10, 20}, {50, 60}}}
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
