package segment

import (
	"errors"
	"fmt"
	"io"

	"github.com/bop-aof/aof/internal/vfs"
)

// Reader reads the records of one segment file in logical-offset order.
//
// It reads with ReadAt through its own file handle, so any number of
// readers may run while a Writer appends to the same segment. A reader
// never returns bytes at or beyond its limit: for a sealed segment the
// limit is the footer's DurableBytes, for an active one the file size at
// Open; a reader of an active segment should be given the writer's
// DurableBytes with SetLimit so it sees durable records only.
//
// Every record returned has passed its CRC-32C and follows its predecessor's
// logical offset; damage within the limit is a *CorruptionError. A Reader
// is not safe for concurrent use by several goroutines.
type Reader struct {
	f      vfs.File
	path   string
	stream string
	header Header
	footer Footer
	sealed bool

	rawHeader [HeaderSize]byte

	win    window
	pos    int64  // byte offset of the next record
	next   uint64 // logical offset of the record at pos
	target uint64 // Next skips records below this offset
	// boundary is set when the limit is known to end on a record boundary
	// (a footer or SetLimit); a record crossing it is then damage, not a
	// record still being written.
	boundary bool
}

// Open opens the segment at path and reads its header and, if the segment
// is sealed, its footer.
func Open(fsys vfs.FS, path string, opts ...Option) (*Reader, error) {
	o := buildOptions(opts)
	f, err := vfs.Open(fsys, path)
	if err != nil {
		return nil, fmt.Errorf("open segment: %w", err)
	}
	r := &Reader{f: f, path: path, stream: o.stream}
	if err := r.init(); err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

func (r *Reader) init() error {
	st, err := r.f.Stat()
	if err != nil {
		return fmt.Errorf("open segment %s: %w", r.path, err)
	}
	size := st.Size()
	if n, err := r.f.ReadAt(r.rawHeader[:], 0); n < HeaderSize {
		if err == nil || errors.Is(err, io.EOF) {
			return r.corrupt(0, fmt.Errorf("header: truncated at %d bytes", n))
		}
		return fmt.Errorf("open segment %s: read header: %w", r.path, err)
	}
	h, err := decodeHeader(r.rawHeader[:])
	if err != nil {
		return r.corrupt(0, err)
	}
	r.header = h
	ft, ok, err := readFooterAt(r.f, size)
	if err != nil {
		return r.corrupt(size-FooterSize, err)
	}
	r.footer, r.sealed, r.boundary = ft, ok, ok
	limit := size
	if ok {
		limit = int64(ft.DurableBytes)
	}
	r.win = window{r: r.f, limit: limit}
	r.pos, r.next, r.target = HeaderSize, h.BaseOffset, h.BaseOffset
	return nil
}

// readFooterAt looks for a footer at the end of a file of the given size.
// ok is false when there is none (an unsealed segment). A footer whose
// magics are present but whose checksum or length disagrees is an error.
func readFooterAt(f io.ReaderAt, size int64) (Footer, bool, error) {
	if size < HeaderSize+FooterSize {
		return Footer{}, false, nil
	}
	var fb [FooterSize]byte
	if _, err := f.ReadAt(fb[:], size-FooterSize); err != nil {
		return Footer{}, false, fmt.Errorf("read footer: %w", err)
	}
	ft, err := decodeFooter(fb[:])
	if errors.Is(err, errNoFooter) {
		return Footer{}, false, nil
	}
	if err != nil {
		return Footer{}, false, err
	}
	if ft.DurableBytes != uint64(size-FooterSize) {
		return Footer{}, false, fmt.Errorf("footer: durable bytes %d, but footer starts at %d", ft.DurableBytes, size-FooterSize)
	}
	return ft, true, nil
}

func (r *Reader) corrupt(off int64, err error) error {
	return &CorruptionError{Stream: r.stream, Segment: r.header.SegmentID, Offset: off, Err: err}
}

// Header returns the segment header.
func (r *Reader) Header() Header { return r.header }

// Footer returns the footer of a sealed segment; ok is false for an active one.
func (r *Reader) Footer() (ft Footer, ok bool) { return r.footer, r.sealed }

// Limit is the byte length the reader reads up to.
func (r *Reader) Limit() int64 { return r.win.limit }

// SetLimit sets the byte length the reader may read up to; for an active
// segment pass Writer.DurableBytes. The limit must fall on a record
// boundary: a record crossing it is reported as corruption. Without
// SetLimit an active segment is read up to its size at Open, and a partial
// record there is taken for one still being written (io.EOF). The limit of
// a sealed segment is fixed.
func (r *Reader) SetLimit(n int64) {
	if r.sealed {
		return
	}
	r.boundary = true
	if n == r.win.limit {
		return
	}
	r.win.limit = n
	r.win.n = 0 // cached bytes may have been read under another limit
}

// Seek positions the reader so that Next returns the record with logical
// offset offset, or the first one after it. Offsets below the base position
// at the first record; offsets past the last readable record make Next
// return io.EOF until the limit grows to include them. Seek walks record
// headers without checking payload checksums; Next checks them.
func (r *Reader) Seek(offset uint64) error {
	if offset < r.next {
		r.pos, r.next = HeaderSize, r.header.BaseOffset
	}
	for r.next < offset && r.pos < r.win.limit {
		b, err := r.win.get(r.pos, RecordHeaderSize)
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			return fmt.Errorf("seek segment %d: %w", r.header.SegmentID, err)
		}
		rh := decodeRecordHeader(b)
		if rh.offset != r.next || rh.payloadLen > MaxPayloadBytes {
			return r.corrupt(r.pos, fmt.Errorf("%w: header says offset %d length %d, want offset %d", errBadOffset, rh.offset, rh.payloadLen, r.next))
		}
		end := r.pos + RecordHeaderSize + int64(rh.payloadLen)
		if end > r.win.limit {
			break
		}
		r.pos = end
		r.next++
	}
	r.target = offset
	return nil
}

