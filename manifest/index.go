package manifest

import (
	"bytes"
	"fmt"
	"sort"
)

// PendingJobs is a bit set of the background jobs in flight for a segment.
type PendingJobs uint8

const (
	PendingCompression PendingJobs = 1 << iota
	PendingUpload
	PendingHydration
	PendingDelete
)

// SegmentState is the folded manifest history of one segment: where it is
// resident, what is in flight and whether it needs an operator.
type SegmentState struct {
	Stream     string
	Segment    uint64
	BaseOffset uint64
	Epoch      uint32
	// LastLogicalOffset is the largest logical offset any record carried.
	LastLogicalOffset uint64
	LastTimestampMS   int64
	// OpenedMS is when the segment was opened (its SegmentOpened record):
	// retention by age counts from it.
	OpenedMS    int64
	RecordCount uint64

	Sealed       bool
	DurableBytes uint64
	CRC64        uint64
	LastExtID    uint64
	FlushFailure bool

	// BoundsKnown is set by a SegmentBounds record: FirstExtID,
	// FirstAppendMS and LastAppendMS (and LastExtID) describe the
	// segment's first and last record. Segments sealed before that
	// record existed, or whose seal a crash recorded again from the
	// footer alone, have it unset and zero times: unknown, not empty.
	BoundsKnown   bool
	FirstExtID    uint64
	FirstAppendMS int64
	LastAppendMS  int64

	InTier0, InTier1, InTier2 bool
	CompressedBytes           uint64
	DictionaryID              uint32
	ResidentBytes             uint64
	Tier2Key                  string
	ETag                      string
	// HydrationSource is the SourceTier of the hydration in flight or last done.
	HydrationSource uint64

	PendingJobs PendingJobs
	// LastFailure is the reason of the latest failed transition, valid when
	// Failures > 0.
	LastFailure ReasonCode
	Failures    uint32
	// NeedsRecovery is set by a failure no retry can fix: a codec error or a
	// missing Tier 2 object. Reason says which.
	NeedsRecovery bool
	Reason        ReasonCode
	// Deleted: the segment has no copy left in any tier.
	Deleted bool
}

// Index folds manifest records into per-segment state. Folding the same
// records in the same order always yields an Equal index, whether they come
// from a snapshot plus a tail or from the first chunk. An Index is not safe
// for concurrent use; Log.Index returns a private copy.
type Index struct {
	Stream   string
	segments map[uint64]*SegmentState

	// Records counts records applied; Unknown those of unknown type
	// (skipped); Custom the CustomEvent records.
	Records, Unknown, Custom uint64
	// LastSnapshotID is the id of the latest SnapshotMarker applied.
	LastSnapshotID uint64
}

// NewIndex returns an empty index for stream.
func NewIndex(stream string) *Index {
	return &Index{Stream: stream, segments: make(map[uint64]*SegmentState)}
}

func (x *Index) seg(id uint64) *SegmentState {
	s := x.segments[id]
	if s == nil {
		s = &SegmentState{Stream: x.Stream, Segment: id}
		x.segments[id] = s
	}
	return s
}

