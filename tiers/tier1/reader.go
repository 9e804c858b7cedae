package tier1

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"sync/atomic"

	seekable "github.com/SaveTheRbtz/zstd-seekable-format-go/pkg"
	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/bop-aof/aof/internal/vfs"
)

// CorruptionError reports an artifact that cannot be read as written. Frame
// is -1 when the damage is not inside a data frame (seek table, index).
// Offset is the compressed byte offset where the damaged structure starts.
type CorruptionError struct {
	Path   string
	Frame  int
	Offset int64
	Err    error
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("tier1: corrupt artifact %s (frame %d, offset %d): %v", e.Path, e.Frame, e.Offset, e.Err)
}

func (e *CorruptionError) Unwrap() error { return e.Err }

// ErrOutOfRange is returned for reads outside the decompressed segment or
// lookups of logical offsets the artifact does not hold.
var ErrOutOfRange = errors.New("tier1: out of range")

// FrameInfo is one frame's place in both coordinate systems.
type FrameInfo struct {
	Index              int
	CompressedOffset   int64
	CompressedSize     int64
	DecompressedOffset int64
	DecompressedSize   int64
}

// RecordLocation says where a record lives. Span runs to the next record's
// start, or to the end of the segment for the last record (footer included).
type RecordLocation struct {
	LogicalOffset uint64
	Frame         int
	ByteOffset    int64
	Span          int64
}

var sharedDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	// DecodeAll on one decoder is safe for concurrent use.
	return zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<32))
})

// ArtifactReader serves byte ranges and records from an artifact, decoding
// only the frames a read touches. It keeps the last decoded frame so that
// consecutive reads in one frame decode it once. It is safe for concurrent use.
type ArtifactReader struct {
	path    string
	r       io.ReaderAt
	closer  io.Closer
	table   seekable.SeekTable
	records []RecordBoundary
	dec     *zstd.Decoder

	decoded atomic.Uint64

	mu        sync.Mutex
	lastFrame int
	lastData  []byte
}

// OpenArtifact opens the artifact at path on fs and reads its seek table
// and record index.
func OpenArtifact(fs vfs.FS, path string) (*ArtifactReader, error) {
	f, err := vfs.Open(fs, path)
	if err != nil {
		return nil, fmt.Errorf("open artifact: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat artifact: %w", err)
	}
	ar, err := NewArtifactReader(f, st.Size(), path)
	if err != nil {
		f.Close()
		return nil, err
	}
	ar.closer = f
	return ar, nil
}

// NewArtifactReader reads an artifact of size bytes from r (a file, or a
// ranged reader over a Tier 2 object). name is used in errors only. Close
// does not close r.
func NewArtifactReader(r io.ReaderAt, size int64, name string) (*ArtifactReader, error) {
	dec, err := sharedDecoder()
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	ar := &ArtifactReader{path: name, r: r, dec: dec, lastFrame: -1}
	corrupt := func(off int64, err error) error {
		return &CorruptionError{Path: name, Frame: -1, Offset: off, Err: err}
	}
	if size < seekFooterBytes+8 {
		return nil, corrupt(0, fmt.Errorf("%d bytes is too short for a seekable artifact", size))
	}
	var footer [seekFooterBytes]byte
	if _, err := r.ReadAt(footer[:], size-seekFooterBytes); err != nil {
		return nil, fmt.Errorf("read seek table footer: %w", err)
	}
	if binary.LittleEndian.Uint32(footer[5:]) != seekableFooterTag {
		return nil, corrupt(size-seekFooterBytes, errors.New("seekable footer magic missing"))
	}
	entry := int64(8)
	if footer[4]&0x80 != 0 {
		entry = 12
	}
	tableLen := 8 + int64(binary.LittleEndian.Uint32(footer[:4]))*entry + seekFooterBytes
	tableOff := size - tableLen
	if tableOff < 0 {
		return nil, corrupt(0, errors.New("seek table larger than artifact"))
	}
	tableBuf := make([]byte, tableLen)
	if _, err := r.ReadAt(tableBuf, tableOff); err != nil {
		return nil, fmt.Errorf("read seek table: %w", err)
	}
	table, err := seekable.NewSeekTable(tableBuf)
	if err != nil {
		return nil, corrupt(tableOff, err)
	}
	ar.table = *table

	// The record index is the skippable frame between the last data frame and the seek table.
	dataEnd := int64(0)
	if n := table.NumFrames(); n > 0 {
		last, _ := table.EntryByID(n - 1)
		dataEnd = int64(last.CompressedOffset) + int64(last.CompressedSize)
	}
	if dataEnd+8 > tableOff {
		return nil, corrupt(dataEnd, errors.New("record index frame missing"))
	}
	idx := make([]byte, tableOff-dataEnd)
	if _, err := r.ReadAt(idx, dataEnd); err != nil {
		return nil, fmt.Errorf("read record index: %w", err)
	}
	if binary.LittleEndian.Uint32(idx) != indexFrameMagic || int64(binary.LittleEndian.Uint32(idx[4:])) != int64(len(idx)-8) {
		return nil, corrupt(dataEnd, errors.New("record index frame header mismatch"))
	}
	if ar.records, err = decodeIndex(idx[8:]); err != nil {
		return nil, corrupt(dataEnd, err)
	}
	return ar, nil
}

