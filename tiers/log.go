package tiers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/backpressure"
	"github.com/bop-aof/aof/tiers/segment"
	"github.com/bop-aof/aof/tracing"
)

// segInfo is what a Log keeps in memory about one of its segments.
//
// Where the segment is in its life and where its copies are (st) is the
// fold of its manifest records, kept with the fold replay uses
// (manifest.SegmentState.Apply): at run time it changes only through
// Log.applyLocked, when the log writes a record (see segstate.go); at
// boot the recovery plan loads it from the manifest index and the files
// found. The rest is the segment's extent as the writer saw it (for the
// active segment, live) and run-time progress that no record describes.
type segInfo struct {
	id uint64
	// st is the segment's folded manifest state: Sealed, InTier0/1/2,
	// Tier2Key, ETag, CompressedBytes, NeedsRecovery and Reason are read
	// from it. Never assigned outside segstate.go and the recovery plan.
	st       manifest.SegmentState
	base     uint64 // first logical offset
	next     uint64 // one past the last logical offset
	bytes    int64  // segment file size (Tier 0 bytes)
	firstExt uint64
	lastExt  uint64
	// boundsKnown: firstMS and lastMS (and firstExt, lastExt) are those of
	// the segment's first and last record. Unset for a segment sealed
	// before the manifest kept them.
	boundsKnown bool
	firstMS     int64
	lastMS      int64
	crc64       uint64
	// hydrating is set while a hydration job for the segment runs;
	// hydratedBytes counts what it has downloaded so far.
	hydrating     bool
	hydratedBytes int64
	createdMS     int64
	// links are the span contexts of the appends into the segment (up to
	// maxSealLinks), so its seal, compress and upload spans can be found
	// from the producers' traces.
	links []trace.Link
}

// maxSealLinks bounds the append links a seal span carries.
const maxSealLinks = 32

// unrecordedSeal is a seal whose footer is durable but whose SealSegment
// record the manifest has not committed.
type unrecordedSeal struct {
	si *segInfo
	ft segment.Footer
	// appended holds the seal's records once they are pending in the
	// manifest, which retries them on every later commit: they must not
	// be appended twice, and they take effect once committed.
	appended []manifest.Record
}

// Log is one stream's segmented log. Appends are serialised; reads may
// run concurrently with appends.
type Log struct {
	s    *Store
	name string
	// holes are the stream's ext_id ranges lost in a disaster recovery
	// (HolesFile); set at open. lostRetired are the lost segments of
	// refilled ranges already handed to retireLostAsync.
	holes       streamHoles
	lostRetired map[uint64]bool
	// maxExt caches lastExtLocked while maxExtOK.
	maxExt   uint64
	maxExtOK bool
	dir0     string // <root>/tier0/<stream>

	// recordMu orders the records written by record (see there); taken
	// before mu, never while holding it.
	recordMu sync.Mutex

	mu     sync.Mutex
	active *segment.Writer
	segs   []*segInfo // ordered by id; the last one may be the active segment
	man    *manifest.Log
	failed error // a Flush failure: appends are refused until Resume
	// reopened is set once the active segment was cut back to its durable
	// records after the failure.
	reopened bool
	// needNext is set when the active segment is sealed but the next one
	// could not be created yet.
	needNext bool
	// unrecorded is the active segment when it is sealed on disk (footer
	// durable) but its SealSegment record is not committed yet; the log
	// refuses appends (Flush backpressure) until Resume records it.
	unrecorded *unrecordedSeal
	cond       *sync.Cond

	// uploadedAtBoot lists the Tier 1 artifacts to mark uploaded once the
	// log is registered (the cache does not persist that mark).
	uploadedAtBoot []uint64
	// retireAtBoot lists segments whose retirement a crash interrupted;
	// the next retention pass finishes them.
	retireAtBoot []uint64
	// recordedAtBoot holds the records the recovery plan appended that
	// take effect once its commit returns (commitManifest).
	recordedAtBoot []manifest.Record

	lastSnapshot time.Time         // when maybeSnapshot last wrote one
	snapshotAt   manifest.Position // the manifest tail it covered
}

