// Package tier1 is the warm tier: sealed segments compressed into the standard
// zstd seekable format on local disk, and a cache of them under a byte
// budget, evicted least recently used first by its owner (see Cache).
//
// The package works on bytes. It does not know the segment format: the caller
// passes the byte offset and logical offset at which every record starts
// (RecordBoundary), and frames are cut only at those offsets, so one record
// never spans two frames.
//
// # Artifact format
//
// An artifact is a valid zstd stream that `zstd -d` decompresses to the
// segment bytes exactly. It is laid out as
//
//	frame 0 .. frame N-1   independent zstd frames, about FrameBytes of input each
//	record index           zstd skippable frame, magic 0x184D2A5A (ignored by zstd -d)
//	seek table             zstd skippable frame, magic 0x184D2A5E, standard seekable
//	                       format (contrib/seekable_format), with XXH64 checksums
//
// Frame i covers the decompressed bytes listed in seek table entry i. Frame 0
// starts at byte 0 (the segment header); every later frame starts exactly at
// a record boundary; the last frame ends at the end of the segment (footer
// included).
//
// The record index is stored in the artifact rather than recomputed, because
// recomputing it needs the segment format and this package must not depend on
// it. Its payload (little-endian) is
//
//	magic         8 bytes "AOF2T1IX"
//	version       u32 = 1
//	record_count  u32
//	first_logical u64
//	entries       record_count x (uvarint logical delta, uvarint byte delta)
//	crc32c        u32 over every payload byte before it
//
// Deltas are taken from the previous entry; the first entry's logical delta is
// 0 (it is first_logical) and its byte delta is its absolute byte offset. A
// record's frame is not stored: it is the seek table entry containing the
// record's byte offset. For a 64 MiB segment of 1 KiB records the index is
// about 200 KiB; it is parsed once when the artifact is opened.
package tier1

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/crc64"
	"io"
	"runtime"
	"sync"

	seekable "github.com/SaveTheRbtz/zstd-seekable-format-go/pkg"
	"github.com/klauspost/compress/zstd"
)

const (
	// DefaultFrameBytes is the target uncompressed size of one frame (1 MiB).
	DefaultFrameBytes = 1 << 20
	// DefaultLevel is the zstd level used when CompressOptions.Level is 0.
	DefaultLevel = 3

	indexFrameMagic   uint32 = 0x184D2A5A
	seekTableMagic    uint32 = 0x184D2A5E
	seekableFooterTag uint32 = 0x8F92EAB1
	seekFooterBytes          = 9
	indexVersion             = 1
)

var (
	indexMagic = [8]byte{'A', 'O', 'F', '2', 'T', '1', 'I', 'X'}

	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	// CRC64Table is CRC-64/NVME, the checksum used across the store.
	CRC64Table = crc64.MakeTable(0x9a6c9329ac4bc9b5)
)

// RecordBoundary says where one record starts: its byte offset in the
// segment and its logical offset. Boundaries must be strictly increasing in
// both fields.
type RecordBoundary struct {
	ByteOffset    int64
	LogicalOffset uint64
}

// CompressOptions tunes Compress. Zero values take the defaults.
type CompressOptions struct {
	// FrameBytes is the target uncompressed bytes per frame; a frame is cut
	// at the last record boundary that keeps it at or under this size, so a
	// single record larger than FrameBytes gets a frame of its own.
	FrameBytes int
	// Level is the zstd compression level (1-22, as for the zstd CLI);
	// levels map onto klauspost/compress's four encoder speeds.
	Level int
	// BeforeFrame, when set, is called before each frame is compressed:
	// the store's pacing waits there while ingest has a backlog.
	BeforeFrame func()
}

// Artifact describes a compressed artifact written by Compress.
type Artifact struct {
	// CompressedBytes is the artifact's size on disk.
	CompressedBytes int64
	// DecompressedBytes is the size of the segment it holds.
	DecompressedBytes int64
	Frames            int
	Records           int
	// CRC64 is CRC-64/NVME over the artifact bytes, for Tier 2 metadata.
	CRC64 uint64
}

