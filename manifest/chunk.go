package manifest

import (
	"errors"
	"fmt"
	"io"
)

// Chunk header layout constants (bytes).
const (
	chunkMagic       = "AOF2MLOG"
	chunkVersion     = 1
	chunkSlotSize    = 72
	chunkSlotCRCSize = 64 // bytes of a slot the header_crc64 covers
	// ChunkHeaderSize is where the first record of a chunk starts: two
	// header slots.
	ChunkHeaderSize = 2 * chunkSlotSize
)

// Chunk header flags.
const (
	ChunkSealed   uint16 = 1 << 0
	ChunkUploaded uint16 = 1 << 1
)

// Errors an IntegrityError wraps.
var (
	ErrChunkHeader    = errors.New("manifest: no valid chunk header")
	ErrChunkCRC       = errors.New("manifest: chunk checksum mismatch")
	ErrChunkTruncated = errors.New("manifest: committed bytes missing")
	ErrChunkRecords   = errors.New("manifest: committed records disagree with header")
	ErrChunkMissing   = errors.New("manifest: chunk missing")
)

// IntegrityError reports damage inside the committed part of the manifest:
// something that was acknowledged as durable no longer reads back. Offset is
// the byte offset in the chunk file (-1 when the whole chunk is missing).
// The Log refuses writes to a stream after one (quarantine); Check lists them.
type IntegrityError struct {
	Stream string
	Chunk  uint64
	Offset int64
	Err    error
}

func (e *IntegrityError) Error() string {
	return fmt.Sprintf("manifest integrity: stream %q chunk %d offset %d: %v", e.Stream, e.Chunk, e.Offset, e.Err)
}

func (e *IntegrityError) Unwrap() error { return e.Err }

// ChunkHeader is the decoded, valid header slot of a chunk file.
type ChunkHeader struct {
	Index uint64
	// BaseRecord is the stream-wide ordinal of the chunk's first record.
	BaseRecord  uint64
	RecordCount uint64
	// TailOffset is the file offset of the last committed record (0 when the
	// chunk holds none).
	TailOffset int64
	// CommittedLen counts the committed record bytes after the header.
	CommittedLen uint64
	// CRC64 covers exactly the CommittedLen record bytes.
	CRC64      uint64
	Flags      uint16
	Generation uint32
}

// Sealed reports whether the chunk will receive no more records.
func (h ChunkHeader) Sealed() bool { return h.Flags&ChunkSealed != 0 }

// Uploaded reports whether Tier 2 confirmed a copy of the sealed chunk.
func (h ChunkHeader) Uploaded() bool { return h.Flags&ChunkUploaded != 0 }

// End is the file offset just past the committed records.
func (h ChunkHeader) End() int64 { return ChunkHeaderSize + int64(h.CommittedLen) }

// appendSlot encodes h as one header slot.
func (h ChunkHeader) appendSlot(b []byte) []byte {
	start := len(b)
	b = append(b, chunkMagic...)
	b = le.AppendUint16(b, chunkVersion)
	b = le.AppendUint16(b, h.Flags)
	b = le.AppendUint32(b, h.Generation)
	b = le.AppendUint64(b, h.Index)
	b = le.AppendUint64(b, h.BaseRecord)
	b = le.AppendUint64(b, h.RecordCount)
	b = le.AppendUint64(b, uint64(h.TailOffset))
	b = le.AppendUint64(b, h.CommittedLen)
	b = le.AppendUint64(b, h.CRC64)
	return le.AppendUint64(b, CRC64(b[start:]))
}

// slotOffset is where the slot of generation g lives: slots alternate so a
// torn header write leaves the previous generation intact.
func slotOffset(g uint32) int64 { return int64(g%2) * chunkSlotSize }

func parseSlot(b []byte) (ChunkHeader, bool) {
	if len(b) < chunkSlotSize || string(b[:8]) != chunkMagic || le.Uint16(b[8:]) != chunkVersion {
		return ChunkHeader{}, false
	}
	if CRC64(b[:chunkSlotCRCSize]) != le.Uint64(b[chunkSlotCRCSize:]) {
		return ChunkHeader{}, false
	}
	return ChunkHeader{
		Flags:        le.Uint16(b[10:]),
		Generation:   le.Uint32(b[12:]),
		Index:        le.Uint64(b[16:]),
		BaseRecord:   le.Uint64(b[24:]),
		RecordCount:  le.Uint64(b[32:]),
		TailOffset:   int64(le.Uint64(b[40:])),
		CommittedLen: le.Uint64(b[48:]),
		CRC64:        le.Uint64(b[56:]),
	}, true
}

