package tiers

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/segment"
	"github.com/bop-aof/aof/tiers/tier1"
)

// Recovery of one stream when it opens, in three steps:
//
//   - inventory (Log.takeInventory): what the restart finds. The manifest
//     index's segments, the Tier 0 files with the scans that decide their
//     state, current.sealed and the Tier 1 artifacts the cache holds.
//   - plan (planRecovery): a pure function of the inventory, the list of
//     actions that makes memory, manifest, files and caches agree again.
//     It touches no file, lock or manifest, so every crash situation is a
//     table case (TestRecoveryPlan).
//   - apply (Log.applyRecovery): one loop that performs the actions in order.
//
// The order of the plan is the order the manifest must see: per segment,
// ascending, SegmentOpened before SealSegment; then the next segment, one
// commit, and only then the state fixes and the jobs the committed manifest
// implies.

// recoveryInventory is what a restart of one stream finds.
type recoveryInventory struct {
	// manifest is the folded manifest index, by segment.
	manifest map[uint64]manifest.SegmentState
	// files are the Tier 0 segment files, by segment.
	files map[uint64]*tier0File
	// tail is the highest Tier 0 file (0: none), the only one that may be
	// unsealed.
	tail uint64
	// mark is current.sealed, valid when markOK.
	mark   segment.SealedMark
	markOK bool
	// tier1 holds the segments whose artifact the Tier 1 cache holds.
	tier1 map[uint64]bool
}

// tier0File is one Tier 0 file and what reading it found. A file is read
// only when its content decides something (see Log.scanTier0).
type tier0File struct {
	// scan is the result of segment.Recover on the tail, nil when it was
	// not scanned.
	scan *tailScan
	// read is set when header and footer were read (hasFooter: it has one).
	read      bool
	header    segment.Header
	footer    segment.Footer
	hasFooter bool
}

// tailScan is what segment.Recover made of the tail file: sealed when it
// carries a footer (segment.ErrSealed), else the writer that appends after
// its longest valid record prefix.
type tailScan struct {
	sealed  bool
	w       *segment.Writer
	rep     segment.RecoveryReport
	lastExt uint64 // ext_id of the last durable record (w.DurableExtID)
}

func (s *tailScan) adopted() bool { return s != nil && !s.sealed }

