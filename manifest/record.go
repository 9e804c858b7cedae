package manifest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc64"
	"strconv"
)

// crcTable is CRC-64/NVME, the checksum of every manifest structure.
var crcTable = crc64.MakeTable(0x9a6c9329ac4bc9b5)

// CRC64 returns the CRC-64/NVME checksum of b.
func CRC64(b []byte) uint64 { return crc64.Checksum(b, crcTable) }

// RecordHeaderSize is the size in bytes of a record header.
const RecordHeaderSize = 40

// MaxPayloadSize bounds payload_len so a corrupt length cannot make a reader
// allocate gigabytes (bytes). The largest defined payload is UploadDone with
// two 64 KiB strings.
const MaxPayloadSize = 1 << 20

// RecordType identifies a manifest record. The ids are those of the original
// AOF2 manifest and never change.
type RecordType uint16

const (
	SegmentOpened      RecordType = 0
	SealSegment        RecordType = 1
	CompressionStarted RecordType = 2
	CompressionDone    RecordType = 3
	CompressionFailed  RecordType = 4
	UploadStarted      RecordType = 5
	UploadDone         RecordType = 6
	UploadFailed       RecordType = 7
	Tier2DeleteQueued  RecordType = 8
	Tier2Deleted       RecordType = 9
	HydrationStarted   RecordType = 10
	HydrationDone      RecordType = 11
	HydrationFailed    RecordType = 12
	LocalEvicted       RecordType = 13
	SnapshotMarker     RecordType = 14
	CustomEvent        RecordType = 15
	// SegmentBounds is this gateway's own record (the original AOF2 ids
	// end at 15): the first and last ext id and append time of a sealed
	// segment, so a reader seeks by time or sequence from the index
	// alone. Older readers skip it as an unknown id.
	SegmentBounds RecordType = 16
)

var recordTypeNames = [...]string{
	"SegmentOpened", "SealSegment", "CompressionStarted", "CompressionDone",
	"CompressionFailed", "UploadStarted", "UploadDone", "UploadFailed",
	"Tier2DeleteQueued", "Tier2Deleted", "HydrationStarted", "HydrationDone",
	"HydrationFailed", "LocalEvicted", "SnapshotMarker", "CustomEvent",
	"SegmentBounds",
}

// String returns the record type's name, or "Unknown(<id>)".
func (t RecordType) String() string {
	if int(t) < len(recordTypeNames) {
		return recordTypeNames[t]
	}
	return "Unknown(" + strconv.Itoa(int(t)) + ")"
}

// Known reports whether t is one of the defined record types (ids 0-16).
func (t RecordType) Known() bool { return int(t) < len(recordTypeNames) }

// ReasonCode says why a transition failed and what should happen next.
type ReasonCode uint32

const (
	// ReasonTransient: retry automatically.
	ReasonTransient ReasonCode = 0
	// ReasonCodec: permanent codec error, the segment is corrupt.
	ReasonCodec ReasonCode = 1
	// ReasonAuth: Tier 2 authentication or authorization failure; operator action.
	ReasonAuth ReasonCode = 2
	// ReasonUnavailable: bucket or network unavailable.
	ReasonUnavailable ReasonCode = 3
	// ReasonMissing: Tier 2 object missing; repair.
	ReasonMissing ReasonCode = 4
)

func (c ReasonCode) String() string {
	switch c {
	case ReasonTransient:
		return "transient"
	case ReasonCodec:
		return "codec"
	case ReasonAuth:
		return "auth"
	case ReasonUnavailable:
		return "unavailable"
	case ReasonMissing:
		return "missing"
	}
	return "reason(" + strconv.FormatUint(uint64(c), 10) + ")"
}

// Record flags (the flags u16 of the record header).
const (
	// FlagTier1Copy on a LocalEvicted record says the Tier 1 copy was
	// evicted. Without it the Tier 0 copy is evicted if resident, else the
	// Tier 1 copy.
	FlagTier1Copy uint16 = 1 << 0
)