func openLog(ctx context.Context, s *Store, name string) (*Log, error) {
	l := &Log{s: s, name: name, dir0: filepath.Join(s.opts.Root, "tier0", name), lastSnapshot: s.opts.Now(), holes: s.holes[name]}
	l.cond = sync.NewCond(&l.mu)
	if err := s.fs.MkdirAll(l.dir0, 0o755); err != nil {
		return nil, fmt.Errorf("create tier0 dir: %w", err)
	}
	man, err := manifest.Open(s.fs, filepath.Join(s.opts.Root, "manifest", name), name, manifest.Options{
		ChunkCapacity:  s.opts.ManifestChunkCapacity,
		RotationPeriod: s.opts.ManifestRotationPeriod,
		Logger:         s.log,
		Instruments:    s.opts.Instruments,
		Publisher:      s.opts.Publisher,
		Uploader:       s.manifestUploader(),

		ArchiveInterval: s.opts.ManifestArchiveInterval,
		Epoch:           s.epochOf(name),
	})
	if err != nil {
		return nil, fmt.Errorf("open manifest: %w", err)
	}
	l.man = man
	if err := l.recover(ctx); err != nil {
		man.Close()
		return nil, err
	}
	return l, nil
}

// Name returns the stream name.
func (l *Log) Name() string { return l.name }

// recover rebuilds the in-memory state from the manifest index and the
// Tier 0 and Tier 1 files, redoing what a crash interrupted: it takes the
// inventory, plans the recovery and applies the plan (see recovery.go).
func (l *Log) recover(ctx context.Context) error {
	inv, err := l.takeInventory()
	if err != nil {
		return err
	}
	acts, err := planRecovery(inv)
	if err == nil {
		err = l.applyRecovery(acts)
	}
	if err != nil {
		inv.closeTail()
		return err
	}
	return nil
}

// setBounds records the bounds of the segment's records.
func (si *segInfo) setBounds(b segment.Bounds) {
	si.boundsKnown = true
	si.firstExt, si.lastExt = b.FirstExtID, b.LastExtID
	si.firstMS, si.lastMS = b.FirstAppendMS, b.LastAppendMS
}

func fillFromFooter(si *segInfo, ft segment.Footer) {
	si.next = ft.LastOffset + 1
	if ft.RecordCount == 0 {
		si.next = si.base
	}
	si.bytes = int64(ft.DurableBytes)
	si.crc64 = ft.CRC64
	si.firstExt = ft.FirstExtID
	si.lastExt = ft.LastExtID
}

// LastExtID is the highest ext_id appended to this stream. After a
// restart only durable records remain, so it is then the durable one.
func (l *Log) LastExtID() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastExtLocked()
}

// lastExtLocked is the highest ext_id in a segment that still has a copy.
// Normally the newest segment holds it, but not after a disaster recovery
// stored lost sequences again at the end of the stream, so it is the
// maximum over every segment, cached and kept current by Append.
func (l *Log) lastExtLocked() uint64 {
	if !l.maxExtOK {
		var m uint64
		for _, si := range l.segs {
			ext := si.lastExt
			if l.active != nil && si.id == l.active.Header().SegmentID {
				ext = l.active.LastExtID()
			}
			// A segment whose every copy is gone (disaster recovery, a
			// lost disk) does not count: its messages must be stored
			// again when the ingest stream redelivers them.
			if !si.st.NeedsRecovery {
				m = max(m, ext)
			}
		}
		l.maxExt, l.maxExtOK = m, true
	}
	return l.maxExt
}

// forgetMaxExt drops the cached maximum after a segment changed other
// than by an append. Called with mu held.
func (l *Log) forgetMaxExt() { l.maxExtOK = false }

// activeBytes is the size of the active segment when it holds records
// (a candidate for sealing under pressure), else 0.
func (l *Log) activeBytes() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed != nil || l.needNext || l.active.RecordCount() == 0 {
		return 0
	}
	return l.active.Size()
}

// NextOffset is the logical offset the next record will get.
func (l *Log) NextOffset() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.active.NextOffset()
}

// DurableOffset: every record below it is durable.
func (l *Log) DurableOffset() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.active.DurableOffset()
}

// AppendDurable appends recs and syncs them with one fsync (group commit).
// It returns the logical offset of the first record.
//
// Admission to Tier 0 is taken first and does not wait: when the budget is
// exhausted nothing is appended and the error is Admission backpressure. A
// failed fsync returns Flush backpressure; the log then refuses appends
// until it is reopened, because only a recovery scan can say what is on
// disk.
func (l *Log) AppendDurable(ctx context.Context, recs []Record) (uint64, error) {
	first, next, err := l.Append(ctx, recs)
	if err != nil {
		return 0, err
	}
	return first, l.SyncTo(ctx, next)
}

