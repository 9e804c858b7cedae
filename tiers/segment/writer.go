package segment

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/tiers/backpressure"
)

// DefaultWriteThreshold is how many encoded bytes (1 MiB) Append buffers
// before it hands them to the operating system without waiting for Sync.
const DefaultWriteThreshold = 1 << 20

// Option sets an optional parameter of Create, Recover or Open.
type Option func(*options)

type options struct {
	stream         string
	logger         *slog.Logger
	writeThreshold int
}

// WithStream names the stream in errors and log lines.
func WithStream(name string) Option { return func(o *options) { o.stream = name } }

// WithLogger sets the logger; nil (the default) discards.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithWriteThreshold sets how many buffered bytes make Append write early
// (default DefaultWriteThreshold). Early writes never move the durable
// watermark; only Sync does.
func WithWriteThreshold(bytes int) Option {
	return func(o *options) {
		if bytes > 0 {
			o.writeThreshold = bytes
		}
	}
}

func buildOptions(opts []Option) options {
	o := options{writeThreshold: DefaultWriteThreshold}
	for _, fn := range opts {
		fn(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Writer appends records to the active segment of a stream.
//
// Append encodes records into a reusable buffer and assigns contiguous
// logical offsets; Sync writes whatever is buffered and fsyncs it, in one
// group commit, and only then advances the durable watermark. A record is
// durable (and its message may be acked) once DurableOffset is above its
// offset.
//
// A failed write or fsync is sticky: the call returns a *backpressure.Error
// of kind Flush wrapping the cause, the durable watermark stays where it
// was, and every later Append, Sync or Seal returns the same error. After a
// failed fsync the kernel may have dropped the dirty pages, so the only
// trustworthy state is what Recover finds on disk: close the writer and
// reopen the segment with Recover.
//
// The methods are safe for concurrent use. Sync fsyncs without holding the
// lock Append takes, so appends go on during an fsync; the watermark moves
// only to what that fsync covered (the bytes written before it started).
// Syncs, Seal and Close run one at a time. The watermark getters never
// wait.
type Writer struct {
	fs     vfs.FS
	dir    string
	path   string
	opts   options
	header Header

	// syncMu serializes Sync, Seal and Close so one fsync runs at a time
	// and the watermark only rises; it is taken before mu.
	syncMu   sync.Mutex
	mu       sync.Mutex
	f        vfs.File
	buf      []byte // encoded records not yet handed to the file
	written  int64  // bytes handed to the file: header plus records
	crc      uint64 // CRC-64/NVME of those bytes, for the footer
	next     uint64
	count    uint64
	firstExt uint64
	lastExt  uint64
	// firstMS and lastMS are the append_ts_ms of the first and last
	// record (0 without records), for the manifest's segment bounds.
	firstMS int64
	lastMS  int64
	failed  error
	sealed  bool
	closed  bool

	// durable is the state the last fsync made durable, published as one
	// immutable value so readers always see a consistent pair of offset
	// and bytes.
	durable atomic.Pointer[durableState]
}

// Create makes a new segment file <dir>/FileName(h.SegmentID) with a
// durable header and returns its writer. It fails if the file exists.
//
// Creation is atomic: the header is written to TempFileName(h.SegmentID),
// fsynced, renamed into place and the directory fsynced, so a crash at any
// step leaves either no segment file or one whose header is complete and
// durable, never a torn one. A crash before the rename can leave the temp
// file behind; Create of the same id overwrites it, and Recover and
// RemoveTempFiles remove it. A directory has one creator at a time (the
// stream's owner), which is what makes the existence check and the rename
// safe together.
func Create(fs vfs.FS, dir string, h Header, opts ...Option) (*Writer, error) {
	o := buildOptions(opts)
	path := filepath.Join(dir, FileName(h.SegmentID))
	tmp := filepath.Join(dir, TempFileName(h.SegmentID))
	if _, err := fs.Stat(path); err == nil {
		return nil, fmt.Errorf("create segment: %s: %w", path, os.ErrExist)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("create segment: %w", err)
	}
	tf, err := fs.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create segment: %w", err)
	}
	renamed := false
	fail := func(what string, err error, f vfs.File) (*Writer, error) {
		if f != nil {
			f.Close()
		}
		if renamed {
			fs.Remove(path)
		} else {
			fs.Remove(tmp)
		}
		return nil, fmt.Errorf("create segment %s: %s: %w", path, what, err)
	}
	var hb [HeaderSize]byte
	encodeHeader(hb[:], h)
	if n, err := tf.Write(hb[:]); err != nil || n < len(hb) {
		if err == nil {
			err = errors.New("short write")
		}
		return fail("write header", err, tf)
	}
	if err := tf.Sync(); err != nil {
		return fail("fsync", err, tf)
	}
	if err := tf.Close(); err != nil {
		return fail("close temp file", err, nil)
	}
	if err := fs.Rename(tmp, path); err != nil {
		return fail("rename", err, nil)
	}
	renamed = true
	if err := fs.SyncDir(dir); err != nil {
		return fail("fsync dir", err, nil)
	}
	// Reopen under the final name so the file's name in errors, logs and
	// fault injection is the segment's.
	f, err := fs.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fail("reopen", err, nil)
	}
	if _, err := f.Seek(HeaderSize, io.SeekStart); err != nil {
		return fail("seek", err, f)
	}
	w := newWriter(fs, dir, path, f, h, o)
	w.written = HeaderSize
	w.crc = crc64Update(0, hb[:])
	w.next = h.BaseOffset
	w.publish()
	return w, nil
}

func newWriter(fs vfs.FS, dir, path string, f vfs.File, h Header, o options) *Writer {
	return &Writer{fs: fs, dir: dir, path: path, f: f, header: h, opts: o,
		buf: make([]byte, 0, o.writeThreshold+o.writeThreshold/4)}
}

// durableState is what one fsync makes durable: the writer's position when
// the bytes it covers had all been written.
type durableState struct {
	bytes    int64
	next     uint64
	ext      uint64
	count    uint64
	firstExt uint64
	firstMS  int64
	lastMS   int64
}

func (st durableState) bounds() Bounds {
	return Bounds{FirstExtID: st.firstExt, LastExtID: st.ext, FirstAppendMS: st.firstMS, LastAppendMS: st.lastMS}
}

// current returns the writer's position. Called with mu held.
func (w *Writer) current() durableState {
	return durableState{bytes: w.written, next: w.next, ext: w.lastExt, count: w.count,
		firstExt: w.firstExt, firstMS: w.firstMS, lastMS: w.lastMS}
}

// publish makes the durable state visible to the atomic getters. Called with
// mu held after the file and the fields agree.
func (w *Writer) publish() { w.publishState(w.current()) }

func (w *Writer) publishState(st durableState) { w.durable.Store(&st) }

func (w *Writer) durableState() durableState {
	if st := w.durable.Load(); st != nil {
		return *st
	}
	return durableState{}
}

// Durable returns the durable watermark and the file length covering it
// from the same fsync: every record below offset lies within bytes.
// Readers of an active segment use the pair to bound what they read.
func (w *Writer) Durable() (offset uint64, bytes int64) {
	st := w.durableState()
	return st.next, st.bytes
}

// Header returns the segment header.
func (w *Writer) Header() Header { return w.header }

// Path returns the segment file path.
func (w *Writer) Path() string { return w.path }

// NextOffset is the logical offset the next appended record gets.
func (w *Writer) NextOffset() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.next
}