// Record is one manifest record: a tier transition of one segment.
type Record struct {
	Type          RecordType
	Flags         uint16
	Segment       uint64
	LogicalOffset uint64
	TimestampMS   int64
	// Payload must match Type; a nil Payload encodes as the zero payload of
	// Type. Decoding an unknown type yields *UnknownPayload.
	Payload Payload
}

// Payload is the type-specific part of a record. Each record type has one
// implementation; UnknownPayload carries the bytes of ids this code does not
// know.
type Payload interface {
	// RecordType returns the id the payload is encoded under.
	RecordType() RecordType
	appendTo(dst []byte) []byte
}

// payloadDecoder is implemented by the pointer form of every payload.
type payloadDecoder interface {
	Payload
	decode(b []byte) error
}

type (
	SegmentOpenedPayload struct {
		BaseOffset uint64
		Epoch      uint32
	}
	SealSegmentPayload struct {
		DurableBytes, SegmentCRC64, ExtID, CoordinatorWatermark uint64
		FlushFailure                                            bool
	}
	CompressionStartedPayload struct{ JobID uint32 }
	CompressionDonePayload    struct {
		CompressedBytes uint64
		DictionaryID    uint32
	}
	CompressionFailedPayload struct{ Reason ReasonCode }
	UploadStartedPayload     struct{ Key string }
	UploadDonePayload        struct{ Key, ETag string }
	UploadFailedPayload      struct {
		Key    string
		Reason ReasonCode
	}
	Tier2DeleteQueuedPayload struct{ Key string }
	Tier2DeletedPayload      struct{ Key string }
	// HydrationStartedPayload.SourceTier is the tier the data is read from (1 or 2).
	HydrationStartedPayload struct{ SourceTier uint64 }
	HydrationDonePayload    struct{ ResidentBytes uint64 }
	HydrationFailedPayload  struct{ Reason ReasonCode }
	LocalEvictedPayload     struct{ ReclaimedBytes uint64 }
	SnapshotMarkerPayload   struct{ ChunkIndex, ChunkOffset, SnapshotID uint64 }
	CustomEventPayload      struct {
		SchemaID uint32
		Blob     []byte
	}
	// SegmentBoundsPayload describes the records of a sealed segment: the
	// ext ids and append_ts_ms of its first and last record. All zero for
	// a segment without records.
	SegmentBoundsPayload struct {
		FirstExtID, LastExtID       uint64
		FirstAppendMS, LastAppendMS int64
	}
	// UnknownPayload holds the payload of a record type this code does not know.
	UnknownPayload struct {
		Type RecordType
		Raw  []byte
	}
)

// ErrPayload is wrapped by errors about a payload that does not match its type.
var ErrPayload = errors.New("manifest: malformed payload")

func (SegmentOpenedPayload) RecordType() RecordType      { return SegmentOpened }
func (SealSegmentPayload) RecordType() RecordType        { return SealSegment }
func (CompressionStartedPayload) RecordType() RecordType { return CompressionStarted }
func (CompressionDonePayload) RecordType() RecordType    { return CompressionDone }
func (CompressionFailedPayload) RecordType() RecordType  { return CompressionFailed }
func (UploadStartedPayload) RecordType() RecordType      { return UploadStarted }
func (UploadDonePayload) RecordType() RecordType         { return UploadDone }
func (UploadFailedPayload) RecordType() RecordType       { return UploadFailed }
func (Tier2DeleteQueuedPayload) RecordType() RecordType  { return Tier2DeleteQueued }
func (Tier2DeletedPayload) RecordType() RecordType       { return Tier2Deleted }
func (HydrationStartedPayload) RecordType() RecordType   { return HydrationStarted }
func (HydrationDonePayload) RecordType() RecordType      { return HydrationDone }
func (HydrationFailedPayload) RecordType() RecordType    { return HydrationFailed }
func (LocalEvictedPayload) RecordType() RecordType       { return LocalEvicted }
func (SnapshotMarkerPayload) RecordType() RecordType     { return SnapshotMarker }
func (CustomEventPayload) RecordType() RecordType        { return CustomEvent }
func (SegmentBoundsPayload) RecordType() RecordType      { return SegmentBounds }
func (p UnknownPayload) RecordType() RecordType          { return p.Type }

