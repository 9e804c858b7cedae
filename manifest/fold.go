package manifest

// Apply folds r into s, the state of one segment, exactly as Index.Apply
// folds it into an index: it is the same fold, so a holder of one
// segment's state (the tiers log's view of its segments) stays what a
// replay of the same records would give. A record of another segment, or
// one that is about no segment (SnapshotMarker, CustomEvent), leaves s
// alone.
func (s *SegmentState) Apply(r Record) {
	x := Index{Stream: s.Stream, segments: map[uint64]*SegmentState{s.Segment: s}}
	x.Apply(r)
}