// Apply folds one record into the index. Records of unknown type are
// counted and otherwise ignored.
func (x *Index) Apply(r Record) {
	x.Records++
	switch r.Type {
	case SnapshotMarker:
		if p, ok := r.Payload.(SnapshotMarkerPayload); ok {
			x.LastSnapshotID = p.SnapshotID
		}
		return
	case CustomEvent:
		x.Custom++
		return
	}
	if !r.Type.Known() {
		x.Unknown++
		return
	}
	s := x.seg(r.Segment)
	s.RecordCount++
	s.LastLogicalOffset = max(s.LastLogicalOffset, r.LogicalOffset)
	s.LastTimestampMS = max(s.LastTimestampMS, r.TimestampMS)
	switch p := r.Payload.(type) {
	case SegmentOpenedPayload:
		s.BaseOffset, s.Epoch = p.BaseOffset, p.Epoch
		s.InTier0, s.Deleted = true, false
		s.OpenedMS = r.TimestampMS
	case SealSegmentPayload:
		s.Sealed = true
		s.DurableBytes, s.CRC64, s.LastExtID, s.FlushFailure = p.DurableBytes, p.SegmentCRC64, p.ExtID, p.FlushFailure
	case SegmentBoundsPayload:
		s.BoundsKnown = true
		s.FirstExtID, s.LastExtID = p.FirstExtID, p.LastExtID
		s.FirstAppendMS, s.LastAppendMS = p.FirstAppendMS, p.LastAppendMS
	case CompressionStartedPayload:
		s.PendingJobs |= PendingCompression
	case CompressionDonePayload:
		s.PendingJobs &^= PendingCompression
		s.InTier1, s.Deleted = true, false
		s.CompressedBytes, s.DictionaryID = p.CompressedBytes, p.DictionaryID
	case CompressionFailedPayload:
		s.PendingJobs &^= PendingCompression
		s.fail(p.Reason)
	case UploadStartedPayload:
		// What the key holds is unconfirmed until UploadDone: a repair
		// (re-upload) replaces an object the manifest vouched for.
		s.PendingJobs |= PendingUpload
		s.Tier2Key, s.InTier2, s.ETag = p.Key, false, ""
	case UploadDonePayload:
		s.PendingJobs &^= PendingUpload
		s.InTier2, s.Deleted = true, false
		s.Tier2Key, s.ETag = p.Key, p.ETag
	case UploadFailedPayload:
		s.PendingJobs &^= PendingUpload
		s.fail(p.Reason)
	case Tier2DeleteQueuedPayload:
		s.PendingJobs |= PendingDelete
	case Tier2DeletedPayload:
		s.PendingJobs &^= PendingDelete
		s.InTier2, s.Tier2Key, s.ETag = false, "", ""
		s.Deleted = !s.InTier0 && !s.InTier1
	case HydrationStartedPayload:
		s.PendingJobs |= PendingHydration
		s.HydrationSource = p.SourceTier
	case HydrationDonePayload:
		s.PendingJobs &^= PendingHydration
		s.ResidentBytes = p.ResidentBytes
		// Hydration moves data one tier up: from Tier 2 into Tier 1, from
		// Tier 1 into Tier 0.
		if s.HydrationSource >= 2 {
			s.InTier1 = true
		} else {
			s.InTier0 = true
		}
		s.Deleted = false
	case HydrationFailedPayload:
		s.PendingJobs &^= PendingHydration
		s.fail(p.Reason)
	case LocalEvictedPayload:
		// The flag alone says which copy went: a repeated Tier 0
		// eviction (its file removal failed and was redone) must not be
		// read as the Tier 1 copy going.
		if r.Flags&FlagTier1Copy == 0 {
			s.InTier0 = false
		} else {
			s.InTier1 = false
		}
		s.Deleted = !s.InTier0 && !s.InTier1 && !s.InTier2
	}
}

func (s *SegmentState) fail(reason ReasonCode) {
	s.LastFailure = reason
	s.Failures++
	if reason == ReasonCodec || reason == ReasonMissing {
		s.NeedsRecovery, s.Reason = true, reason
	}
}

// Get returns a copy of the state of segment id.
func (x *Index) Get(id uint64) (SegmentState, bool) {
	s, ok := x.segments[id]
	if !ok {
		return SegmentState{}, false
	}
	return *s, true
}

// Len returns the number of segments.
func (x *Index) Len() int { return len(x.segments) }

// Segments returns a copy of every segment's state sorted by segment id.
func (x *Index) Segments() []SegmentState {
	out := make([]SegmentState, 0, len(x.segments))
	for _, s := range x.segments {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Segment < out[j].Segment })
	return out
}

// Clone returns a deep copy.
func (x *Index) Clone() *Index {
	c := *x
	c.segments = make(map[uint64]*SegmentState, len(x.segments))
	for id, s := range x.segments {
		cp := *s
		c.segments[id] = &cp
	}
	return &c
}

// Equal reports whether x and y hold the same state.
func (x *Index) Equal(y *Index) bool {
	return bytes.Equal(x.AppendBinary(nil), y.AppendBinary(nil))
}

// indexVersion is the version of the encoding AppendBinary writes; it is
// part of snapshot format v4 (v3 snapshots carry versions 1 and 2).
const indexVersion = 3

// AppendBinary appends the deterministic encoding of x (segments in id
// order, layout in the package doc) to b.
func (x *Index) AppendBinary(b []byte) []byte {
	b = le.AppendUint16(b, indexVersion)
	b = appendKey(b, x.Stream)
	b = le.AppendUint64(b, x.Records)
	b = le.AppendUint64(b, x.Unknown)
	b = le.AppendUint64(b, x.Custom)
	b = le.AppendUint64(b, x.LastSnapshotID)
	b = le.AppendUint32(b, uint32(len(x.segments)))
	for _, s := range x.Segments() {
		b = le.AppendUint64(b, s.Segment)
		b = le.AppendUint64(b, s.BaseOffset)
		b = le.AppendUint32(b, s.Epoch)
		b = le.AppendUint64(b, s.LastLogicalOffset)
		b = le.AppendUint64(b, uint64(s.LastTimestampMS))
		b = le.AppendUint64(b, uint64(s.OpenedMS))
		b = le.AppendUint64(b, s.RecordCount)
		b = le.AppendUint64(b, s.DurableBytes)
		b = le.AppendUint64(b, s.CRC64)
		b = le.AppendUint64(b, s.LastExtID)
		b = le.AppendUint64(b, s.FirstExtID)
		b = le.AppendUint64(b, uint64(s.FirstAppendMS))
		b = le.AppendUint64(b, uint64(s.LastAppendMS))
		b = le.AppendUint64(b, s.CompressedBytes)
		b = le.AppendUint32(b, s.DictionaryID)
		b = le.AppendUint64(b, s.ResidentBytes)
		b = le.AppendUint64(b, s.HydrationSource)
		b = le.AppendUint32(b, uint32(s.LastFailure))
		b = le.AppendUint32(b, s.Failures)
		b = le.AppendUint32(b, uint32(s.Reason))
		b = append(b, byte(s.PendingJobs), s.flags())
		b = appendKey(b, s.Tier2Key)
		b = appendKey(b, s.ETag)
	}
	return b
}

