package manifest

import "testing"

// SegmentState.Apply is Index.Apply for one segment: folding a segment's
// history either way gives the same state, and records of other segments
// leave it alone.
func TestSegmentStateApplyIsTheIndexFold(t *testing.T) {
	history := []Record{
		{Type: SegmentOpened, Segment: 7, LogicalOffset: 100, TimestampMS: 1, Payload: SegmentOpenedPayload{BaseOffset: 100}},
		{Type: SegmentOpened, Segment: 8, LogicalOffset: 200, TimestampMS: 2, Payload: SegmentOpenedPayload{BaseOffset: 200}},
		{Type: SealSegment, Segment: 7, LogicalOffset: 200, TimestampMS: 3, Payload: SealSegmentPayload{DurableBytes: 4096, SegmentCRC64: 9, ExtID: 50}},
		{Type: CompressionDone, Segment: 7, TimestampMS: 4, Payload: CompressionDonePayload{CompressedBytes: 1000}},
		{Type: UploadStarted, Segment: 7, TimestampMS: 5, Payload: UploadStartedPayload{Key: "k"}},
		{Type: UploadDone, Segment: 7, TimestampMS: 6, Payload: UploadDonePayload{Key: "k", ETag: "e"}},
		{Type: LocalEvicted, Segment: 7, TimestampMS: 7, Payload: LocalEvictedPayload{ReclaimedBytes: 4096}},
		{Type: LocalEvicted, Flags: FlagTier1Copy, Segment: 7, TimestampMS: 8, Payload: LocalEvictedPayload{ReclaimedBytes: 1000}},
		{Type: HydrationStarted, Segment: 7, TimestampMS: 9, Payload: HydrationStartedPayload{SourceTier: 2}},
		{Type: HydrationFailed, Segment: 7, TimestampMS: 10, Payload: HydrationFailedPayload{Reason: ReasonMissing}},
		{Type: SnapshotMarker, TimestampMS: 11, Payload: SnapshotMarkerPayload{SnapshotID: 3}},
	}
	x := NewIndex("s")
	one := SegmentState{Stream: "s", Segment: 7}
	for _, r := range history {
		x.Apply(r)
		one.Apply(r)
		want, _ := x.Get(7)
		if one != want {
			t.Fatalf("after %s: SegmentState.Apply gives %+v, Index.Apply %+v", r.Type, one, want)
		}
	}
	if !one.NeedsRecovery || one.InTier0 || one.InTier1 || !one.InTier2 {
		t.Fatalf("segment 7 folded to %+v, want only in Tier 2 and needing recovery", one)
	}
}