// ErrRecordTooLarge is matched (errors.Is) by Append's refusal of a record
// whose payload exceeds segment.MaxPayloadBytes: the segment format cannot
// hold it, so it would be refused on every attempt.
var ErrRecordTooLarge = errors.New("record payload exceeds the segment record limit")

// Append appends recs without waiting for them to be durable and returns
// the offset of the first record and the offset after the last: pass the
// latter to SyncTo before acknowledging anything. Appends are ordered;
// LastExtID counts appended records at once, so a redelivery that arrives
// while the original is still being synced is recognised.
func (l *Log) Append(ctx context.Context, recs []Record) (first, next uint64, err error) {
	if len(recs) == 0 {
		n := l.NextOffset()
		return n, n, nil
	}
	var n int64
	for i, r := range recs {
		// Refused before admission and before the writer sees it: the
		// writer's own refusal would stop the log as if the disk failed.
		if len(r.Payload) > segment.MaxPayloadBytes {
			return 0, 0, fmt.Errorf("stream %s: record %d (ext_id %d): payload of %d bytes exceeds the segment record limit of %d bytes: %w",
				l.name, i, r.ExtID, len(r.Payload), segment.MaxPayloadBytes, ErrRecordTooLarge)
		}
		n += int64(segment.RecordHeaderSize + len(r.Payload))
	}
	guard, err := l.s.budget.Admit(ctx, l.name, n)
	if err != nil {
		if backpressure.Is(err, backpressure.Admission) {
			l.s.relieveAdmission()
		}
		return 0, 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed != nil {
		// Refused until Resume: callers that decided what to append
		// from the watermark before the failure must start over.
		guard.Release()
		return 0, 0, l.failed
	}
	if l.needNext {
		if err := l.openNextAfterSealLocked(); err != nil {
			guard.Release()
			return 0, 0, err
		}
	}
	if l.shouldRollLocked(n) {
		if err := l.rollLocked(ctx); err != nil {
			guard.Release()
			return 0, 0, err
		}
	}
	w := l.active
	_, span := l.s.opts.Tracer.Start(ctx, tracing.SpanAppend, trace.WithAttributes(
		tracing.AttrStream.String(l.name), tracing.AttrSegment.Int64(int64(w.Header().SegmentID)),
		tracing.AttrRecords.Int(len(recs)), tracing.AttrBytes.Int64(n)))
	first, err = w.Append(recs, l.s.opts.Now().UnixMilli())
	span.End()
	// Whatever reached the writer counts against Tier 0.
	guard.Commit(newSegmentKey(l.name, w.Header().SegmentID))
	if err != nil {
		return 0, 0, l.failLocked(err)
	}
	si := l.segs[len(l.segs)-1]
	si.next = w.NextOffset()
	si.bytes = w.Size()
	si.lastExt = w.LastExtID()
	if l.maxExtOK {
		l.maxExt = max(l.maxExt, si.lastExt)
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && len(si.links) < maxSealLinks &&
		(len(si.links) == 0 || si.links[len(si.links)-1].SpanContext.TraceID() != sc.TraceID()) {
		si.links = append(si.links, trace.Link{SpanContext: sc})
	}
	return first, si.next, nil
}

// SyncTo returns once every record below offset next is durable. Callers
// syncing at the same time share fsyncs (group commit), and appends go on
// while an fsync runs.
func (l *Log) SyncTo(ctx context.Context, next uint64) error {
	l.mu.Lock()
	if l.failed != nil {
		l.mu.Unlock()
		return l.failed
	}
	w := l.active
	if next > w.NextOffset() {
		// The records were discarded by a failed fsync's recovery.
		l.mu.Unlock()
		return backpressure.New(backpressure.Flush, l.name, errors.New("records lost to a failed fsync; redeliver them"))
	}
	if w.Header().BaseOffset >= next || w.DurableOffset() >= next {
		// Sealed with an earlier segment (sealing syncs), or already durable.
		l.mu.Unlock()
		return nil
	}
	l.mu.Unlock()
	_, span := l.s.opts.Tracer.Start(ctx, tracing.SpanFsync, trace.WithAttributes(
		tracing.AttrStream.String(l.name), tracing.AttrSegment.Int64(int64(w.Header().SegmentID))))
	err := w.Sync()
	span.End()
	if err != nil && w.DurableOffset() >= next {
		// The writer was sealed or closed by a concurrent rollover after
		// making these records durable.
		err = nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.s.opts.Instruments.IncFlushFailure(ctx)
		if l.failed == nil {
			return l.failLocked(err)
		}
		return l.failed
	}
	l.cond.Broadcast()
	return nil
}

// reopenActiveLocked recovers the active segment after a write or fsync
// failure: only what a recovery scan finds on disk is trusted, so records
// whose fsync failed are dropped (they were never acknowledged) and the
// ext_id watermark falls back to the durable one.
func (l *Log) reopenActiveLocked() error {
	w := l.active
	id := w.Header().SegmentID
	if w.Sealed() {
		// Its records are all durable and current.sealed may name it:
		// cutting the footer would leave a root that cannot reopen.
		return fmt.Errorf("%w (segment %d is sealed; its footer stays)", l.failed, id)
	}
	durable := w.DurableBytes()
	w.Close()
	// After a failed fsync the page cache may still show bytes that never
	// reached the disk: keep only what the last successful fsync covered.
	if err := truncateFile(l.s.fs, filepath.Join(l.dir0, segment.FileName(id)), durable); err != nil {
		return fmt.Errorf("%w (truncate to the durable length: %v)", l.failed, err)
	}
	nw, rep, err := segment.Recover(l.s.fs, l.dir0, id, l.name, segment.WithLogger(l.s.log))
	if err != nil {
		return fmt.Errorf("%w (reopen after failure: %v)", l.failed, err)
	}
	l.s.log.Warn("segment_reopened_after_failure", "stream", l.name, "segment", id,
		"records", rep.Records, "cut_bytes", rep.CutBytes, "after", l.failed)
	l.active = nw
	si := l.segs[len(l.segs)-1]
	si.next, si.bytes, si.lastExt = nw.NextOffset(), nw.Size(), nw.DurableExtID()
	l.forgetMaxExt()
	l.s.budget.Track(newSegmentKey(l.name, id), nw.Size(), false, false)
	l.reopened = true
	return nil
}

// truncateFile cuts path to size and fsyncs it.
func truncateFile(fs vfs.FS, path string, size int64) error {
	f, err := fs.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	return f.Sync()
}

// Resume lets a log whose fsync failed take appends again, once its
// active segment was cut back to the durable records, or once the
// manifest committed the record of a seal it had failed to commit. The
// caller must have dropped everything it appended before (the ingest
// pipeline calls it when it restarts from the ack floor). While the cause
// lasts (a full disk) Resume fails and the log keeps refusing appends.
func (l *Log) Resume() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed == nil {
		return nil
	}
	if l.unrecorded != nil {
		err := l.completeSealLocked(l.s.ctx)
		if l.unrecorded != nil {
			return err
		}
		if err != nil {
			// The seal is recorded. A next segment that could not be
			// created (needNext) or recorded yet is retried by the next
			// append or commit.
			l.s.log.Warn("segment_open_after_seal_failed", "stream", l.name, "err", err)
		}
		l.failed, l.reopened = nil, false
		return nil
	}
	if !l.reopened {
		if err := l.reopenActiveLocked(); err != nil {
			return err
		}
	}
	l.failed, l.reopened = nil, false
	return nil
}

// resumeWrites is Resume, then a retry of the work a failure left for the
// next append (see Store.ResumeStream), so that a caller learns whether
// the stream is writable without risking a record on it.
func (l *Log) resumeWrites() error {
	if err := l.Resume(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed != nil {
		// A sync of records appended before the failure failed again
		// meanwhile.
		return l.failed
	}
	if l.needNext {
		if err := l.openNextAfterSealLocked(); err != nil {
			return err
		}
	}
	if err := l.man.Commit(); err != nil {
		return backpressure.New(backpressure.Flush, l.name, fmt.Errorf("manifest not writable: %w", err))
	}
	return nil
}

func (l *Log) failLocked(err error) error {
	if !backpressure.Is(err, backpressure.Flush) {
		err = backpressure.New(backpressure.Flush, l.name, err)
	}
	if l.failed != nil {
		return l.failed
	}
	l.failed = err
	l.s.log.Error("flush_failed", "stream", l.name, "err", err)
	// Cut back to the durable records now, so LastExtID no longer counts
	// records that were never acknowledged. If that fails too, Resume
	// tries again.
	if rerr := l.reopenActiveLocked(); rerr != nil {
		l.s.log.Error("segment_reopen_failed", "stream", l.name, "err", rerr)
	}
	return err
}

func (l *Log) shouldRollLocked(n int64) bool {
	w := l.active
	if w.RecordCount() == 0 {
		return false
	}
	if w.Size()+n > l.s.opts.SegmentTargetBytes {
		return true
	}
	if age := l.s.opts.SegmentMaxAge; age > 0 {
		created := w.Header().CreatedMS
		if l.s.opts.Now().UnixMilli()-created >= age.Milliseconds() {
			return true
		}
	}
	return false
}

// Flush makes everything appended durable.
func (l *Log) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed != nil {
		return l.failed
	}
	if l.needNext {
		return nil // the active segment is sealed: nothing is pending
	}
	if err := l.active.Sync(); err != nil {
		return l.failLocked(err)
	}
	return nil
}

// Seal seals the active segment and opens the next one. An empty active
// segment is left alone unless force is set. It returns the sealed id.
func (l *Log) Seal(ctx context.Context, force bool) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed != nil {
		return 0, l.failed
	}
	if l.needNext {
		// The active segment is sealed already; open the next one.
		return 0, l.openNextAfterSealLocked()
	}
	if l.active.RecordCount() == 0 && !force {
		return 0, nil
	}
	id := l.active.Header().SegmentID
	if err := l.rollLocked(ctx); err != nil {
		return 0, err
	}
	return id, nil
}