var le = binary.LittleEndian

func (p SegmentOpenedPayload) appendTo(b []byte) []byte {
	return le.AppendUint32(le.AppendUint64(b, p.BaseOffset), p.Epoch)
}
func (p SealSegmentPayload) appendTo(b []byte) []byte {
	b = le.AppendUint64(b, p.DurableBytes)
	b = le.AppendUint64(b, p.SegmentCRC64)
	b = le.AppendUint64(b, p.ExtID)
	b = le.AppendUint64(b, p.CoordinatorWatermark)
	if p.FlushFailure {
		return append(b, 1)
	}
	return append(b, 0)
}
func (p CompressionStartedPayload) appendTo(b []byte) []byte { return le.AppendUint32(b, p.JobID) }
func (p CompressionDonePayload) appendTo(b []byte) []byte {
	return le.AppendUint32(le.AppendUint64(b, p.CompressedBytes), p.DictionaryID)
}
func (p CompressionFailedPayload) appendTo(b []byte) []byte {
	return le.AppendUint32(b, uint32(p.Reason))
}
func (p UploadStartedPayload) appendTo(b []byte) []byte { return appendKey(b, p.Key) }
func (p UploadDonePayload) appendTo(b []byte) []byte {
	b = le.AppendUint16(b, uint16(len(p.Key)))
	b = le.AppendUint16(b, uint16(len(p.ETag)))
	return append(append(b, p.Key...), p.ETag...)
}
func (p UploadFailedPayload) appendTo(b []byte) []byte {
	b = le.AppendUint16(b, uint16(len(p.Key)))
	b = le.AppendUint32(b, uint32(p.Reason))
	return append(b, p.Key...)
}
func (p Tier2DeleteQueuedPayload) appendTo(b []byte) []byte { return appendKey(b, p.Key) }
func (p Tier2DeletedPayload) appendTo(b []byte) []byte      { return appendKey(b, p.Key) }
func (p HydrationStartedPayload) appendTo(b []byte) []byte  { return le.AppendUint64(b, p.SourceTier) }
func (p HydrationDonePayload) appendTo(b []byte) []byte     { return le.AppendUint64(b, p.ResidentBytes) }
func (p HydrationFailedPayload) appendTo(b []byte) []byte {
	return le.AppendUint32(b, uint32(p.Reason))
}
func (p LocalEvictedPayload) appendTo(b []byte) []byte { return le.AppendUint64(b, p.ReclaimedBytes) }
func (p SnapshotMarkerPayload) appendTo(b []byte) []byte {
	b = le.AppendUint64(b, p.ChunkIndex)
	b = le.AppendUint64(b, p.ChunkOffset)
	return le.AppendUint64(b, p.SnapshotID)
}
func (p CustomEventPayload) appendTo(b []byte) []byte {
	b = le.AppendUint32(b, p.SchemaID)
	b = le.AppendUint16(b, uint16(len(p.Blob)))
	return append(b, p.Blob...)
}
func (p SegmentBoundsPayload) appendTo(b []byte) []byte {
	b = le.AppendUint64(b, p.FirstExtID)
	b = le.AppendUint64(b, p.LastExtID)
	b = le.AppendUint64(b, uint64(p.FirstAppendMS))
	return le.AppendUint64(b, uint64(p.LastAppendMS))
}
func (p UnknownPayload) appendTo(b []byte) []byte { return append(b, p.Raw...) }

func appendKey(b []byte, key string) []byte {
	return append(le.AppendUint16(b, uint16(len(key))), key...)
}

func wantLen(b []byte, n int) error {
	if len(b) != n {
		return fmt.Errorf("%w: length %d, want %d", ErrPayload, len(b), n)
	}
	return nil
}

