package segment

import (
	"errors"
	"fmt"
	"io"
)

// windowSize is how much a window reads at once (64 KiB).
const windowSize = 64 << 10

// window serves byte ranges of a file from one buffered ReadAt, so scanning
// many small records costs few system calls. It never reads at or beyond
// limit, so bytes a writer has not made durable are never cached.
type window struct {
	r     io.ReaderAt
	limit int64
	buf   []byte
	off   int64
	n     int
}

// get returns n bytes at pos, or io.ErrUnexpectedEOF when pos+n passes the
// limit or the end of the file. The slice is valid until the next get.
func (w *window) get(pos int64, n int) ([]byte, error) {
	if pos < 0 || pos+int64(n) > w.limit {
		return nil, io.ErrUnexpectedEOF
	}
	if pos >= w.off && pos+int64(n) <= w.off+int64(w.n) {
		s := pos - w.off
		return w.buf[s : s+int64(n)], nil
	}
	size := max(n, windowSize)
	if rest := w.limit - pos; int64(size) > rest {
		size = int(rest)
	}
	if cap(w.buf) < size {
		w.buf = make([]byte, max(size, windowSize))
	}
	m, err := w.r.ReadAt(w.buf[:size], pos)
	w.off, w.n = pos, m
	if m < n {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return w.buf[:n], nil
}

// scanState is where a sequential record scan stands.
type scanState struct {
	pos      int64  // byte offset of the next record
	next     uint64 // logical offset the next record must carry
	count    uint64
	firstExt uint64
	lastExt  uint64
	firstMS  int64  // append_ts_ms of the first record
	lastMS   int64  // append_ts_ms of the last record
	crc      uint64 // CRC-64/NVME of bytes [0, pos)
}

// Reasons a scan stops before its limit.
var (
	errBadOffset = errors.New("record: logical offset out of sequence")
)

// scanRecords advances st over the valid records between st.pos and
// w.limit, checking each record's CRC-32C and its logical offset. It returns
// nil when it reaches the limit exactly, otherwise the reason the record at
// st.pos is not valid (errShortRecord when it runs past the limit). I/O
// errors are returned as they are.
func scanRecords(w *window, st *scanState) error {
	for st.pos < w.limit {
		b, err := w.get(st.pos, RecordHeaderSize)
		if err != nil {
			return shortOr(err)
		}
		plen := decodeRecordHeader(b).payloadLen
		if plen > MaxPayloadBytes {
			return fmt.Errorf("%w: %d bytes", errRecordTooLarge, plen)
		}
		b, err = w.get(st.pos, RecordHeaderSize+int(plen))
		if err != nil {
			return shortOr(err)
		}
		e, n, err := DecodeRecord(b)
		if err != nil {
			return err
		}
		if e.Offset != st.next {
			return fmt.Errorf("%w: got %d, want %d", errBadOffset, e.Offset, st.next)
		}
		if st.count == 0 {
			st.firstExt, st.firstMS = e.ExtID, e.AppendMS
		}
		st.lastExt, st.lastMS = e.ExtID, e.AppendMS
		st.count++
		st.next++
		st.crc = crc64Update(st.crc, b[:n])
		st.pos += int64(n)
	}
	return nil
}

func shortOr(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errShortRecord
	}
	return err
}

// validRecordAfter reports whether a valid record whose logical offset could
// follow expect starts anywhere in (from, w.limit). A hit means the damage at
// from is not a torn tail: later data survived it.
func validRecordAfter(w *window, from int64, expect uint64) (int64, bool) {
	maxRecords := uint64((w.limit-from)/RecordHeaderSize) + 1
	for q := from + 1; q+RecordHeaderSize <= w.limit; q++ {
		b, err := w.get(q, RecordHeaderSize)
		if err != nil {
			return 0, false
		}
		rh := decodeRecordHeader(b)
		if rh.payloadLen > MaxPayloadBytes || q+RecordHeaderSize+int64(rh.payloadLen) > w.limit {
			continue
		}
		if rh.offset < expect || rh.offset > expect+maxRecords {
			continue
		}
		b, err = w.get(q, RecordHeaderSize+int(rh.payloadLen))
		if err != nil {
			continue
		}
		if _, _, err := DecodeRecord(b); err == nil {
			return q, true
		}
	}
	return 0, false
}

// countRecordStarts counts the record headers that can be walked in
// [from, limit) by their length fields; it is how many records a truncation
// at from discards (at least one when anything is discarded).
func countRecordStarts(w *window, from int64) int {
	n := 0
	for pos := from; pos < w.limit; n++ {
		b, err := w.get(pos, RecordHeaderSize)
		if err != nil {
			return n + 1
		}
		plen := decodeRecordHeader(b).payloadLen
		if plen > MaxPayloadBytes {
			return n + 1
		}
		pos += RecordHeaderSize + int64(plen)
	}
	return n
}