// MaybeRollByAge seals the active segment when it is older than
// segment.max_age and holds records. The background ticker calls it.
func (l *Log) MaybeRollByAge(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.needNext {
		return l.openNextAfterSealLocked()
	}
	if l.failed != nil || l.s.opts.SegmentMaxAge <= 0 || !l.shouldRollLocked(0) {
		return nil
	}
	return l.rollLocked(ctx)
}

// rollLocked seals the active segment, records SealSegment, opens the next
// segment and queues the sealed one for compression. The steps, and what a
// crash or failure after each leaves:
//
//  1. The manifest commits whatever is pending. If it cannot, nothing is
//     sealed: Flush backpressure, and the next seal tries again.
//  2. Footer written and fsynced (Writer.Seal). A failure here cuts the
//     segment back to its durable records (failLocked), so no footer can
//     be left that current.sealed does not name.
//  3. current.sealed advanced (temp file, fsync, rename, directory fsync).
//     A failure is only logged: the footer is the seal, and Recover or
//     the next seal brings current.sealed up to date.
//  4. SealSegment appended and committed. On failure the segment stays
//     sealed on disk, never cut, and the log refuses appends with Flush
//     backpressure until Resume commits the record (completeSealLocked);
//     a restart redoes the record from the footer (recover).
//  5. The next segment is created and SegmentOpened committed; see
//     openNextAfterSealLocked.
func (l *Log) rollLocked(ctx context.Context) error {
	// A failed commit is counted (metadata_failures) by the manifest.
	if err := l.man.Commit(); err != nil {
		return backpressure.New(backpressure.Flush, l.name, fmt.Errorf("manifest not writable, segment not sealed: %w", err))
	}
	w := l.active
	id := w.Header().SegmentID
	sctx, span := l.s.opts.Tracer.Start(ctx, tracing.SpanSeal, trace.WithAttributes(
		tracing.AttrStream.String(l.name), tracing.AttrSegment.Int64(int64(id))),
		trace.WithLinks(l.segs[len(l.segs)-1].links...))
	defer span.End()
	ft, err := w.Seal()
	if err != nil && !w.Sealed() {
		return l.failLocked(err)
	}
	if err != nil {
		l.s.log.Warn("current_sealed_update_failed", "stream", l.name, "segment", id, "err", err)
	}
	// The footer counts against Tier 0 like the rest of the file.
	l.s.budget.Track(newSegmentKey(l.name, id), w.Size(), true, false)
	bounds := w.Bounds()
	w.Close()
	si := l.segs[len(l.segs)-1]
	fillFromFooter(si, ft)
	si.setBounds(bounds)
	// Not sealed in the view until SealSegment commits (completeSealLocked);
	// the log refuses appends until then.
	span.SetAttributes(tracing.AttrBytes.Int64(int64(ft.DurableBytes)), tracing.AttrRecords.Int64(int64(ft.RecordCount)))
	l.unrecorded = &unrecordedSeal{si: si, ft: ft}
	return l.completeSealLocked(sctx)
}