func decodeKey(b []byte) (string, error) {
	if len(b) < 2 {
		return "", fmt.Errorf("%w: short key length", ErrPayload)
	}
	n := int(le.Uint16(b))
	if err := wantLen(b[2:], n); err != nil {
		return "", err
	}
	return string(b[2:]), nil
}

func (p *SegmentOpenedPayload) decode(b []byte) error {
	if err := wantLen(b, 12); err != nil {
		return err
	}
	p.BaseOffset, p.Epoch = le.Uint64(b), le.Uint32(b[8:])
	return nil
}
func (p *SealSegmentPayload) decode(b []byte) error {
	if err := wantLen(b, 33); err != nil {
		return err
	}
	if b[32] > 1 {
		return fmt.Errorf("%w: flush_failure %d", ErrPayload, b[32])
	}
	p.DurableBytes, p.SegmentCRC64 = le.Uint64(b), le.Uint64(b[8:])
	p.ExtID, p.CoordinatorWatermark = le.Uint64(b[16:]), le.Uint64(b[24:])
	p.FlushFailure = b[32] == 1
	return nil
}
func (p *CompressionStartedPayload) decode(b []byte) error {
	if err := wantLen(b, 4); err != nil {
		return err
	}
	p.JobID = le.Uint32(b)
	return nil
}
func (p *CompressionDonePayload) decode(b []byte) error {
	if err := wantLen(b, 12); err != nil {
		return err
	}
	p.CompressedBytes, p.DictionaryID = le.Uint64(b), le.Uint32(b[8:])
	return nil
}
func (p *CompressionFailedPayload) decode(b []byte) error {
	if err := wantLen(b, 4); err != nil {
		return err
	}
	p.Reason = ReasonCode(le.Uint32(b))
	return nil
}
func (p *UploadStartedPayload) decode(b []byte) (err error) {
	p.Key, err = decodeKey(b)
	return err
}
func (p *UploadDonePayload) decode(b []byte) error {
	if len(b) < 4 {
		return fmt.Errorf("%w: short upload done", ErrPayload)
	}
	kl, el := int(le.Uint16(b)), int(le.Uint16(b[2:]))
	if err := wantLen(b[4:], kl+el); err != nil {
		return err
	}
	p.Key, p.ETag = string(b[4:4+kl]), string(b[4+kl:])
	return nil
}
func (p *UploadFailedPayload) decode(b []byte) error {
	if len(b) < 6 {
		return fmt.Errorf("%w: short upload failed", ErrPayload)
	}
	kl := int(le.Uint16(b))
	if err := wantLen(b[6:], kl); err != nil {
		return err
	}
	p.Reason, p.Key = ReasonCode(le.Uint32(b[2:])), string(b[6:])
	return nil
}
func (p *Tier2DeleteQueuedPayload) decode(b []byte) (err error) {
	p.Key, err = decodeKey(b)
	return err
}
func (p *Tier2DeletedPayload) decode(b []byte) (err error) {
	p.Key, err = decodeKey(b)
	return err
}
func (p *HydrationStartedPayload) decode(b []byte) error {
	if err := wantLen(b, 8); err != nil {
		return err
	}
	p.SourceTier = le.Uint64(b)
	return nil
}
func (p *HydrationDonePayload) decode(b []byte) error {
	if err := wantLen(b, 8); err != nil {
		return err
	}
	p.ResidentBytes = le.Uint64(b)
	return nil
}
func (p *HydrationFailedPayload) decode(b []byte) error {
	if err := wantLen(b, 4); err != nil {
		return err
	}
	p.Reason = ReasonCode(le.Uint32(b))
	return nil
}
func (p *LocalEvictedPayload) decode(b []byte) error {
	if err := wantLen(b, 8); err != nil {
		return err
	}
	p.ReclaimedBytes = le.Uint64(b)
	return nil
}
func (p *SnapshotMarkerPayload) decode(b []byte) error {
	if err := wantLen(b, 24); err != nil {
		return err
	}
	p.ChunkIndex, p.ChunkOffset, p.SnapshotID = le.Uint64(b), le.Uint64(b[8:]), le.Uint64(b[16:])
	return nil
}
func (p *CustomEventPayload) decode(b []byte) error {
	if len(b) < 6 {
		return fmt.Errorf("%w: short custom event", ErrPayload)
	}
	n := int(le.Uint16(b[4:]))
	if err := wantLen(b[6:], n); err != nil {
		return err
	}
	p.SchemaID = le.Uint32(b)
	p.Blob = append([]byte(nil), b[6:]...)
	return nil
}
func (p *SegmentBoundsPayload) decode(b []byte) error {
	if err := wantLen(b, 32); err != nil {
		return err
	}
	p.FirstExtID, p.LastExtID = le.Uint64(b), le.Uint64(b[8:])
	p.FirstAppendMS, p.LastAppendMS = int64(le.Uint64(b[16:])), int64(le.Uint64(b[24:]))
	return nil
}
func (p *UnknownPayload) decode(b []byte) error {
	p.Raw = append([]byte(nil), b...)
	return nil
}

