package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/crc64"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Version is the segment format version this package writes and reads.
const Version = 2

const (
	// HeaderSize is the fixed size of the segment header, in bytes.
	HeaderSize = 64
	// RecordHeaderSize is the fixed size of a record header, in bytes; the
	// payload follows it.
	RecordHeaderSize = 36
	// FooterSize is the fixed size of the seal footer, in bytes.
	FooterSize = 96
	// MaxPayloadBytes bounds one record's payload (64 MiB). Anything larger
	// is refused by Append and treated as damage by the readers.
	MaxPayloadBytes = 64 << 20
)

const (
	headerMagic        = "AOF2SEGM"
	footerMagic        = "AOF2FOOT"
	footerTrailerMagic = "AOF2SEND"
)

// Footer flags.
const (
	FlagSealed    uint32 = 1
	FlagCompacted uint32 = 2
	FlagPartial   uint32 = 4
)

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	// nvme is CRC-64/NVME; its check value for "123456789" is 0xae8b14860a799888.
	nvme = crc64.MakeTable(0x9a6c9329ac4bc9b5)
)

// Header is the fixed header at the start of every segment file.
type Header struct {
	StreamID   uint64
	SegmentID  uint64
	BaseOffset uint64 // logical offset of the first record
	CreatedMS  int64  // creation time, Unix milliseconds
	ExtID      uint64 // ext id of the first record when known at creation, else 0
}

// Record is one record handed to Writer.Append.
type Record struct {
	Payload []byte
	ExtID   uint64 // JetStream stream sequence of the message
	Flags   uint32 // record flags, stored verbatim; 0 unless a caller defines some
}

// Entry is one record as read back from a segment.
type Entry struct {
	Offset   uint64 // logical offset
	ExtID    uint64
	AppendMS int64 // append time, Unix milliseconds
	Flags    uint32
	Payload  []byte
}

// Footer summarises a sealed segment. It is written once, at seal.
type Footer struct {
	RecordCount  uint64
	DurableBytes uint64 // header plus records: the byte offset where the footer starts
	CRC64        uint64 // CRC-64/NVME of bytes [0, DurableBytes)
	FirstExtID   uint64
	LastExtID    uint64
	FirstOffset  uint64 // with RecordCount 0 both offsets are the base offset
	LastOffset   uint64
	Flags        uint32 // FlagSealed | FlagCompacted | FlagPartial
}

// CorruptionError reports damage inside a segment: a record or structure
// that fails its checksum or its invariants at a place where a torn write
// cannot explain it. Offset is the byte offset in the segment file.
type CorruptionError struct {
	Stream  string
	Segment uint64
	Offset  int64
	Err     error
}

func (e *CorruptionError) Error() string {
	s := "segment: corruption"
	if e.Stream != "" {
		s += " in stream " + e.Stream
	}
	return fmt.Sprintf("%s segment %d at byte %d: %v", s, e.Segment, e.Offset, e.Err)
}

func (e *CorruptionError) Unwrap() error { return e.Err }

var (
	// ErrChecksum is the cause inside a CorruptionError for a failed checksum.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrSealed is returned when a writer is asked for a segment that
	// already carries a valid footer.
	ErrSealed = errors.New("segment: already sealed")
	// ErrClosed is returned by a closed Writer.
	ErrClosed = errors.New("segment: writer closed")
)

// FileName returns the base file name of segment id: "<id:020>.seg".
func FileName(id uint64) string { return fmt.Sprintf("%020d.seg", id) }

// tempSuffix marks a segment file that Create has not yet renamed into
// place.
const tempSuffix = ".tmp"

// TempFileName returns the base name Create writes segment id's header
// under before renaming it to FileName(id): "<id:020>.seg.tmp".
func TempFileName(id uint64) string { return FileName(id) + tempSuffix }

// ParseFileName returns the segment id named by a base file name produced
// by FileName; ok is false for any other name.
func ParseFileName(name string) (id uint64, ok bool) {
	name = filepath.Base(name)
	digits, found := strings.CutSuffix(name, ".seg")
	if !found || len(digits) != 20 {
		return 0, false
	}
	id, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return 0, false
	}
	return id, true
}