// Ratio is DecompressedBytes / CompressedBytes.
func (a Artifact) Ratio() float64 {
	if a.CompressedBytes == 0 {
		return 0
	}
	return float64(a.DecompressedBytes) / float64(a.CompressedBytes)
}

var encoders sync.Map // zstd.EncoderLevel -> *zstd.Encoder

// encoderFor returns a shared encoder; EncodeAll is safe for concurrent use.
func encoderFor(level zstd.EncoderLevel) (*zstd.Encoder, error) {
	if e, ok := encoders.Load(level); ok {
		return e.(*zstd.Encoder), nil
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
	if err != nil {
		return nil, err
	}
	e, _ := encoders.LoadOrStore(level, enc)
	return e.(*zstd.Encoder), nil
}

// countingWriter tracks size and CRC of everything written to w.
type countingWriter struct {
	w   io.Writer
	n   int64
	crc uint64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.crc = crc64.Update(c.crc, CRC64Table, p[:n])
	return n, err
}

// Compress reads size bytes of a sealed segment from src and writes the
// artifact to dst. records lists every record start (see RecordBoundary);
// it may be empty for a segment without records, which then becomes frames
// cut at FrameBytes. Compress does not sync or close dst.
func Compress(dst io.Writer, src io.ReaderAt, size int64, records []RecordBoundary, opts CompressOptions) (Artifact, error) {
	if opts.FrameBytes <= 0 {
		opts.FrameBytes = DefaultFrameBytes
	}
	if opts.Level == 0 {
		opts.Level = DefaultLevel
	}
	if err := checkBoundaries(records, size); err != nil {
		return Artifact{}, err
	}
	enc, err := encoderFor(zstd.EncoderLevelFromZstd(opts.Level))
	if err != nil {
		return Artifact{}, fmt.Errorf("zstd encoder: %w", err)
	}
	cw := &countingWriter{w: dst}
	sw, err := seekable.NewWriter(cw, enc)
	if err != nil {
		return Artifact{}, fmt.Errorf("seekable writer: %w", err)
	}
	cuts := frameCuts(records, size, int64(opts.FrameBytes))
	buf := make([]byte, 0, opts.FrameBytes)
	start := int64(0)
	for _, end := range cuts {
		n := end - start
		if int64(cap(buf)) < n {
			buf = make([]byte, 0, n)
		}
		buf = buf[:n]
		if opts.BeforeFrame != nil {
			opts.BeforeFrame()
		}
		if _, err := src.ReadAt(buf, start); err != nil && !(errors.Is(err, io.EOF) && int64(len(buf)) == n) {
			return Artifact{}, fmt.Errorf("read segment at %d: %w", start, err)
		}
		if _, err := sw.Write(buf); err != nil {
			return Artifact{}, fmt.Errorf("write frame at %d: %w", start, err)
		}
		start = end
	}
	if _, err := cw.Write(encodeIndexFrame(records)); err != nil {
		return Artifact{}, fmt.Errorf("write record index: %w", err)
	}
	if err := sw.Close(); err != nil {
		return Artifact{}, fmt.Errorf("write seek table: %w", err)
	}
	return Artifact{
		CompressedBytes:   cw.n,
		DecompressedBytes: size,
		Frames:            len(cuts),
		Records:           len(records),
		CRC64:             cw.crc,
	}, nil
}

func checkBoundaries(records []RecordBoundary, size int64) error {
	for i, r := range records {
		if r.ByteOffset < 0 || r.ByteOffset >= size {
			return fmt.Errorf("record %d: byte offset %d outside segment of %d bytes", i, r.ByteOffset, size)
		}
		if i > 0 && (r.ByteOffset <= records[i-1].ByteOffset || r.LogicalOffset <= records[i-1].LogicalOffset) {
			return fmt.Errorf("record %d: boundaries not strictly increasing (byte %d after %d, logical %d after %d)",
				i, r.ByteOffset, records[i-1].ByteOffset, r.LogicalOffset, records[i-1].LogicalOffset)
		}
	}
	return nil
}

// frameCuts returns the exclusive end offset of every frame. Frames end at
// record starts only, except the last which ends at size.
func frameCuts(records []RecordBoundary, size, target int64) []int64 {
	if size == 0 {
		return nil
	}
	var cuts []int64
	start, last := int64(0), int64(0)
	candidate := func(c int64) {
		if c-start > target && last > start {
			cuts = append(cuts, last)
			start = last
		}
		last = c
	}
	if len(records) == 0 {
		// No boundaries: any cut is allowed.
		for c := target; c < size; c += target {
			cuts = append(cuts, c)
		}
		return append(cuts, size)
	}
	for _, r := range records {
		if r.ByteOffset > 0 {
			candidate(r.ByteOffset)
		}
	}
	candidate(size)
	return append(cuts, size)
}

func encodeIndexFrame(records []RecordBoundary) []byte {
	var p bytes.Buffer
	p.Write(indexMagic[:])
	var fixed [16]byte
	binary.LittleEndian.PutUint32(fixed[0:], indexVersion)
	binary.LittleEndian.PutUint32(fixed[4:], uint32(len(records)))
	p.Write(fixed[:8])
	var first uint64
	if len(records) > 0 {
		first = records[0].LogicalOffset
	}
	binary.LittleEndian.PutUint64(fixed[8:], first)
	p.Write(fixed[8:16])
	var v [2 * binary.MaxVarintLen64]byte
	prevL, prevB := first, int64(0)
	for _, r := range records {
		n := binary.PutUvarint(v[:], r.LogicalOffset-prevL)
		n += binary.PutUvarint(v[n:], uint64(r.ByteOffset-prevB))
		p.Write(v[:n])
		prevL, prevB = r.LogicalOffset, r.ByteOffset
	}
	binary.LittleEndian.PutUint32(fixed[:4], crc32.Checksum(p.Bytes(), castagnoli))
	p.Write(fixed[:4])

	frame := make([]byte, 8, 8+p.Len())
	binary.LittleEndian.PutUint32(frame[0:], indexFrameMagic)
	binary.LittleEndian.PutUint32(frame[4:], uint32(p.Len()))
	return append(frame, p.Bytes()...)
}

func decodeIndex(p []byte) ([]RecordBoundary, error) {
	if len(p) < 24+4 || !bytes.Equal(p[:8], indexMagic[:]) {
		return nil, errors.New("record index: bad magic or short payload")
	}
	body, sum := p[:len(p)-4], binary.LittleEndian.Uint32(p[len(p)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, errors.New("record index: crc32c mismatch")
	}
	if v := binary.LittleEndian.Uint32(body[8:]); v != indexVersion {
		return nil, fmt.Errorf("record index: unsupported version %d", v)
	}
	count := binary.LittleEndian.Uint32(body[12:])
	first := binary.LittleEndian.Uint64(body[16:])
	rest := body[24:]
	if uint64(count) > uint64(len(rest)) { // every entry takes at least 2 bytes
		return nil, fmt.Errorf("record index: %d records in %d bytes", count, len(rest))
	}
	out := make([]RecordBoundary, count)
	l, b := first, int64(0)
	for i := range out {
		dl, n := binary.Uvarint(rest)
		if n <= 0 {
			return nil, fmt.Errorf("record index: entry %d truncated", i)
		}
		rest = rest[n:]
		db, n := binary.Uvarint(rest)
		if n <= 0 {
			return nil, fmt.Errorf("record index: entry %d truncated", i)
		}
		rest = rest[n:]
		l += dl
		b += int64(db)
		out[i] = RecordBoundary{ByteOffset: b, LogicalOffset: l}
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("record index: %d trailing bytes", len(rest))
	}
	return out, nil
}