// newPayload returns a pointer to the zero payload of t.
func newPayload(t RecordType) payloadDecoder {
	switch t {
	case SegmentOpened:
		return &SegmentOpenedPayload{}
	case SealSegment:
		return &SealSegmentPayload{}
	case CompressionStarted:
		return &CompressionStartedPayload{}
	case CompressionDone:
		return &CompressionDonePayload{}
	case CompressionFailed:
		return &CompressionFailedPayload{}
	case UploadStarted:
		return &UploadStartedPayload{}
	case UploadDone:
		return &UploadDonePayload{}
	case UploadFailed:
		return &UploadFailedPayload{}
	case Tier2DeleteQueued:
		return &Tier2DeleteQueuedPayload{}
	case Tier2Deleted:
		return &Tier2DeletedPayload{}
	case HydrationStarted:
		return &HydrationStartedPayload{}
	case HydrationDone:
		return &HydrationDonePayload{}
	case HydrationFailed:
		return &HydrationFailedPayload{}
	case LocalEvicted:
		return &LocalEvictedPayload{}
	case SnapshotMarker:
		return &SnapshotMarkerPayload{}
	case CustomEvent:
		return &CustomEventPayload{}
	case SegmentBounds:
		return &SegmentBoundsPayload{}
	}
	return &UnknownPayload{Type: t}
}

// deref turns the pointer payload produced by decoding into the value form
// callers construct, so decoded records compare equal to written ones.
func deref(p payloadDecoder) Payload {
	switch v := p.(type) {
	case *SegmentOpenedPayload:
		return *v
	case *SealSegmentPayload:
		return *v
	case *CompressionStartedPayload:
		return *v
	case *CompressionDonePayload:
		return *v
	case *CompressionFailedPayload:
		return *v
	case *UploadStartedPayload:
		return *v
	case *UploadDonePayload:
		return *v
	case *UploadFailedPayload:
		return *v
	case *Tier2DeleteQueuedPayload:
		return *v
	case *Tier2DeletedPayload:
		return *v
	case *HydrationStartedPayload:
		return *v
	case *HydrationDonePayload:
		return *v
	case *HydrationFailedPayload:
		return *v
	case *LocalEvictedPayload:
		return *v
	case *SnapshotMarkerPayload:
		return *v
	case *CustomEventPayload:
		return *v
	case *SegmentBoundsPayload:
		return *v
	case *UnknownPayload:
		return *v
	}
	return p
}