func encodeHeader(b []byte, h Header) {
	_ = b[HeaderSize-1]
	clear(b[:HeaderSize])
	copy(b[0:8], headerMagic)
	binary.LittleEndian.PutUint16(b[8:], Version)
	binary.LittleEndian.PutUint16(b[10:], HeaderSize)
	binary.LittleEndian.PutUint64(b[16:], h.StreamID)
	binary.LittleEndian.PutUint64(b[24:], h.SegmentID)
	binary.LittleEndian.PutUint64(b[32:], h.BaseOffset)
	binary.LittleEndian.PutUint64(b[40:], uint64(h.CreatedMS))
	binary.LittleEndian.PutUint64(b[48:], h.ExtID)
	binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
}

func decodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("header: short (%d bytes)", len(b))
	}
	if string(b[0:8]) != headerMagic {
		return Header{}, errors.New("header: bad magic")
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != Version {
		return Header{}, fmt.Errorf("header: unsupported version %d", v)
	}
	if n := binary.LittleEndian.Uint16(b[10:]); n != HeaderSize {
		return Header{}, fmt.Errorf("header: unexpected length %d", n)
	}
	if got, want := crc32.Checksum(b[:60], castagnoli), binary.LittleEndian.Uint32(b[60:]); got != want {
		return Header{}, fmt.Errorf("header: %w", ErrChecksum)
	}
	return Header{
		StreamID:   binary.LittleEndian.Uint64(b[16:]),
		SegmentID:  binary.LittleEndian.Uint64(b[24:]),
		BaseOffset: binary.LittleEndian.Uint64(b[32:]),
		CreatedMS:  int64(binary.LittleEndian.Uint64(b[40:])),
		ExtID:      binary.LittleEndian.Uint64(b[48:]),
	}, nil
}

// recordHeader is the decoded fixed part of a record.
type recordHeader struct {
	payloadLen uint32
	crc        uint32
	offset     uint64
	appendMS   int64
	extID      uint64
	flags      uint32
}

// appendRecord encodes one record onto buf and returns the extended slice.
// It allocates only when buf must grow.
func appendRecord(buf []byte, offset uint64, appendMS int64, extID uint64, flags uint32, payload []byte) []byte {
	start := len(buf)
	buf = slices.Grow(buf, RecordHeaderSize+len(payload))[:start+RecordHeaderSize+len(payload)]
	putRecordUnsummed(buf[start:], offset, appendMS, extID, flags, payload)
	sumRecord(buf[start:])
	return buf
}

// putRecordUnsummed encodes one record into rec, which is exactly
// RecordHeaderSize+len(payload) bytes, leaving the CRC for the caller to
// fill in with sumRecords3 or sumRecord.
func putRecordUnsummed(rec []byte, offset uint64, appendMS int64, extID uint64, flags uint32, payload []byte) {
	_ = rec[RecordHeaderSize-1]
	binary.LittleEndian.PutUint32(rec[0:], uint32(len(payload)))
	binary.LittleEndian.PutUint64(rec[8:], offset)
	binary.LittleEndian.PutUint64(rec[16:], uint64(appendMS))
	binary.LittleEndian.PutUint64(rec[24:], extID)
	binary.LittleEndian.PutUint32(rec[32:], flags)
	copy(rec[RecordHeaderSize:], payload)
}

// sumRecord writes the CRC of the encoded record rec.
func sumRecord(rec []byte) {
	binary.LittleEndian.PutUint32(rec[4:], recordCRC(rec))
}

// sumRecords3 writes the CRCs of three consecutive encoded records, buf[a:b],
// buf[b:c] and buf[c:end], computing them together.
func sumRecords3(buf []byte, a, b, c, end int) {
	r0, r1, r2 := buf[a:b], buf[b:c], buf[c:end]
	c0, c1, c2 := checksum3(r0[8:], r1[8:], r2[8:])
	binary.LittleEndian.PutUint32(r0[4:], c0)
	binary.LittleEndian.PutUint32(r1[4:], c1)
	binary.LittleEndian.PutUint32(r2[4:], c2)
}

// recordCRC is the CRC-32C of bytes 8 to the end of an encoded record (the
// fields and the payload, contiguous, one pass). payload_len, bytes 0-3, is
// covered all the same: it decides which bytes are summed, so a damaged
// length sums a different range and fails the check.
func recordCRC(rec []byte) uint32 {
	return crc32.Checksum(rec[8:], castagnoli)
}

