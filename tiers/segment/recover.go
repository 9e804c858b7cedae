package segment

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/bop-aof/aof/internal/vfs"
)

// RecoveryReport says what Recover found and did.
type RecoveryReport struct {
	Segment      uint64
	Header       Header
	Records      uint64 // valid records kept
	DurableBytes int64  // file length after recovery
	NextOffset   uint64
	CutBytes     int64 // torn tail removed
	CutRecords   int   // records started in the removed tail (at least 1 when CutBytes > 0)
	CutReason    string
	// LastSealed is the id recorded in current.sealed (valid when
	// LastSealedKnown); Recover reads it instead of opening older segments.
	LastSealed      uint64
	LastSealedKnown bool
	// Sealed is set when the segment already carried a valid footer; Footer
	// holds it and Recover returned ErrSealed.
	Sealed bool
	Footer Footer
	// TempFilesRemoved counts the temp files of an interrupted Create that
	// Recover deleted from the directory (RemoveTempFiles).
	TempFilesRemoved int
}

// Recover reopens the unsealed segment id in dir for appending after a
// crash or a failed writer.
//
// It keeps the longest prefix of valid records and truncates a torn tail:
// bytes after the last valid record that contain no further valid record
// (a partial record, a partial footer, zeros). The cut is fsynced before the
// writer is returned and reported in RecoveryReport. A damaged record that is
// followed by a valid one cannot come from a torn write; Recover then returns
// a *CorruptionError at the damaged record's byte offset and changes nothing.
//
// Recover consults current.sealed and never opens an older segment. It
// refuses a segment at or below the recorded sealed id, and for a segment
// that already has a valid footer (a crash between sealing and updating
// current.sealed) it brings current.sealed up to date and returns ErrSealed
// with the footer in the report.
//
// Recover first removes the temp files a crash inside Create left in dir
// (RemoveTempFiles) and counts them in RecoveryReport.TempFilesRemoved; it
// must not run while a Create in dir is in progress.
func Recover(fsys vfs.FS, dir string, id uint64, stream string, opts ...Option) (*Writer, RecoveryReport, error) {
	o := buildOptions(append([]Option{WithStream(stream)}, opts...))
	rep := RecoveryReport{Segment: id}
	mark, ok, err := ReadSealedMark(fsys, dir)
	if err != nil {
		return nil, rep, fmt.Errorf("recover segment %d: %w", id, err)
	}
	rep.LastSealed, rep.LastSealedKnown = mark.SegmentID, ok
	if rep.TempFilesRemoved, err = RemoveTempFiles(fsys, dir); err != nil {
		return nil, rep, fmt.Errorf("recover segment %d: %w", id, err)
	}
	if rep.TempFilesRemoved > 0 {
		o.logger.Warn("segment temp files of an interrupted create removed", "stream", o.stream,
			"dir", dir, "count", rep.TempFilesRemoved)
	}
	if ok && id <= mark.SegmentID {
		return nil, rep, fmt.Errorf("recover segment %d: %w (%s names %d)", id, ErrSealed, CurrentSealedName, mark.SegmentID)
	}
	path := filepath.Join(dir, FileName(id))
	f, err := fsys.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, rep, fmt.Errorf("recover segment %d: %w", id, err)
	}
	w, err := recoverFile(fsys, dir, path, f, id, o, &rep)
	if err != nil {
		f.Close()
		return nil, rep, err
	}
	return w, rep, nil
}