// Size is the decompressed segment size in bytes.
func (a *ArtifactReader) Size() int64 { return int64(a.table.Size()) }

// Frames is the number of data frames.
func (a *ArtifactReader) Frames() int { return int(a.table.NumFrames()) }

// Records returns the record boundaries stored in the artifact. The slice
// must not be modified.
func (a *ArtifactReader) Records() []RecordBoundary { return a.records }

// FramesDecoded counts frame decompressions since open, for tests and metrics.
func (a *ArtifactReader) FramesDecoded() uint64 { return a.decoded.Load() }

// FrameFor returns the frame holding decompressed byte off.
func (a *ArtifactReader) FrameFor(off int64) (FrameInfo, error) {
	if off < 0 {
		return FrameInfo{}, fmt.Errorf("frame for %d: %w", off, ErrOutOfRange)
	}
	e, ok := a.table.EntryByDecompressedOffset(uint64(off))
	if !ok {
		return FrameInfo{}, fmt.Errorf("frame for %d of %d: %w", off, a.Size(), ErrOutOfRange)
	}
	return frameInfo(e), nil
}

func frameInfo(e seekable.FrameOffsetEntry) FrameInfo {
	return FrameInfo{
		Index:              int(e.ID),
		CompressedOffset:   int64(e.CompressedOffset),
		CompressedSize:     int64(e.CompressedSize),
		DecompressedOffset: int64(e.DecompressedOffset),
		DecompressedSize:   int64(e.DecompressedSize),
	}
}

// Lookup finds the record with the given logical offset.
func (a *ArtifactReader) Lookup(logical uint64) (RecordLocation, error) {
	i := sort.Search(len(a.records), func(i int) bool { return a.records[i].LogicalOffset >= logical })
	if i == len(a.records) || a.records[i].LogicalOffset != logical {
		return RecordLocation{}, fmt.Errorf("lookup logical offset %d: %w", logical, ErrOutOfRange)
	}
	r := a.records[i]
	end := a.Size()
	if i+1 < len(a.records) {
		end = a.records[i+1].ByteOffset
	}
	fi, err := a.FrameFor(r.ByteOffset)
	if err != nil {
		return RecordLocation{}, err
	}
	return RecordLocation{LogicalOffset: logical, Frame: fi.Index, ByteOffset: r.ByteOffset, Span: end - r.ByteOffset}, nil
}

// ReadRecord returns the bytes of the record at the logical offset (its
// Span, see RecordLocation). It decodes only the record's frame.
func (a *ArtifactReader) ReadRecord(logical uint64) ([]byte, error) {
	loc, err := a.Lookup(logical)
	if err != nil {
		return nil, err
	}
	return a.ReadRange(loc.ByteOffset, loc.Span)
}

// ReadRange returns n decompressed bytes starting at off, decoding only the
// frames that overlap [off, off+n).
func (a *ArtifactReader) ReadRange(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off+n > a.Size() {
		return nil, fmt.Errorf("read [%d, %d) of %d: %w", off, off+n, a.Size(), ErrOutOfRange)
	}
	out := make([]byte, 0, n)
	for int64(len(out)) < n {
		pos := off + int64(len(out))
		fi, err := a.FrameFor(pos)
		if err != nil {
			return nil, err
		}
		data, err := a.frame(fi)
		if err != nil {
			return nil, err
		}
		from := pos - fi.DecompressedOffset
		to := min(fi.DecompressedSize, from+n-int64(len(out)))
		out = append(out, data[from:to]...)
	}
	return out, nil
}

func (a *ArtifactReader) frame(fi FrameInfo) ([]byte, error) {
	a.mu.Lock()
	if a.lastFrame == fi.Index {
		d := a.lastData
		a.mu.Unlock()
		return d, nil
	}
	a.mu.Unlock()

	comp := make([]byte, fi.CompressedSize)
	if _, err := a.r.ReadAt(comp, fi.CompressedOffset); err != nil {
		return nil, fmt.Errorf("read frame %d: %w", fi.Index, err)
	}
	data, err := a.dec.DecodeAll(comp, make([]byte, 0, fi.DecompressedSize))
	a.decoded.Add(1)
	if err == nil && int64(len(data)) != fi.DecompressedSize {
		err = fmt.Errorf("decoded %d bytes, seek table says %d", len(data), fi.DecompressedSize)
	}
	if err == nil && a.table.HasChecksums() {
		e, _ := a.table.EntryByID(int64(fi.Index))
		if uint32(xxhash.Sum64(data)) != e.Checksum {
			err = errors.New("frame checksum mismatch")
		}
	}
	if err != nil {
		return nil, &CorruptionError{Path: a.path, Frame: fi.Index, Offset: fi.CompressedOffset, Err: err}
	}
	a.mu.Lock()
	a.lastFrame, a.lastData = fi.Index, data
	a.mu.Unlock()
	return data, nil
}

// Close releases the file opened by OpenArtifact.
func (a *ArtifactReader) Close() error {
	if a.closer == nil {
		return nil
	}
	err := a.closer.Close()
	a.closer = nil
	if err != nil && !errors.Is(err, os.ErrClosed) {
		return err
	}
	return nil
}
