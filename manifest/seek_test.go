package manifest

import "testing"

// sealedWithBounds is a sealed segment whose SegmentBounds was recorded.
func sealedWithBounds(id, firstExt, lastExt uint64, firstMS, lastMS int64) SegmentState {
	return SegmentState{Segment: id, Sealed: true, BoundsKnown: true,
		FirstExtID: firstExt, LastExtID: lastExt, FirstAppendMS: firstMS, LastAppendMS: lastMS}
}

// sealedBeforeBounds is a segment sealed by a version without
// SegmentBounds: its SealSegment gave the last ext id only.
func sealedBeforeBounds(id, lastExt uint64) SegmentState {
	return SegmentState{Segment: id, Sealed: true, LastExtID: lastExt}
}

func TestSegmentForTime(t *testing.T) {
	known := []SegmentState{
		sealedWithBounds(1, 1, 10, 1000, 1900),
		sealedWithBounds(2, 11, 20, 2000, 2900),
		sealedWithBounds(3, 0, 0, 0, 0), // sealed empty
		sealedWithBounds(4, 21, 30, 3000, 3900),
		{Segment: 5, BoundsKnown: false}, // active
	}
	mixed := []SegmentState{
		sealedBeforeBounds(1, 10),
		sealedBeforeBounds(2, 20),
		sealedWithBounds(3, 21, 30, 3000, 3900),
		sealedWithBounds(4, 31, 40, 4000, 4900),
	}
	deleted := []SegmentState{
		{Segment: 1, Sealed: true, Deleted: true, BoundsKnown: true, LastAppendMS: 1900},
		sealedWithBounds(2, 11, 20, 2000, 2900),
	}
	cases := []struct {
		name string
		segs []SegmentState
		t    int64
		want SeekResult
	}{
		{"before everything", known, 10, SeekResult{Outcome: SeekFound, Segment: 1}},
		{"first record exactly", known, 1000, SeekResult{Outcome: SeekFound, Segment: 1}},
		{"inside a segment", known, 2500, SeekResult{Outcome: SeekFound, Segment: 2}},
		{"last record of a segment", known, 1900, SeekResult{Outcome: SeekFound, Segment: 1}},
		{"gap between segments", known, 1950, SeekResult{Outcome: SeekFound, Segment: 2}},
		{"empty segment skipped", known, 2950, SeekResult{Outcome: SeekFound, Segment: 4}},
		{"after the last sealed", known, 3901, SeekResult{Outcome: SeekPastSealed}},
		{"no segments", nil, 1, SeekResult{Outcome: SeekPastSealed}},
		{"old segments could hold it", mixed, 500, SeekResult{Outcome: SeekUnknown, Segment: 1, Until: 3}},
		{"inside the first known after old ones", mixed, 3500, SeekResult{Outcome: SeekUnknown, Segment: 1, Until: 3}},
		{"past the first known segment", mixed, 4500, SeekResult{Outcome: SeekFound, Segment: 4}},
		{"only old segments", mixed[:2], 500, SeekResult{Outcome: SeekUnknown, Segment: 1}},
		{"deleted segment skipped", deleted, 100, SeekResult{Outcome: SeekFound, Segment: 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := SegmentForTime(c.segs, c.t); got != c.want {
				t.Fatalf("SegmentForTime(%d) = %+v, want %+v", c.t, got, c.want)
			}
		})
	}
}

// An old segment between two known ones is only a candidate when the
// target falls between them.
func TestSegmentForTimeUnknownInTheMiddle(t *testing.T) {
	segs := []SegmentState{
		sealedWithBounds(1, 1, 10, 1000, 1900),
		sealedBeforeBounds(2, 20), // e.g. a seal redone from its footer after a crash
		sealedWithBounds(3, 21, 30, 3000, 3900),
	}
	for _, c := range []struct {
		t    int64
		want SeekResult
	}{
		{1500, SeekResult{Outcome: SeekFound, Segment: 1}},
		{1901, SeekResult{Outcome: SeekUnknown, Segment: 2, Until: 3}},
		{3500, SeekResult{Outcome: SeekUnknown, Segment: 2, Until: 3}},
		{3901, SeekResult{Outcome: SeekPastSealed}},
	} {
		if got := SegmentForTime(segs, c.t); got != c.want {
			t.Errorf("SegmentForTime(%d) = %+v, want %+v", c.t, got, c.want)
		}
	}
}

// Seek by sequence works for segments sealed before SegmentBounds too:
// SealSegment always carried the last ext id.
func TestSegmentForSeq(t *testing.T) {
	segs := []SegmentState{
		sealedBeforeBounds(1, 10),
		sealedBeforeBounds(2, 20),
		sealedWithBounds(3, 0, 0, 0, 0), // sealed empty
		sealedWithBounds(4, 31, 40, 4000, 4900),
		{Segment: 5}, // active
	}
	noExt := []SegmentState{
		sealedBeforeBounds(1, 0), // old segment without a sequence
		sealedWithBounds(2, 11, 20, 2000, 2900),
	}
	cases := []struct {
		name string
		segs []SegmentState
		seq  uint64
		want SeekResult
	}{
		{"first sequence", segs, 1, SeekResult{Outcome: SeekFound, Segment: 1}},
		{"last of old segment", segs, 10, SeekResult{Outcome: SeekFound, Segment: 1}},
		{"inside old segment", segs, 15, SeekResult{Outcome: SeekFound, Segment: 2}},
		{"gap over an empty segment", segs, 25, SeekResult{Outcome: SeekFound, Segment: 4}},
		{"inside new segment", segs, 40, SeekResult{Outcome: SeekFound, Segment: 4}},
		{"after the last sealed", segs, 41, SeekResult{Outcome: SeekPastSealed}},
		{"old segment without ext id", noExt, 5, SeekResult{Outcome: SeekUnknown, Segment: 1, Until: 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := SegmentForSeq(c.segs, c.seq); got != c.want {
				t.Fatalf("SegmentForSeq(%d) = %+v, want %+v", c.seq, got, c.want)
			}
		})
	}
}