func recoverFile(fsys vfs.FS, dir, path string, f vfs.File, id uint64, o options, rep *RecoveryReport) (*Writer, error) {
	corrupt := func(off int64, err error) error {
		return &CorruptionError{Stream: o.stream, Segment: id, Offset: off, Err: err}
	}
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("recover segment %d: %w", id, err)
	}
	size := st.Size()
	var hb [HeaderSize]byte
	if n, err := f.ReadAt(hb[:], 0); n < HeaderSize {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, corrupt(0, fmt.Errorf("header: truncated at %d bytes", n))
		}
		return nil, fmt.Errorf("recover segment %d: read header: %w", id, err)
	}
	h, err := decodeHeader(hb[:])
	if err != nil {
		return nil, corrupt(0, err)
	}
	if h.SegmentID != id {
		return nil, corrupt(0, fmt.Errorf("header: segment id %d in file of segment %d", h.SegmentID, id))
	}
	rep.Header = h

	if ft, ok, err := readFooterAt(f, size); err == nil && ok {
		rep.Sealed, rep.Footer = true, ft
		if err := advanceCurrentSealed(fsys, dir, id, ft); err != nil {
			return nil, fmt.Errorf("recover segment %d: %w", id, err)
		}
		return nil, fmt.Errorf("recover segment %d: %w", id, ErrSealed)
	}
	// A footer that fails its checks is treated like any other tail bytes:
	// if it is the torn end of a seal, it is cut and the segment reopens.

	win := window{r: f, limit: size}
	scan := scanState{pos: HeaderSize, next: h.BaseOffset, crc: crc64Update(0, hb[:])}
	if serr := scanRecords(&win, &scan); serr != nil {
		if !isRecordDamage(serr) {
			return nil, fmt.Errorf("recover segment %d: %w", id, serr)
		}
		if errors.Is(serr, errBadOffset) {
			// The record's checksum held, so these are not torn bytes.
			return nil, corrupt(scan.pos, serr)
		}
		if at, found := validRecordAfter(&win, scan.pos, scan.next); found {
			return nil, corrupt(scan.pos, fmt.Errorf("%w (a valid record follows at byte %d)", serr, at))
		}
		rep.CutBytes = size - scan.pos
		rep.CutRecords = countRecordStarts(&win, scan.pos)
		rep.CutReason = serr.Error()
		if err := f.Truncate(scan.pos); err != nil {
			return nil, fmt.Errorf("recover segment %d: truncate torn tail: %w", id, err)
		}
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("recover segment %d: fsync after truncate: %w", id, err)
		}
		o.logger.Warn("segment torn tail truncated", "stream", o.stream, "segment", id,
			"at", scan.pos, "cut_bytes", rep.CutBytes, "cut_records", rep.CutRecords, "reason", serr)
	}
	if _, err := f.Seek(scan.pos, io.SeekStart); err != nil {
		return nil, fmt.Errorf("recover segment %d: %w", id, err)
	}
	w := newWriter(fsys, dir, path, f, h, o)
	w.written = scan.pos
	w.crc = scan.crc
	w.next = scan.next
	w.count = scan.count
	w.firstExt = scan.firstExt
	w.lastExt = scan.lastExt
	w.firstMS, w.lastMS = scan.firstMS, scan.lastMS
	w.publish()
	rep.Records = scan.count
	rep.DurableBytes = scan.pos
	rep.NextOffset = scan.next
	return w, nil
}

// isRecordDamage tells bytes that fail the record format from I/O errors.
func isRecordDamage(err error) bool {
	return errors.Is(err, errShortRecord) || errors.Is(err, ErrChecksum) ||
		errors.Is(err, errBadOffset) || errors.Is(err, errRecordTooLarge)
}

// Reseal seals segment id again when current.sealed names it but its file
// has no footer. No version of the store that follows the seal order
// (footer fsynced before current.sealed) leaves that state, but an older
// one did, after a failed manifest commit cut the footer back off, and a
// root in that state must still open. The records are kept as Recover
// would keep them (the longest valid prefix; a torn tail is cut), the
// footer is written and fsynced, and current.sealed gets its summary. A
// segment that does have a valid footer returns it with ErrSealed, as
// Recover does.
func Reseal(fsys vfs.FS, dir string, id uint64, stream string, opts ...Option) (Footer, RecoveryReport, error) {
	o := buildOptions(append([]Option{WithStream(stream)}, opts...))
	rep := RecoveryReport{Segment: id}
	path := filepath.Join(dir, FileName(id))
	f, err := fsys.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return Footer{}, rep, fmt.Errorf("reseal segment %d: %w", id, err)
	}
	w, err := recoverFile(fsys, dir, path, f, id, o, &rep)
	if err != nil {
		f.Close()
		return rep.Footer, rep, err
	}
	defer w.Close()
	ft, err := w.Seal()
	if err != nil && !w.Sealed() {
		return Footer{}, rep, fmt.Errorf("reseal segment %d: %w", id, err)
	}
	// With the footer durable the segment is sealed; current.sealed names
	// it already, so a failure to store the footer summary there is not one.
	rep.Sealed, rep.Footer = true, ft
	o.logger.Warn("segment resealed", "stream", o.stream, "segment", id,
		"records", rep.Records, "cut_bytes", rep.CutBytes, "summary_err", err)
	return ft, rep, nil
}