// ParseChunkHeader returns the valid header slot with the highest
// generation from the first ChunkHeaderSize bytes of a chunk file.
func ParseChunkHeader(b []byte) (ChunkHeader, error) {
	if len(b) < ChunkHeaderSize {
		return ChunkHeader{}, fmt.Errorf("%w: %d header bytes", ErrChunkHeader, len(b))
	}
	a, okA := parseSlot(b[:chunkSlotSize])
	c, okC := parseSlot(b[chunkSlotSize:ChunkHeaderSize])
	switch {
	case okA && okC && c.Generation > a.Generation:
		return c, nil
	case okA:
		return a, nil
	case okC:
		return c, nil
	}
	return ChunkHeader{}, ErrChunkHeader
}

// ChunkRecord is one record read from a chunk, with where it lives.
type ChunkRecord struct {
	Offset int64
	Record Record
	// Raw is the encoded record (header and payload); it aliases the
	// reader's buffer.
	Raw []byte
}

// ChunkReader reads the committed records of one chunk file held in memory.
// NewChunkReader verifies the header and the chunk checksum over the whole
// committed range before any record is returned, so a record from a damaged
// chunk is never applied. Bytes past the committed range are the torn tail of
// an unfinished commit and are never read.
type ChunkReader struct {
	Header ChunkHeader
	// TornBytes counts bytes after the committed range.
	TornBytes int64
	// Unknown counts records of unknown type returned so far.
	Unknown int

	data   []byte
	off    int64
	n      uint64
	last   int64
	seeked bool
}

// NewChunkReader verifies data as a chunk file. Errors are *IntegrityError
// with Chunk taken from the header when it is readable.
func NewChunkReader(data []byte) (*ChunkReader, error) {
	h, err := ParseChunkHeader(data)
	if err != nil {
		return nil, &IntegrityError{Offset: 0, Err: err}
	}
	end := h.End()
	if int64(len(data)) < end {
		return nil, &IntegrityError{Chunk: h.Index, Offset: int64(len(data)),
			Err: fmt.Errorf("%w: file has %d bytes, header commits %d", ErrChunkTruncated, len(data), end)}
	}
	if got := CRC64(data[ChunkHeaderSize:end]); got != h.CRC64 {
		return nil, &IntegrityError{Chunk: h.Index, Offset: ChunkHeaderSize,
			Err: fmt.Errorf("%w: crc %#x, header says %#x", ErrChunkCRC, got, h.CRC64)}
	}
	return &ChunkReader{Header: h, TornBytes: int64(len(data)) - end, data: data[:end], off: ChunkHeaderSize}, nil
}

// SeekTo positions the reader at file offset off, which must be a record
// boundary inside the committed range (a Position taken from this chunk).
// Records skipped this way are not decoded; the record count check at the
// end is then skipped too.
func (r *ChunkReader) SeekTo(off int64) error {
	if off < ChunkHeaderSize || off > int64(len(r.data)) {
		return &IntegrityError{Chunk: r.Header.Index, Offset: off,
			Err: fmt.Errorf("%w: offset outside committed range", ErrChunkRecords)}
	}
	r.off, r.seeked = off, true
	return nil
}

// Next returns the next committed record, or io.EOF after the last one. A
// record that does not decode inside the checksummed range, or committed
// records that disagree with the header's count or tail offset, are an
// *IntegrityError.
func (r *ChunkReader) Next() (ChunkRecord, error) {
	if r.off == int64(len(r.data)) {
		if !r.seeked && r.n != r.Header.RecordCount {
			return ChunkRecord{}, &IntegrityError{Chunk: r.Header.Index, Offset: r.off,
				Err: fmt.Errorf("%w: %d records, header says %d", ErrChunkRecords, r.n, r.Header.RecordCount)}
		}
		if r.n > 0 && r.last != r.Header.TailOffset {
			return ChunkRecord{}, &IntegrityError{Chunk: r.Header.Index, Offset: r.last,
				Err: fmt.Errorf("%w: last record at %d, header says %d", ErrChunkRecords, r.last, r.Header.TailOffset)}
		}
		return ChunkRecord{}, io.EOF
	}
	rec, size, err := DecodeRecord(r.data[r.off:])
	if err != nil {
		return ChunkRecord{}, &IntegrityError{Chunk: r.Header.Index, Offset: r.off, Err: err}
	}
	cr := ChunkRecord{Offset: r.off, Record: rec, Raw: r.data[r.off : r.off+int64(size)]}
	r.off += int64(size)
	r.n++
	r.last = cr.Offset
	if !rec.Type.Known() {
		r.Unknown++
	}
	return cr, nil
}

// ReadChunk verifies data as a chunk file and returns all its committed
// records.
func ReadChunk(data []byte) (ChunkHeader, []ChunkRecord, error) {
	r, err := NewChunkReader(data)
	if err != nil {
		return ChunkHeader{}, nil, err
	}
	var recs []ChunkRecord
	for {
		cr, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return r.Header, recs, err
		}
		recs = append(recs, cr)
	}
	return r.Header, recs, nil
}