// DurableOffset is the durable watermark: every record with a lower logical
// offset has been fsynced.
func (w *Writer) DurableOffset() uint64 { return w.durableState().next }

// DurableBytes is the file length covered by the last successful fsync.
// Readers of an active segment use it as their limit (Reader.SetLimit).
func (w *Writer) DurableBytes() int64 { return w.durableState().bytes }

// Size is the length of the segment including buffered, unsynced records.
func (w *Writer) Size() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sealed {
		return w.written + FooterSize
	}
	return w.written + int64(len(w.buf))
}

// LastExtID is the ext id of the last record appended (the highest one when
// records are appended in stream-sequence order), durable or not.
func (w *Writer) LastExtID() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastExt
}

// DurableExtID is the ext id of the last durable record.
func (w *Writer) DurableExtID() uint64 { return w.durableState().ext }

// Bounds are the ext ids and append times (append_ts_ms) of a segment's
// first and last record; all zero without records.
type Bounds struct {
	FirstExtID, LastExtID       uint64
	FirstAppendMS, LastAppendMS int64
}

// Bounds returns the bounds of the records appended, durable or not.
// After Seal they are those of the sealed segment.
func (w *Writer) Bounds() Bounds {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.current().bounds()
}

// DurableBounds returns the bounds of the durable records.
func (w *Writer) DurableBounds() Bounds { return w.durableState().bounds() }