// ids lists every segment the manifest or Tier 0 knows, ascending.
func (inv *recoveryInventory) ids() []uint64 {
	ids := make([]uint64, 0, len(inv.manifest)+len(inv.files))
	for id := range inv.manifest {
		ids = append(ids, id)
	}
	for id := range inv.files {
		if _, ok := inv.manifest[id]; !ok {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// markNames tells that current.sealed names segment id sealed.
func (inv *recoveryInventory) markNames(id uint64) bool {
	return inv.markOK && id <= inv.mark.SegmentID
}

// tier0Gone tells that the manifest has taken segment id out of Tier 0
// (retired, or evicted once another tier held it): a file of it is left
// over and is removed, never read.
func (inv *recoveryInventory) tier0Gone(id uint64) bool {
	st, ok := inv.manifest[id]
	return ok && (st.Deleted || evictedFromTier0(st))
}

func evictedFromTier0(st manifest.SegmentState) bool {
	return st.Sealed && !st.InTier0 && (st.InTier1 || st.InTier2)
}

// sealRecorded tells that the manifest holds the seal of segment id with
// its size, so its footer need not be read.
func (inv *recoveryInventory) sealRecorded(id uint64) bool {
	st, ok := inv.manifest[id]
	return ok && st.Sealed && st.DurableBytes != 0
}

// scansTail tells whether segment.Recover must scan segment id: the tail,
// unless current.sealed names it or it is left over.
func (inv *recoveryInventory) scansTail(id uint64) bool {
	return id == inv.tail && inv.files[id] != nil && !inv.markNames(id) && !inv.tier0Gone(id)
}

// readsSeal tells whether the header and footer of segment id must be
// read: a file sealed on disk whose seal the manifest does not hold.
func (inv *recoveryInventory) readsSeal(id uint64) bool {
	f := inv.files[id]
	return f != nil && !f.scan.adopted() && !inv.tier0Gone(id) && !inv.sealRecorded(id)
}

// closeTail closes the writer of an adopted tail that was not put to use
// (recovery failed).
func (inv *recoveryInventory) closeTail() {
	if f := inv.files[inv.tail]; f != nil && f.scan.adopted() && f.scan.w != nil {
		f.scan.w.Close()
	}
}

// takeInventory reads what the restart of the log finds. Its only writes
// are segment.Recover's on the tail (a torn tail cut, current.sealed
// brought up to date, temp files of an interrupted create removed).
func (l *Log) takeInventory() (*recoveryInventory, error) {
	inv := &recoveryInventory{
		manifest: map[uint64]manifest.SegmentState{},
		files:    map[uint64]*tier0File{},
		tier1:    map[uint64]bool{},
	}
	for _, st := range l.man.Index().Segments() {
		inv.manifest[st.Segment] = st
	}
	files, err := segment.ListSegments(l.s.fs, l.dir0)
	if err != nil {
		return nil, fmt.Errorf("list tier0: %w", err)
	}
	for _, id := range files {
		inv.files[id] = &tier0File{}
		inv.tail = id
	}
	inv.mark, inv.markOK, err = segment.ReadSealedMark(l.s.fs, l.dir0)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", segment.CurrentSealedName, err)
	}
	for _, id := range inv.ids() {
		if l.s.bg.tier1Has(l.name, id) {
			inv.tier1[id] = true
		}
	}
	if err := l.scanTier0(inv); err != nil {
		inv.closeTail()
		return nil, err
	}
	return inv, nil
}

// scanTier0 scans the tail with segment.Recover and reads the footer of
// each file whose seal the manifest lacks; other files are not opened.
func (l *Log) scanTier0(inv *recoveryInventory) error {
	if id := inv.tail; inv.scansTail(id) {
		w, rep, err := segment.Recover(l.s.fs, l.dir0, id, l.name, segment.WithLogger(l.s.log))
		switch {
		case err == nil:
			inv.files[id].scan = &tailScan{w: w, rep: rep, lastExt: w.DurableExtID()}
		case errors.Is(err, segment.ErrSealed):
			inv.files[id].scan = &tailScan{sealed: true, rep: rep}
		default:
			return fmt.Errorf("recover segment %d: %w", id, err)
		}
	}
	for _, id := range inv.ids() {
		f := inv.files[id]
		if !inv.readsSeal(id) {
			continue
		}
		rd, err := segment.Open(l.s.fs, filepath.Join(l.dir0, segment.FileName(id)))
		if err != nil {
			return fmt.Errorf("segment %d: %w", id, err)
		}
		f.read, f.header = true, rd.Header()
		f.footer, f.hasFooter = rd.Footer()
		rd.Close()
	}
	return nil
}

// planRecovery turns an inventory into the actions that recover the log.
// It is pure: no file system, lock or manifest.
func planRecovery(inv *recoveryInventory) ([]recoveryAction, error) {
	p := &recoveryPlanner{inv: inv}
	var kept []*segInfo
	for _, id := range inv.ids() {
		if st, ok := inv.manifest[id]; ok && st.Deleted {
			p.planRetired(id)
			continue
		}
		si, err := p.planSegment(id)
		if err != nil {
			return nil, err
		}
		kept = append(kept, si)
	}
	if f := inv.files[inv.tail]; f == nil || !f.scan.adopted() {
		p.add(openNextSegment{})
	}
	p.add(commitManifest{})
	p.planPendingDeletes(kept)
	p.planJobs(kept)
	return p.acts, nil
}

// recoveryPlanner accumulates the plan.
type recoveryPlanner struct {
	inv  *recoveryInventory
	acts []recoveryAction
}

func (p *recoveryPlanner) add(a ...recoveryAction) { p.acts = append(p.acts, a...) }

// planRetired removes what a crash left of a retired segment.
func (p *recoveryPlanner) planRetired(id uint64) {
	if p.inv.files[id] != nil {
		p.add(dropRetiredFile{id})
	}
	if p.inv.tier1[id] {
		p.add(dropStaleArtifact{id})
	}
}

// planSegment plans one segment that is not retired and returns the plan's
// view of it once the actions ran (the state the jobs are chosen from).
func (p *recoveryPlanner) planSegment(id uint64) (*segInfo, error) {
	st, known := p.inv.manifest[id]
	if known && !st.InTier1 && p.inv.tier1[id] {
		// An artifact the manifest does not count (evicted or retired
		// before the file went, or written by a compression whose
		// CompressionDone was never committed); compression is redone if
		// the segment still needs it.
		p.add(dropStaleArtifact{id})
	}
	f := p.inv.files[id]
	if f != nil && known && evictedFromTier0(st) {
		p.add(finishEviction{id})
		f = nil
	}
	si := infoFromManifest(id, st, known)
	var fileActs []recoveryAction
	if f != nil {
		si.st.InTier0 = true
		var err error
		if fileActs, err = p.planTier0File(&si, known, f); err != nil {
			return nil, err
		}
	}
	p.add(loadSegment{si})
	p.add(fileActs...)
	p.planCopies(&si, st, known, f != nil)
	return &si, nil
}

// infoFromManifest is segment id as the manifest describes it: its folded
// state, except the Tier 0 copy, which the file found decides.
func infoFromManifest(id uint64, st manifest.SegmentState, known bool) segInfo {
	if !known {
		return segInfo{id: id, st: manifest.SegmentState{Segment: id}}
	}
	st.InTier0 = false
	return segInfo{
		id: id, st: st, base: st.BaseOffset, next: st.LastLogicalOffset,
		bytes: int64(st.DurableBytes), crc64: st.CRC64, lastExt: st.LastExtID, createdMS: st.OpenedMS,
		boundsKnown: st.BoundsKnown, firstExt: st.FirstExtID, firstMS: st.FirstAppendMS, lastMS: st.LastAppendMS,
	}
}

// planTier0File updates si with what the Tier 0 file says and returns the
// actions that bring the manifest up to it.
func (p *recoveryPlanner) planTier0File(si *segInfo, known bool, f *tier0File) ([]recoveryAction, error) {
	id := si.id
	var acts []recoveryAction
	if f.scan.adopted() {
		rep := f.scan.rep
		if !known {
			// Created by a rollover whose SegmentOpened never reached the
			// manifest.
			acts = append(acts, recordOpened{id, rep.Header.BaseOffset, rep.Header.CreatedMS})
			si.createdMS = rep.Header.CreatedMS
		}
		si.base, si.next, si.bytes, si.lastExt, si.st.Sealed = rep.Header.BaseOffset, rep.NextOffset, rep.DurableBytes, f.scan.lastExt, false
		return append(acts, adoptTail{id, f.scan.w, rep}), nil
	}
	// Any file but an adopted tail is sealed on disk, or must be.
	if p.inv.sealRecorded(id) {
		return nil, nil
	}
	if !f.read {
		return nil, fmt.Errorf("segment %d: recovery plan: footer not read", id)
	}
	if !f.hasFooter {
		if !p.inv.markNames(id) {
			return nil, fmt.Errorf("segment %d: %w: no footer, not the tail, and %s does not name it", id, segment.ErrNotSealed, segment.CurrentSealedName)
		}
		// current.sealed names it but the footer is gone: an older
		// version cut it after a failed SealSegment commit.
		acts = append(acts, resealCutFooter{id})
	}
	if !known {
		// Restored from Tier 2, or sealed by a crash before its
		// SegmentOpened was committed.
		si.base, si.createdMS = f.header.BaseOffset, f.header.CreatedMS
		acts = append(acts, recordOpened{id, si.base, si.createdMS})
	}
	if f.hasFooter {
		fillFromFooter(si, f.footer)
	}
	if !si.st.Sealed {
		// Sealed on disk but the manifest missed it (crash between the
		// footer and the record).
		si.st.Sealed = true
		acts = append(acts, redoSeal{id})
	}
	return acts, nil
}

// planCopies charges the Tier 0 budget and reconciles the copies the
// manifest counts with those found.
func (p *recoveryPlanner) planCopies(si *segInfo, st manifest.SegmentState, known, inTier0 bool) {
	id := si.id
	if inTier0 {
		p.add(chargeTier0Budget{id, si.st.Sealed, si.st.InTier1 && p.inv.tier1[id]})
	} else if known && st.InTier0 && !st.InTier1 && !st.InTier2 {
		p.fix(si, markMissing{id, "tier0 file missing and no other copy"})
	}
	if si.st.InTier1 && si.st.InTier2 {
		// The cache does not persist its uploaded mark; the manifest does.
		p.add(markArtifactUploaded{id})
	}
	if si.st.InTier1 && !p.inv.tier1[id] {
		p.fix(si, forgetTier1Copy{id})
		if !si.st.InTier0 && !si.st.InTier2 {
			p.fix(si, markMissing{id, "tier1 artifact missing and no other copy"})
		}
	}
}

// fix adds an action that corrects the in-memory state and applies it to
// the plan's own view of the segment.
func (p *recoveryPlanner) fix(si *segInfo, a segmentFix) {
	a.fix(si)
	p.add(a)
}

// planPendingDeletes resumes the Tier 2 deletes the manifest shows
// pending: finished by the next retention pass when the segment has no
// local copy (a retirement), undone by uploading again when it has one.
func (p *recoveryPlanner) planPendingDeletes(segs []*segInfo) {
	for _, si := range segs {
		if p.inv.manifest[si.id].PendingJobs&manifest.PendingDelete == 0 {
			continue
		}
		if si.st.InTier0 || si.st.InTier1 {
			p.fix(si, undoTier2Delete{si.id})
		} else {
			p.add(resumeRetirement{si.id})
		}
	}
}

// planJobs queues the compressions and uploads the state calls for.
func (p *recoveryPlanner) planJobs(segs []*segInfo) {
	for _, si := range segs {
		switch {
		case si.st.NeedsRecovery:
		case si.st.Sealed && si.st.InTier0 && !si.st.InTier1:
			p.add(queueCompression{si.id})
		case si.st.Sealed && si.st.InTier1 && !si.st.InTier2:
			p.add(queueUpload{si.id})
		}
	}
}

// recoveryAction is one step of a recovery plan.
type recoveryAction interface {
	apply(l *Log) error
}

// segmentFix is an action that only corrects what the log keeps in memory
// about a segment.
type segmentFix interface {
	recoveryAction
	fix(si *segInfo)
}

// applyRecovery performs the actions in order; the first failure stops it.
func (l *Log) applyRecovery(acts []recoveryAction) error {
	for _, a := range acts {
		if err := a.apply(l); err != nil {
			return err
		}
	}
	return nil
}

// applyFix applies a segmentFix to the log's segment.
func applyFix(l *Log, id uint64, a segmentFix) error {
	if si := l.segmentLocked(id); si != nil {
		a.fix(si)
	}
	return nil
}

func (l *Log) segmentPath(id uint64) string { return filepath.Join(l.dir0, segment.FileName(id)) }

// dropRetiredFile removes the Tier 0 file a crash left of a retired segment.
type dropRetiredFile struct{ seg uint64 }

func (a dropRetiredFile) apply(l *Log) error {
	l.s.fs.Remove(l.segmentPath(a.seg))
	return nil
}

// dropStaleArtifact removes a Tier 1 artifact the manifest does not count.
type dropStaleArtifact struct{ seg uint64 }

func (a dropStaleArtifact) apply(l *Log) error {
	l.s.bg.cache.Remove(tier1.Key{Stream: l.name, Segment: a.seg})
	return nil
}

// finishEviction removes the Tier 0 file of a segment whose LocalEvicted
// record was committed (a crash or failed remove left the file).
type finishEviction struct{ seg uint64 }

func (a finishEviction) apply(l *Log) error {
	if err := l.s.fs.Remove(l.segmentPath(a.seg)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("finish eviction of segment %d: %w", a.seg, err)
	}
	l.s.log.Info("tier0_eviction_finished", "stream", l.name, "segment", a.seg)
	return nil
}

// loadSegment adds a segment to the log's memory, as the manifest and
// the files describe it.
type loadSegment struct{ info segInfo }

func (a loadSegment) apply(l *Log) error {
	si := a.info
	l.segs = append(l.segs, &si)
	return nil
}

// recordOpened appends the SegmentOpened record of a segment file the
// manifest never heard of.
type recordOpened struct {
	seg       uint64
	base      uint64
	createdMS int64
}

func (a recordOpened) apply(l *Log) error {
	_, err := l.appendRecordLocked(manifest.Record{Type: manifest.SegmentOpened, Segment: a.seg,
		LogicalOffset: a.base, TimestampMS: a.createdMS,
		Payload: manifest.SegmentOpenedPayload{BaseOffset: a.base}})
	return err
}

// adoptTail makes the unsealed tail, cut back to its longest valid record
// prefix, the active segment.
type adoptTail struct {
	seg uint64
	w   *segment.Writer
	rep segment.RecoveryReport
}

func (a adoptTail) apply(l *Log) error {
	if a.rep.CutBytes > 0 {
		l.s.log.Warn("segment_tail_truncated", "stream", l.name, "segment", a.seg,
			"cut_bytes", a.rep.CutBytes, "cut_records", a.rep.CutRecords, "reason", a.rep.CutReason)
	}
	l.active = a.w
	return nil
}

// resealCutFooter seals again a segment current.sealed names whose footer
// an older version cut after a failed SealSegment commit: its records are
// durable.
type resealCutFooter struct{ seg uint64 }

func (a resealCutFooter) apply(l *Log) error {
	ft, _, err := segment.Reseal(l.s.fs, l.dir0, a.seg, l.name, segment.WithLogger(l.s.log))
	l.s.log.Warn("segment_footer_restored", "stream", l.name, "segment", a.seg, "err", err)
	if err != nil {
		return fmt.Errorf("segment %d: %w", a.seg, err)
	}
	fillFromFooter(l.segmentLocked(a.seg), ft)
	return nil
}

// redoSeal appends the SealSegment record of a segment sealed on disk
// whose record a crash lost, from its footer.
type redoSeal struct{ seg uint64 }

func (a redoSeal) apply(l *Log) error {
	si := l.segmentLocked(a.seg)
	// The footer has no append times; the first and last record do. If
	// they cannot be read the seal is recorded without bounds (a reader
	// seeking by time then scans) rather than not at all.
	if b, err := segment.ReadBounds(l.s.fs, l.segmentPath(a.seg)); err != nil {
		l.s.log.Warn("segment_bounds_unreadable", "stream", l.name, "segment", a.seg, "err", err)
	} else {
		si.setBounds(b)
	}
	rs, err := l.recordSeal(si, segment.Footer{DurableBytes: uint64(si.bytes), CRC64: si.crc64, LastExtID: si.lastExt})
	l.recordedAtBoot = append(l.recordedAtBoot, rs...)
	return err
}

// chargeTier0Budget counts the Tier 0 file against the Tier 0 budget.
type chargeTier0Budget struct {
	seg             uint64
	sealed, inTier1 bool
}

func (a chargeTier0Budget) apply(l *Log) error {
	size := l.segmentLocked(a.seg).bytes
	if st, err := l.s.fs.Stat(l.segmentPath(a.seg)); err == nil {
		size = st.Size()
	}
	l.s.budget.Track(newSegmentKey(l.name, a.seg), size, a.sealed, a.inTier1)
	return nil
}

// markMissing marks a segment whose last copy is gone as needing recovery.
type markMissing struct {
	seg  uint64
	lost string // which copy was the last, for the log
}

func (a markMissing) fix(si *segInfo) {
	si.st.NeedsRecovery, si.st.Reason = true, manifest.ReasonMissing
}

func (a markMissing) apply(l *Log) error {
	l.s.log.Error("segment_missing", "stream", l.name, "segment", a.seg, "reason", a.lost)
	return applyFix(l, a.seg, a)
}

// forgetTier1Copy drops the Tier 1 copy the manifest counts but the cache
// does not hold.
type forgetTier1Copy struct{ seg uint64 }

func (a forgetTier1Copy) fix(si *segInfo)    { si.st.InTier1 = false }
func (a forgetTier1Copy) apply(l *Log) error { return applyFix(l, a.seg, a) }

// markArtifactUploaded has the Tier 1 artifact marked uploaded once the
// log is registered (the cache does not persist that mark).
type markArtifactUploaded struct{ seg uint64 }

func (a markArtifactUploaded) apply(l *Log) error {
	l.uploadedAtBoot = append(l.uploadedAtBoot, a.seg)
	return nil
}

// openNextSegment creates the active segment when no tail was adopted.
type openNextSegment struct{}

func (openNextSegment) apply(l *Log) error { return l.openNextLocked() }

// commitManifest commits every record the plan appended; those that wait
// for their commit (the redone seals) then take effect.
type commitManifest struct{}

func (commitManifest) apply(l *Log) error {
	if err := l.man.Commit(); err != nil {
		return fmt.Errorf("commit manifest: %w", err)
	}
	l.committedLocked(l.recordedAtBoot...)
	l.recordedAtBoot = nil
	l.forgetMaxExt() // whatever was asked while the segments were loading
	return nil
}

// undoTier2Delete forgets the Tier 2 copy of a segment whose Tier 2 delete
// a crash interrupted while it has a local copy: it is uploaded again.
type undoTier2Delete struct{ seg uint64 }

func (a undoTier2Delete) fix(si *segInfo)    { si.st.InTier2 = false }
func (a undoTier2Delete) apply(l *Log) error { return applyFix(l, a.seg, a) }

// resumeRetirement hands a segment whose retirement a crash interrupted
// (no local copy, Tier 2 delete pending) to the next retention pass.
type resumeRetirement struct{ seg uint64 }

func (a resumeRetirement) apply(l *Log) error {
	l.retireAtBoot = append(l.retireAtBoot, a.seg)
	return nil
}

// queueCompression queues a sealed Tier 0 segment for compression.
type queueCompression struct{ seg uint64 }

func (a queueCompression) apply(l *Log) error {
	l.s.bg.enqueueCompress(l, a.seg)
	return nil
}

// queueUpload queues a compressed segment for upload to Tier 2.
type queueUpload struct{ seg uint64 }

func (a queueUpload) apply(l *Log) error {
	l.s.bg.enqueueUpload(l, a.seg)
	return nil
}