// completeSealLocked commits the SealSegment record of the sealed active
// segment, then opens the next segment and queues the sealed one for
// compression. When the record cannot be committed the log stops with
// Flush backpressure; Resume calls it again.
func (l *Log) completeSealLocked(ctx context.Context) error {
	u := l.unrecorded
	if u.appended == nil {
		rs, err := l.recordSeal(u.si, u.ft)
		if err != nil {
			return l.sealNotRecordedLocked(err)
		}
		u.appended = rs
	}
	if err := l.man.Commit(); err != nil {
		return l.sealNotRecordedLocked(fmt.Errorf("commit manifest: %w", err))
	}
	l.unrecorded = nil
	l.committedLocked(u.appended...) // sealed: the budget may evict it once in Tier 1
	// The next segment opens before compression is queued, so the
	// manifest reads SealSegment, SegmentOpened, then the Tier 1 records.
	err := l.openNextAfterSealLocked()
	l.s.bg.enqueueCompressCtx(ctx, l, u.si.id)
	u.si.links = nil
	return err
}

// sealNotRecordedLocked stops the log after a seal whose record the
// manifest could not commit.
func (l *Log) sealNotRecordedLocked(err error) error {
	l.failed = backpressure.New(backpressure.Flush, l.name,
		fmt.Errorf("seal of segment %d not recorded in the manifest: %w", l.unrecorded.si.id, err))
	// Not counted here: the manifest counts the failed or refused write.
	l.s.log.Error("seal_record_failed", "stream", l.name, "segment", l.unrecorded.si.id, "err", err)
	return l.failed
}