// Validate reports whether r can be encoded: the payload matches the type
// and every length fits its field.
func (r Record) Validate() error {
	p := r.Payload
	if p == nil {
		if !r.Type.Known() {
			return nil
		}
		p = deref(newPayload(r.Type))
	}
	if p.RecordType() != r.Type {
		return fmt.Errorf("%w: %T under record type %s", ErrPayload, p, r.Type)
	}
	switch v := p.(type) {
	case UploadStartedPayload:
		return checkLen("key", len(v.Key))
	case UploadDonePayload:
		if err := checkLen("key", len(v.Key)); err != nil {
			return err
		}
		return checkLen("etag", len(v.ETag))
	case UploadFailedPayload:
		return checkLen("key", len(v.Key))
	case Tier2DeleteQueuedPayload:
		return checkLen("key", len(v.Key))
	case Tier2DeletedPayload:
		return checkLen("key", len(v.Key))
	case CustomEventPayload:
		return checkLen("blob", len(v.Blob))
	case UnknownPayload:
		if r.Type.Known() {
			return fmt.Errorf("%w: raw payload under known record type %s", ErrPayload, r.Type)
		}
		if len(v.Raw) > MaxPayloadSize {
			return fmt.Errorf("%w: payload of %d bytes", ErrPayload, len(v.Raw))
		}
	}
	return nil
}

func checkLen(field string, n int) error {
	if n > 0xFFFF {
		return fmt.Errorf("%w: %s of %d bytes exceeds 65535", ErrPayload, field, n)
	}
	return nil
}

// AppendRecord appends the encoding of r to dst. r must pass Validate; an
// over-long key or blob is truncated by its u16 length otherwise, so callers
// that take untrusted input call Validate first (Log.Append does).
func AppendRecord(dst []byte, r Record) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, RecordHeaderSize)...)
	p := r.Payload
	if p == nil {
		p = deref(newPayload(r.Type))
	}
	dst = p.appendTo(dst)
	payload := dst[start+RecordHeaderSize:]
	h := dst[start : start+RecordHeaderSize]
	le.PutUint16(h[0:], uint16(r.Type))
	le.PutUint16(h[2:], r.Flags)
	le.PutUint32(h[4:], uint32(len(payload)))
	le.PutUint64(h[8:], r.Segment)
	le.PutUint64(h[16:], r.LogicalOffset)
	le.PutUint64(h[24:], uint64(r.TimestampMS))
	le.PutUint64(h[32:], CRC64(payload))
	return dst
}

// Errors DecodeRecord wraps.
var (
	// ErrShortRecord: b ends before the record does (a torn tail when it is
	// past the committed length).
	ErrShortRecord = errors.New("manifest: short record")
	// ErrRecordCRC: the payload does not match payload_crc64.
	ErrRecordCRC = errors.New("manifest: record checksum mismatch")
)

// DecodeRecord decodes the record at the start of b and returns it with its
// encoded size. A record of an unknown type decodes to *UnknownPayload
// without error, so readers can skip it and count it.
func DecodeRecord(b []byte) (Record, int, error) {
	if len(b) < RecordHeaderSize {
		return Record{}, 0, fmt.Errorf("%w: %d header bytes", ErrShortRecord, len(b))
	}
	n := le.Uint32(b[4:])
	if n > MaxPayloadSize {
		return Record{}, 0, fmt.Errorf("%w: payload_len %d exceeds %d", ErrPayload, n, MaxPayloadSize)
	}
	size := RecordHeaderSize + int(n)
	if len(b) < size {
		return Record{}, 0, fmt.Errorf("%w: %d of %d bytes", ErrShortRecord, len(b), size)
	}
	payload := b[RecordHeaderSize:size]
	if got, want := CRC64(payload), le.Uint64(b[32:]); got != want {
		return Record{}, 0, fmt.Errorf("%w: crc %#x, header says %#x", ErrRecordCRC, got, want)
	}
	r := Record{
		Type:          RecordType(le.Uint16(b)),
		Flags:         le.Uint16(b[2:]),
		Segment:       le.Uint64(b[8:]),
		LogicalOffset: le.Uint64(b[16:]),
		TimestampMS:   int64(le.Uint64(b[24:])),
	}
	p := newPayload(r.Type)
	if err := p.decode(payload); err != nil {
		return Record{}, 0, fmt.Errorf("decode %s: %w", r.Type, err)
	}
	r.Payload = deref(p)
	return r, size, nil
}