// Next returns the next record, or io.EOF when no complete record remains
// below the limit. The Entry's Payload is a fresh slice the caller may keep.
func (r *Reader) Next() (Entry, error) {
	for {
		if r.pos >= r.win.limit {
			return Entry{}, io.EOF
		}
		st := scanState{pos: r.pos, next: r.next}
		b, err := r.win.get(r.pos, RecordHeaderSize)
		if err == nil {
			plen := decodeRecordHeader(b).payloadLen
			if plen > MaxPayloadBytes {
				return Entry{}, r.corrupt(r.pos, fmt.Errorf("%w: %d bytes", errRecordTooLarge, plen))
			}
			b, err = r.win.get(r.pos, RecordHeaderSize+int(plen))
		}
		if err != nil {
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				return Entry{}, fmt.Errorf("read segment %d: %w", r.header.SegmentID, err)
			}
			if r.boundary {
				return Entry{}, r.corrupt(r.pos, errShortRecord)
			}
			return Entry{}, io.EOF
		}
		e, n, err := DecodeRecord(b)
		if err != nil {
			return Entry{}, r.corrupt(st.pos, err)
		}
		if e.Offset != r.next {
			return Entry{}, r.corrupt(st.pos, fmt.Errorf("%w: got %d, want %d", errBadOffset, e.Offset, r.next))
		}
		r.pos += int64(n)
		r.next++
		if e.Offset < r.target {
			continue
		}
		e.Payload = append([]byte(nil), e.Payload...)
		return e, nil
	}
}

// Close closes the file.
func (r *Reader) Close() error { return r.f.Close() }

// ReadFooter returns the footer of the sealed segment at path. A segment
// without a footer gives an error wrapping ErrNotSealed.
func ReadFooter(fsys vfs.FS, path string) (Footer, error) {
	r, err := Open(fsys, path)
	if err != nil {
		return Footer{}, err
	}
	defer r.Close()
	ft, ok := r.Footer()
	if !ok {
		return Footer{}, fmt.Errorf("read footer %s: %w", path, ErrNotSealed)
	}
	return ft, nil
}

// ErrNotSealed is returned where a sealed segment is required.
var ErrNotSealed = errors.New("segment: not sealed")

// Verify checks a sealed segment completely: header checksum, every
// record's CRC-32C and offset sequence, and the footer's record count,
// ext id and offset ranges and CRC-64 against the records. It returns the
// footer, or a *CorruptionError saying where the first disagreement is.
func Verify(fsys vfs.FS, path string, opts ...Option) (Footer, error) {
	r, err := Open(fsys, path, opts...)
	if err != nil {
		return Footer{}, err
	}
	defer r.Close()
	ft, ok := r.Footer()
	if !ok {
		return Footer{}, fmt.Errorf("verify %s: %w", path, ErrNotSealed)
	}
	st := scanState{pos: HeaderSize, next: r.header.BaseOffset, crc: crc64Update(0, r.rawHeader[:])}
	if err := scanRecords(&r.win, &st); err != nil {
		return ft, r.corrupt(st.pos, err)
	}
	end := int64(ft.DurableBytes)
	lastOff := r.header.BaseOffset
	if st.count > 0 {
		lastOff = st.next - 1
	}
	switch {
	case st.count != ft.RecordCount:
		err = fmt.Errorf("footer: record count %d, records found %d", ft.RecordCount, st.count)
	case st.count > 0 && (st.firstExt != ft.FirstExtID || st.lastExt != ft.LastExtID):
		err = fmt.Errorf("footer: ext ids %d-%d, records have %d-%d", ft.FirstExtID, ft.LastExtID, st.firstExt, st.lastExt)
	case ft.FirstOffset != r.header.BaseOffset || ft.LastOffset != lastOff:
		err = fmt.Errorf("footer: offsets %d-%d, records have %d-%d", ft.FirstOffset, ft.LastOffset, r.header.BaseOffset, lastOff)
	case st.crc != ft.CRC64:
		err = fmt.Errorf("footer: crc64 %#x, records give %#x: %w", ft.CRC64, st.crc, ErrChecksum)
	}
	if err != nil {
		return ft, r.corrupt(end, err)
	}
	return ft, nil
}

// ReadBounds returns the bounds of the sealed segment at path from its
// footer and its first and last record. It reads two records (Seek walks
// record headers only), for a seal whose bounds were not kept in memory.
func ReadBounds(fsys vfs.FS, path string) (Bounds, error) {
	r, err := Open(fsys, path)
	if err != nil {
		return Bounds{}, err
	}
	defer r.Close()
	ft, ok := r.Footer()
	if !ok {
		return Bounds{}, fmt.Errorf("read bounds %s: %w", path, ErrNotSealed)
	}
	if ft.RecordCount == 0 {
		return Bounds{}, nil
	}
	first, err := r.Next()
	if err != nil {
		return Bounds{}, fmt.Errorf("read bounds %s: first record: %w", path, err)
	}
	last := first
	if ft.LastOffset != first.Offset {
		if err := r.Seek(ft.LastOffset); err != nil {
			return Bounds{}, fmt.Errorf("read bounds %s: %w", path, err)
		}
		if last, err = r.Next(); err != nil {
			return Bounds{}, fmt.Errorf("read bounds %s: last record: %w", path, err)
		}
	}
	return Bounds{FirstExtID: first.ExtID, LastExtID: last.ExtID, FirstAppendMS: first.AppendMS, LastAppendMS: last.AppendMS}, nil
}