// openNextAfterSealLocked opens the segment after a sealed active one.
// When that fails (disk full, say) the log remembers it and the next
// append or seal tries again, rather than reopening the sealed writer.
func (l *Log) openNextAfterSealLocked() error {
	if err := l.openNextLocked(); err != nil {
		l.needNext = true
		l.s.log.Error("segment_open_failed", "stream", l.name, "err", err)
		return backpressure.New(backpressure.Rollover, l.name, err)
	}
	l.needNext = false
	if err := l.man.Commit(); err != nil {
		// The segment is usable: its SegmentOpened stays pending in the
		// manifest, which commits it with its next record, and a restart
		// before that records it from the file (recover).
		return backpressure.New(backpressure.Flush, l.name, fmt.Errorf("segment %d opened, its manifest record not committed yet: %w", l.active.Header().SegmentID, err))
	}
	return nil
}

// recordSeal appends the records of segment si's seal and returns them
// for committedLocked, once the caller's commit of them returned.
func (l *Log) recordSeal(si *segInfo, ft segment.Footer) ([]manifest.Record, error) {
	var rs []manifest.Record
	// SegmentBounds goes first, in the same commit: a crash that keeps
	// only a prefix of the commit leaves either both records, or the
	// bounds of a segment not yet recorded sealed (redone at restart).
	if si.boundsKnown {
		r, err := l.appendRecordLocked(manifest.Record{
			Type:          manifest.SegmentBounds,
			Segment:       si.id,
			LogicalOffset: si.next,
			TimestampMS:   l.s.opts.Now().UnixMilli(),
			Payload: manifest.SegmentBoundsPayload{
				FirstExtID: si.firstExt, LastExtID: si.lastExt,
				FirstAppendMS: si.firstMS, LastAppendMS: si.lastMS,
			},
		})
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	r, err := l.appendRecordLocked(manifest.Record{
		Type:          manifest.SealSegment,
		Segment:       si.id,
		LogicalOffset: si.next,
		TimestampMS:   l.s.opts.Now().UnixMilli(),
		Payload: manifest.SealSegmentPayload{
			DurableBytes:         ft.DurableBytes,
			SegmentCRC64:         ft.CRC64,
			ExtID:                ft.LastExtID,
			CoordinatorWatermark: si.next,
		},
	})
	if err != nil {
		return nil, err
	}
	return append(rs, r), nil
}

// openNextLocked creates the next active segment after the last one known.
func (l *Log) openNextLocked() error {
	id, base := uint64(1), uint64(0)
	if n := len(l.segs); n > 0 {
		last := l.segs[n-1]
		id, base = last.id+1, last.next
	}
	now := l.s.opts.Now().UnixMilli()
	w, err := segment.Create(l.s.fs, l.dir0, segment.Header{
		StreamID:   manifest.CRC64([]byte(l.name)),
		SegmentID:  id,
		BaseOffset: base,
		CreatedMS:  now,
	}, segment.WithStream(l.name), segment.WithLogger(l.s.log))
	if err != nil {
		return fmt.Errorf("open segment %d: %w", id, err)
	}
	// In the view first: SegmentOpened takes effect (the segment is in
	// Tier 0) when the manifest takes it.
	l.segs = append(l.segs, &segInfo{id: id, base: base, next: base, bytes: w.Size(), createdMS: now,
		st: manifest.SegmentState{Stream: l.name, Segment: id}})
	if _, err := l.appendRecordLocked(manifest.Record{
		Type: manifest.SegmentOpened, Segment: id, LogicalOffset: base, TimestampMS: now,
		Payload: manifest.SegmentOpenedPayload{BaseOffset: base},
	}); err != nil {
		l.segs = l.segs[:len(l.segs)-1]
		// Remove the empty file, so the next attempt can create it again.
		w.Close()
		if rerr := l.s.fs.Remove(w.Path()); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			l.s.log.Warn("segment_remove_failed", "stream", l.name, "segment", id, "err", rerr)
		}
		return err
	}
	l.active = w
	l.s.budget.Track(newSegmentKey(l.name, id), w.Size(), false, false)
	return nil
}

