package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// A manifest written before SegmentBounds existed has SealSegment alone:
// the segment folds as sealed with its last ext id and unknown bounds.
func TestSealWithoutBoundsRecordLeavesBoundsUnknown(t *testing.T) {
	x := fold([]Record{
		{Type: SegmentOpened, Segment: 1, TimestampMS: 1000, Payload: SegmentOpenedPayload{}},
		{Type: SealSegment, Segment: 1, LogicalOffset: 5, TimestampMS: 2000, Payload: SealSegmentPayload{DurableBytes: 500, ExtID: 15}},
	})
	s, _ := x.Get(1)
	if !s.Sealed || s.LastExtID != 15 || s.BoundsKnown || s.FirstExtID != 0 || s.FirstAppendMS != 0 || s.LastAppendMS != 0 {
		t.Fatalf("old seal folds to %+v", s)
	}
}

func TestSegmentBoundsFoldExactly(t *testing.T) {
	b := SegmentBoundsPayload{FirstExtID: 11, LastExtID: 15, FirstAppendMS: 1100, LastAppendMS: 1900}
	recs := []Record{
		{Type: SegmentOpened, Segment: 1, TimestampMS: 1000, Payload: SegmentOpenedPayload{}},
		{Type: SegmentBounds, Segment: 1, LogicalOffset: 5, TimestampMS: 2000, Payload: b},
		{Type: SealSegment, Segment: 1, LogicalOffset: 5, TimestampMS: 2000, Payload: SealSegmentPayload{DurableBytes: 500, ExtID: 15}},
	}
	var raw []byte
	for _, r := range recs {
		raw = AppendRecord(raw, r)
	}
	x := NewIndex("demo")
	for len(raw) > 0 {
		r, n, err := DecodeRecord(raw)
		if err != nil {
			t.Fatal(err)
		}
		x.Apply(r)
		raw = raw[n:]
	}
	s, _ := x.Get(1)
	if !s.BoundsKnown || s.FirstExtID != 11 || s.LastExtID != 15 || s.FirstAppendMS != 1100 || s.LastAppendMS != 1900 {
		t.Fatalf("bounds fold to %+v", s)
	}
	if x.Unknown != 0 {
		t.Fatalf("SegmentBounds counted as unknown: %d", x.Unknown)
	}
}

func TestSegmentBoundsPayloadLength(t *testing.T) {
	r := Record{Type: SegmentBounds, Segment: 1, Payload: SegmentBoundsPayload{FirstExtID: 1}}
	b := AppendRecord(nil, r)
	if got := le.Uint32(b[4:]); got != 32 {
		t.Fatalf("payload_len %d, want 32", got)
	}
	// A payload of another length is malformed, not silently padded.
	short := AppendRecord(nil, Record{Type: 99, Payload: UnknownPayload{Type: 99, Raw: make([]byte, 31)}})
	le.PutUint16(short, uint16(SegmentBounds))
	if _, _, err := DecodeRecord(short); !errors.Is(err, ErrPayload) {
		t.Fatalf("31-byte SegmentBounds payload: %v", err)
	}
}

// testdata/snapshot/v3.bin was written by the code before SegmentBounds
// (AOF2SNAP version 3, index version 2): segment 1 sealed with ext id 10,
// segment 2 open.
func TestSnapshotV3StillLoads(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "snapshot", "v3.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if v := le.Uint32(b[8:]); v != 3 {
		t.Fatalf("fixture is version %d", v)
	}
	s, err := DecodeSnapshot(b)
	if err != nil {
		t.Fatalf("v3 snapshot refused: %v", err)
	}
	if s.ID != 7 || s.NextRecord != 3 || s.Index.Len() != 2 {
		t.Fatalf("v3 snapshot decodes to id %d next %d with %d segments", s.ID, s.NextRecord, s.Index.Len())
	}
	seg, _ := s.Index.Get(1)
	if !seg.Sealed || seg.LastExtID != 10 || seg.DurableBytes != 4096 || seg.OpenedMS != 1700000000000 ||
		seg.BoundsKnown || seg.FirstAppendMS != 0 || seg.LastAppendMS != 0 {
		t.Fatalf("segment 1 from v3: %+v", seg)
	}
	// Written again it is version 4 and keeps every field.
	again := s.AppendBinary(nil)
	if v := le.Uint32(again[8:]); v != snapshotVersion {
		t.Fatalf("rewritten as version %d", v)
	}
	got, err := DecodeSnapshot(again)
	if err != nil || !reflect.DeepEqual(got.Index.Segments(), s.Index.Segments()) {
		t.Fatalf("v3 -> v4: %v", err)
	}
}

func TestSnapshotV4RoundTripsBounds(t *testing.T) {
	x := fold([]Record{
		{Type: SegmentOpened, Segment: 3, TimestampMS: 1000, Payload: SegmentOpenedPayload{BaseOffset: 40}},
		{Type: SegmentBounds, Segment: 3, LogicalOffset: 45, Payload: SegmentBoundsPayload{FirstExtID: 101, LastExtID: 105, FirstAppendMS: 1001, LastAppendMS: 1999}},
		{Type: SealSegment, Segment: 3, LogicalOffset: 45, Payload: SealSegmentPayload{ExtID: 105}},
		{Type: SealSegment, Segment: 4, LogicalOffset: 50, Payload: SealSegmentPayload{ExtID: 110}},
	})
	s := &Snapshot{ID: 1, Index: x}
	got, err := DecodeSnapshot(s.AppendBinary(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Index.Segments(), x.Segments()) {
		t.Fatalf("v4 round trip:\n got %+v\nwant %+v", got.Index.Segments(), x.Segments())
	}
	if s3, _ := got.Index.Get(3); !s3.BoundsKnown || s3.FirstExtID != 101 || s3.FirstAppendMS != 1001 || s3.LastAppendMS != 1999 {
		t.Fatalf("segment 3: %+v", s3)
	}
	if s4, _ := got.Index.Get(4); s4.BoundsKnown {
		t.Fatalf("segment 4 without bounds decodes as known: %+v", s4)
	}
}