// RecordCount is the number of records appended, durable or not.
func (w *Writer) RecordCount() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.count
}

func (w *Writer) usable() error {
	switch {
	case w.failed != nil:
		return w.failed
	case w.closed:
		return ErrClosed
	case w.sealed:
		return ErrSealed
	}
	return nil
}

// fail records a sticky write or fsync failure as Flush backpressure.
func (w *Writer) fail(what string, err error) error {
	w.failed = backpressure.New(backpressure.Flush, w.opts.stream,
		fmt.Errorf("segment %d: %s %s: %w", w.header.SegmentID, what, w.path, err))
	w.opts.logger.Error("segment writer failed", "stream", w.opts.stream,
		"segment", w.header.SegmentID, "op", what, "err", err)
	return w.failed
}

// Append encodes recs with contiguous logical offsets, all stamped with
// nowMS, and returns the offset of the first. The records are durable only
// after a later Sync returns nil. The batch is all or nothing: a payload
// over MaxPayloadBytes rejects it before anything is encoded. Payloads are
// copied; the caller may reuse them.
func (w *Writer) Append(recs []Record, nowMS int64) (firstOffset uint64, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return 0, err
	}
	total := 0
	for i := range recs {
		n := len(recs[i].Payload)
		if n > MaxPayloadBytes {
			return 0, fmt.Errorf("append: record %d: payload of %d bytes exceeds %d", i, n, MaxPayloadBytes)
		}
		total += RecordHeaderSize + n
	}
	first := w.next
	if len(recs) == 0 {
		return first, nil
	}
	// Every record's place is known up front: encode in place, then fill
	// in the CRCs three records at a time (see checksum3); pend holds
	// where the records not yet summed start.
	pos := len(w.buf)
	w.buf = slices.Grow(w.buf, total)[:pos+total]
	buf := w.buf
	next := w.next
	var pend [3]int
	np := 0
	for i := range recs {
		r := &recs[i]
		end := pos + RecordHeaderSize + len(r.Payload)
		putRecordUnsummed(buf[pos:end], next, nowMS, r.ExtID, r.Flags, r.Payload)
		next++
		pend[np] = pos
		np++
		if np == 3 {
			sumRecords3(buf, pend[0], pend[1], pend[2], end)
			np = 0
		}
		pos = end
	}
	for k, start := range pend[:np] {
		end := pos
		if k+1 < np {
			end = pend[k+1]
		}
		sumRecord(buf[start:end])
	}
	if w.count == 0 {
		w.firstExt = recs[0].ExtID
		w.firstMS = nowMS
	}
	w.lastMS = nowMS
	w.next = next
	w.count += uint64(len(recs))
	w.lastExt = recs[len(recs)-1].ExtID
	if len(w.buf) >= w.opts.writeThreshold {
		if err := w.writeBuffered(); err != nil {
			return 0, err
		}
	}
	return first, nil
}

