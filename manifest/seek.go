package manifest

import (
	"cmp"
	"sort"
)

// SeekOutcome says how far the manifest alone answers a seek.
type SeekOutcome int

const (
	// SeekFound: Segment is the first sealed segment whose last record is
	// at or after the target, so the first record at or after the target
	// is in it (or is its first record).
	SeekFound SeekOutcome = iota
	// SeekUnknown: segments whose bounds the manifest does not know
	// (sealed before SegmentBounds existed) could hold the target. The
	// reader scans them from Segment on; Until, when not zero, is the
	// first segment known to end at or after the target, where the scan
	// can stop.
	SeekUnknown
	// SeekPastSealed: every sealed segment ends before the target; the
	// target is in the active segment or not yet appended.
	SeekPastSealed
)

func (o SeekOutcome) String() string {
	switch o {
	case SeekFound:
		return "found"
	case SeekUnknown:
		return "unknown"
	case SeekPastSealed:
		return "past_sealed"
	}
	return "seek_outcome(?)"
}

// SeekResult is where a read for a time or a sequence starts.
type SeekResult struct {
	Outcome SeekOutcome
	// Segment is the segment to start reading in (SeekFound, SeekUnknown).
	Segment uint64
	// Until is, for SeekUnknown, the first segment known to end at or
	// after the target (0 if none).
	Until uint64
}

// SegmentForTime finds the segment holding the first record appended at or
// after tMS (append_ts_ms, Unix milliseconds). segs must be ordered by
// segment id, as Index.Segments returns them. Only sealed, not deleted
// segments are considered; the active segment's times are not in the
// manifest. Append times are assumed not to go backwards across segments
// (a wall clock stepped back can make the answer a later segment than the
// first record at or after tMS).
func SegmentForTime(segs []SegmentState, tMS int64) SeekResult {
	return seekSegment(segs, tMS, func(s SegmentState) (int64, bool) {
		return s.LastAppendMS, s.BoundsKnown
	})
}

// SegmentForSeq finds the segment holding the first record whose ext id
// (JetStream stream sequence) is at or after seq. segs must be ordered by
// segment id. A SealSegment record carries the last ext id, so segments
// sealed before SegmentBounds existed are searchable by sequence too;
// only a sealed segment with last ext id 0 (no records, or no sequence
// known) is unknown unless its bounds say it is empty.
func SegmentForSeq(segs []SegmentState, seq uint64) SeekResult {
	return seekSegment(segs, seq, func(s SegmentState) (uint64, bool) {
		return s.LastExtID, s.BoundsKnown || s.LastExtID != 0
	})
}

// seekSegment binary-searches the sealed segments with a known last key
// for the first that ends at or after target, then checks whether a
// segment of unknown bounds sits before it and could hold the target.
// A segment with known bounds and a zero key is empty and skipped.
func seekSegment[K cmp.Ordered](segs []SegmentState, target K, last func(SegmentState) (K, bool)) SeekResult {
	type cand struct {
		id    uint64
		key   K
		known bool
	}
	var zero K
	cands := make([]cand, 0, len(segs))
	var known []int // indexes into cands
	for _, s := range segs {
		if !s.Sealed || s.Deleted {
			continue
		}
		k, ok := last(s)
		if ok && k == zero {
			continue
		}
		if ok {
			known = append(known, len(cands))
		}
		cands = append(cands, cand{s.Segment, k, ok})
	}
	i := sort.Search(len(known), func(i int) bool { return cands[known[i]].key >= target })
	from, to := 0, len(cands) // cands[from:to] may hold the target
	if i > 0 {
		from = known[i-1] + 1
	}
	if i < len(known) {
		to = known[i]
	}
	for j := from; j < to; j++ {
		if !cands[j].known {
			r := SeekResult{Outcome: SeekUnknown, Segment: cands[j].id}
			if to < len(cands) {
				r.Until = cands[to].id
			}
			return r
		}
	}
	if i == len(known) {
		return SeekResult{Outcome: SeekPastSealed}
	}
	return SeekResult{Outcome: SeekFound, Segment: cands[to].id}
}