// segment returns the info of segment id, or nil.
func (l *Log) segmentLocked(id uint64) *segInfo {
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].id >= id })
	if i < len(l.segs) && l.segs[i].id == id {
		return l.segs[i]
	}
	return nil
}

// segmentFor returns the segment holding logical offset off.
func (l *Log) segmentForLocked(off uint64) *segInfo {
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].next > off })
	for ; i < len(l.segs); i++ {
		if l.segs[i].next > l.segs[i].base || l.segs[i] == l.segs[len(l.segs)-1] {
			return l.segs[i]
		}
	}
	return nil
}

// evictTier0 removes the Tier 0 file of a sealed segment that has a Tier 1
// copy. The LocalEvicted record is committed before the file goes, so a
// crash in between leaves a file the next boot evicts again. The segment
// counts as out of Tier 0 from the record's append; the Tier 0 budget,
// which counts files, forgets it once the file may go. An eviction whose
// commit failed is finished by the next call (the budget's evictor picks
// the file again), once a commit succeeds.
func (l *Log) evictTier0(ctx context.Context, id uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	si := l.segmentLocked(id)
	if si == nil {
		return fmt.Errorf("segment %d is not evictable from tier 0", id)
	}
	if si.st.InTier0 {
		if !si.st.Sealed || !si.st.InTier1 {
			return fmt.Errorf("segment %d is not evictable from tier 0", id)
		}
		if _, err := l.appendRecordLocked(manifest.Record{
			Type: manifest.LocalEvicted, Segment: id, LogicalOffset: si.next,
			Payload: manifest.LocalEvictedPayload{ReclaimedBytes: uint64(si.bytes)},
		}); err != nil {
			return err
		}
	}
	if err := l.man.Commit(); err != nil {
		return err
	}
	// The record is committed: the file may go. A file left behind
	// (failed remove, crash) is removed at the next boot.
	if err := l.s.fs.Remove(filepath.Join(l.dir0, segment.FileName(id))); err != nil && !errors.Is(err, os.ErrNotExist) {
		l.s.log.Warn("tier0_evicted_file_left", "stream", l.name, "segment", id, "err", err)
	}
	l.s.budget.Forget(newSegmentKey(l.name, id))
	l.s.log.Info("tier0_evicted", "stream", l.name, "segment", id, "bytes", si.bytes)
	return nil
}

func (l *Log) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	if l.active != nil && !l.needNext {
		if l.failed == nil {
			errs = append(errs, l.active.Sync())
		}
		errs = append(errs, l.active.Close())
	}
	errs = append(errs, l.man.Commit(), l.man.Close())
	l.cond.Broadcast()
	return errors.Join(errs...)
}