// writeBuffered hands the buffer to the file. Called with mu held.
func (w *Writer) writeBuffered() error {
	if len(w.buf) == 0 {
		return nil
	}
	n, err := w.f.Write(w.buf)
	w.written += int64(n)
	w.crc = crc64Update(w.crc, w.buf[:n])
	if err == nil && n < len(w.buf) {
		err = errors.New("short write")
	}
	if err != nil {
		return w.fail("write", err)
	}
	if cap(w.buf) > 4*w.opts.writeThreshold {
		// One huge record must not pin its buffer for the segment's life.
		w.buf = make([]byte, 0, w.opts.writeThreshold+w.opts.writeThreshold/4)
	} else {
		w.buf = w.buf[:0]
	}
	return nil
}

// Sync writes everything appended so far and fsyncs it in one group commit,
// then advances the durable watermark to the records appended before the
// call. Appends made while the fsync runs are not covered and wait for the
// next Sync. On failure it returns a *backpressure.Error of kind Flush and
// the watermark does not move.
func (w *Writer) Sync() error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	w.mu.Lock()
	if err := w.usable(); err != nil {
		w.mu.Unlock()
		return err
	}
	if err := w.writeBuffered(); err != nil {
		w.mu.Unlock()
		return err
	}
	st := w.current()
	f := w.f
	w.mu.Unlock()
	if st.bytes == w.DurableBytes() {
		return nil
	}
	// The fsync runs without mu: Append keeps encoding (and may write early)
	// meanwhile. It covers at least the st.bytes written above.
	err := f.Sync()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed != nil {
		// An early write failed during the fsync; the writer is poisoned
		// and its watermark stays, as for any failure.
		return w.failed
	}
	if err != nil {
		return w.fail("fsync", err)
	}
	w.publishState(st)
	return nil
}

// syncLocked is Sync for callers holding syncMu and mu.
func (w *Writer) syncLocked() error {
	if err := w.writeBuffered(); err != nil {
		return err
	}
	if w.written == w.DurableBytes() {
		return nil
	}
	if err := w.f.Sync(); err != nil {
		return w.fail("fsync", err)
	}
	w.publish()
	return nil
}

// Seal syncs the segment, appends the footer, fsyncs it, and records the
// segment in current.sealed (only when it is higher than what is there).
// After Seal the writer accepts no appends; Close it. If only the
// current.sealed update fails, the segment is sealed on disk all the same
// (Recover notices the footer and repeats the update).
func (w *Writer) Seal() (Footer, error) {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return Footer{}, err
	}
	if err := w.syncLocked(); err != nil {
		return Footer{}, err
	}
	ft := Footer{
		RecordCount:  w.count,
		DurableBytes: uint64(w.written),
		CRC64:        w.crc,
		FirstExtID:   w.firstExt,
		LastExtID:    w.lastExt,
		FirstOffset:  w.header.BaseOffset,
		LastOffset:   w.header.BaseOffset,
		Flags:        FlagSealed,
	}
	if w.count > 0 {
		ft.LastOffset = w.next - 1
	}
	var fb [FooterSize]byte
	encodeFooter(fb[:], ft)
	n, err := w.f.Write(fb[:])
	if err == nil && n < len(fb) {
		err = errors.New("short write")
	}
	if err != nil {
		return Footer{}, w.fail("write footer", err)
	}
	if err := w.f.Sync(); err != nil {
		return Footer{}, w.fail("fsync footer", err)
	}
	w.sealed = true
	if err := advanceCurrentSealed(w.fs, w.dir, w.header.SegmentID, ft); err != nil {
		return ft, fmt.Errorf("seal segment %d: %w", w.header.SegmentID, err)
	}
	return ft, nil
}

// Sealed reports whether the footer is durable: Seal got past its fsync,
// even if it then failed to update current.sealed. A sealed segment must
// never be cut back (its footer is the seal).
func (w *Writer) Sealed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sealed
}

// Close releases the file. Buffered records that were not synced are
// dropped: they were never reported durable. It waits for a Sync in
// progress.
func (w *Writer) Close() error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	w.buf = nil
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("close segment %d: %w", w.header.SegmentID, err)
	}
	return nil
}