func decodeRecordHeader(b []byte) recordHeader {
	_ = b[RecordHeaderSize-1]
	return recordHeader{
		payloadLen: binary.LittleEndian.Uint32(b[0:]),
		crc:        binary.LittleEndian.Uint32(b[4:]),
		offset:     binary.LittleEndian.Uint64(b[8:]),
		appendMS:   int64(binary.LittleEndian.Uint64(b[16:])),
		extID:      binary.LittleEndian.Uint64(b[24:]),
		flags:      binary.LittleEndian.Uint32(b[32:]),
	}
}

// DecodeRecord decodes the record at the start of b and checks its CRC-32C.
// It returns the entry (Payload aliases b) and the record's total size. A
// short buffer gives io.ErrUnexpectedEOF; a bad record gives an error
// wrapping ErrChecksum or describing the bad field.
func DecodeRecord(b []byte) (Entry, int, error) {
	if len(b) < RecordHeaderSize {
		return Entry{}, 0, errShortRecord
	}
	rh := decodeRecordHeader(b)
	if rh.payloadLen > MaxPayloadBytes {
		return Entry{}, 0, fmt.Errorf("%w: %d bytes", errRecordTooLarge, rh.payloadLen)
	}
	n := RecordHeaderSize + int(rh.payloadLen)
	if len(b) < n {
		return Entry{}, 0, errShortRecord
	}
	payload := b[RecordHeaderSize:n:n]
	if recordCRC(b[:n]) != rh.crc {
		return Entry{}, 0, fmt.Errorf("record: %w", ErrChecksum)
	}
	return Entry{Offset: rh.offset, ExtID: rh.extID, AppendMS: rh.appendMS, Flags: rh.flags, Payload: payload}, n, nil
}

func encodeFooter(b []byte, f Footer) {
	_ = b[FooterSize-1]
	clear(b[:FooterSize])
	copy(b[0:8], footerMagic)
	binary.LittleEndian.PutUint64(b[8:], f.RecordCount)
	binary.LittleEndian.PutUint64(b[16:], f.DurableBytes)
	binary.LittleEndian.PutUint64(b[24:], f.CRC64)
	binary.LittleEndian.PutUint64(b[32:], f.FirstExtID)
	binary.LittleEndian.PutUint64(b[40:], f.LastExtID)
	binary.LittleEndian.PutUint64(b[48:], f.FirstOffset)
	binary.LittleEndian.PutUint64(b[56:], f.LastOffset)
	binary.LittleEndian.PutUint32(b[64:], f.Flags)
	binary.LittleEndian.PutUint32(b[68:], FooterSize)
	binary.LittleEndian.PutUint32(b[84:], crc32.Checksum(b[:84], castagnoli))
	copy(b[88:96], footerTrailerMagic)
}

func decodeFooter(b []byte) (Footer, error) {
	if len(b) < FooterSize {
		return Footer{}, errors.New("footer: short")
	}
	if string(b[0:8]) != footerMagic || string(b[88:96]) != footerTrailerMagic {
		return Footer{}, errNoFooter
	}
	if n := binary.LittleEndian.Uint32(b[68:]); n != FooterSize {
		return Footer{}, fmt.Errorf("footer: unexpected length %d", n)
	}
	if got, want := crc32.Checksum(b[:84], castagnoli), binary.LittleEndian.Uint32(b[84:]); got != want {
		return Footer{}, fmt.Errorf("footer: %w", ErrChecksum)
	}
	return Footer{
		RecordCount:  binary.LittleEndian.Uint64(b[8:]),
		DurableBytes: binary.LittleEndian.Uint64(b[16:]),
		CRC64:        binary.LittleEndian.Uint64(b[24:]),
		FirstExtID:   binary.LittleEndian.Uint64(b[32:]),
		LastExtID:    binary.LittleEndian.Uint64(b[40:]),
		FirstOffset:  binary.LittleEndian.Uint64(b[48:]),
		LastOffset:   binary.LittleEndian.Uint64(b[56:]),
		Flags:        binary.LittleEndian.Uint32(b[64:]),
	}, nil
}

var (
	errShortRecord = errors.New("record: truncated")
	errNoFooter    = errors.New("footer: not present")
	// errRecordTooLarge: a payload length over MaxPayloadBytes, which no
	// writer produces.
	errRecordTooLarge = errors.New("record: payload length over limit")
)