const (
	stSealed = 1 << iota
	stFlushFailure
	stTier0
	stTier1
	stTier2
	stNeedsRecovery
	stDeleted
	stBoundsKnown
)

func (s *SegmentState) flags() byte {
	var f byte
	for _, c := range []struct {
		on  bool
		bit byte
	}{{s.Sealed, stSealed}, {s.FlushFailure, stFlushFailure}, {s.InTier0, stTier0}, {s.InTier1, stTier1},
		{s.InTier2, stTier2}, {s.NeedsRecovery, stNeedsRecovery}, {s.Deleted, stDeleted},
		{s.BoundsKnown, stBoundsKnown}} {
		if c.on {
			f |= c.bit
		}
	}
	return f
}

// segmentFixedSize is the encoded size of a segment's fixed-width fields
// in version 1, the smallest.
const segmentFixedSize = 8*11 + 4*5 + 2

// DecodeIndex decodes what AppendBinary wrote.
func DecodeIndex(b []byte) (*Index, error) {
	d := decoder{b: b}
	v := d.u16()
	if v < 1 || v > indexVersion {
		return nil, fmt.Errorf("index version %d, want 1 to %d", v, indexVersion)
	}
	x := NewIndex(d.str())
	x.Records, x.Unknown, x.Custom, x.LastSnapshotID = d.u64(), d.u64(), d.u64(), d.u64()
	n := d.u32()
	if d.err == nil && uint64(n)*segmentFixedSize > uint64(len(d.b)) {
		return nil, fmt.Errorf("index: %d segments in %d bytes", n, len(d.b))
	}
	for i := uint32(0); i < n && d.err == nil; i++ {
		s := &SegmentState{Stream: x.Stream}
		s.Segment, s.BaseOffset, s.Epoch = d.u64(), d.u64(), d.u32()
		s.LastLogicalOffset, s.LastTimestampMS = d.u64(), int64(d.u64())
		if v >= 2 {
			// Version 1 did not carry it: such segments are not aged by
			// retention until they are seen opened again.
			s.OpenedMS = int64(d.u64())
		}
		s.RecordCount = d.u64()
		s.DurableBytes, s.CRC64, s.LastExtID = d.u64(), d.u64(), d.u64()
		if v >= 3 {
			// Versions 1 and 2 predate SegmentBounds: their segments'
			// bounds stay unknown (BoundsKnown unset).
			s.FirstExtID, s.FirstAppendMS, s.LastAppendMS = d.u64(), int64(d.u64()), int64(d.u64())
		}
		s.CompressedBytes, s.DictionaryID, s.ResidentBytes, s.HydrationSource = d.u64(), d.u32(), d.u64(), d.u64()
		s.LastFailure, s.Failures, s.Reason = ReasonCode(d.u32()), d.u32(), ReasonCode(d.u32())
		s.PendingJobs = PendingJobs(d.u8())
		f := d.u8()
		s.Sealed, s.FlushFailure = f&stSealed != 0, f&stFlushFailure != 0
		s.InTier0, s.InTier1, s.InTier2 = f&stTier0 != 0, f&stTier1 != 0, f&stTier2 != 0
		s.NeedsRecovery, s.Deleted = f&stNeedsRecovery != 0, f&stDeleted != 0
		s.BoundsKnown = f&stBoundsKnown != 0
		s.Tier2Key, s.ETag = d.str(), d.str()
		if _, dup := x.segments[s.Segment]; dup && d.err == nil {
			return nil, fmt.Errorf("index: segment %d twice", s.Segment)
		}
		x.segments[s.Segment] = s
	}
	if d.err != nil {
		return nil, fmt.Errorf("index: %w", d.err)
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("index: %d trailing bytes", len(d.b))
	}
	return x, nil
}

// decoder reads little-endian fields and remembers the first short read.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil || len(d.b) < n {
		if d.err == nil {
			d.err = fmt.Errorf("short buffer: want %d bytes, have %d", n, len(d.b))
		}
		return make([]byte, n)
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}
func (d *decoder) u8() uint8   { return d.take(1)[0] }
func (d *decoder) u16() uint16 { return le.Uint16(d.take(2)) }
func (d *decoder) u32() uint32 { return le.Uint32(d.take(4)) }
func (d *decoder) u64() uint64 { return le.Uint64(d.take(8)) }
func (d *decoder) str() string { return string(d.take(int(d.u16()))) }
