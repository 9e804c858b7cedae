package manifest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/bop-aof/aof/internal/vfs"
)

// Archived is how much of a stream Tier 2 holds for a reader of Tier 2
// alone: the segments with every record through ext_id Through are
// uploaded, and the manifest chunks recording those uploads are confirmed
// in Tier 2 in the chain of Epoch. The owner may purge the ingest stream
// below Through+1.
type Archived struct {
	// Epoch is the epoch whose chain in Tier 2 holds the position.
	Epoch uint64
	// Through is the highest ext_id (ingest sequence) W such that every
	// record with an ext_id up to W is archived; 0 when none is.
	Through uint64
	// NextOffset is the logical offset after the last archived segment.
	NextOffset uint64
	// Position is the end of the manifest prefix that Tier 2 holds: every
	// record before it is in an uploaded chunk or snapshot of the chain.
	Position Position
}

// epochFile holds the epoch the local copy is written under: epoch u64,
// crc64 u64 of those 8 bytes, rewritten atomically. Absent means epoch 0.
const epochFile = "epoch"

// ErrEpochBehind is returned by Open and SetEpoch for an epoch below the
// one the local copy was written under: a writer that old must not add
// to it (it is a zombie, or misconfigured).
var ErrEpochBehind = errors.New("manifest: epoch below the local copy's")

// LocalEpoch returns the epoch the manifest in dir was last written
// under, without opening it; ok is false when no epoch was ever set
// (epoch 0, or no manifest).
func LocalEpoch(fs vfs.FS, dir string) (epoch uint64, ok bool, err error) {
	data, err := vfs.ReadFile(fs, filepath.Join(dir, epochFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read epoch: %w", err)
	}
	if len(data) != 16 || CRC64(data[:8]) != le.Uint64(data[8:]) {
		return 0, false, fmt.Errorf("manifest: epoch file of %d bytes fails its checksum", len(data))
	}
	return le.Uint64(data), true, nil
}

// WriteLocalEpoch records that the manifest in dir continues the chain of
// epoch e: a data root rebuilt from Tier 2 is that chain's copy, so an
// owner can tell it is not stale (see LocalEpoch).
func WriteLocalEpoch(fs vfs.FS, dir string, e uint64) error {
	if e == 0 {
		return nil
	}
	return saveEpoch(fs, dir, e)
}

func saveEpoch(fs vfs.FS, dir string, e uint64) error {
	b := le.AppendUint64(nil, e)
	b = le.AppendUint64(b, CRC64(b))
	return vfs.WriteFileAtomic(fs, filepath.Join(dir, epochFile), b, 0o644)
}

// startEpochLocked makes e the Log's epoch: it records e on disk (if it
// changed) and writes the epoch's anchor. Reopening at the same epoch
// anchors again: whether the last anchor reached Tier 2 is not known.
func (l *Log) startEpochLocked(e uint64) error {
	if e != l.epoch {
		if err := saveEpoch(l.fs, l.dir, e); err != nil {
			return fmt.Errorf("record epoch %d: %w", e, err)
		}
	}
	l.epoch = e
	// Until the new anchor is written no anchor counts: a failed write
	// leaves none, and the uploader writes one again (reanchor).
	l.anchor, l.anchorUp = Snapshot{}, false
	return l.anchorLocked()
}

// Epoch returns the epoch the Log writes its Tier 2 objects under.
func (l *Log) Epoch() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.epoch
}

// SetEpoch switches an open Log to epoch e, which must be above the
// current one (a takeover of a stream this node already has open). It
// seals the active chunk and writes the snapshot that starts the epoch's
// chain (its anchor); every later chunk and snapshot is uploaded under e.
// Until the anchor is confirmed in Tier 2, Archived keeps reporting the
// state at the switch: a reader of Tier 2 still follows the older chain.
func (l *Log) SetEpoch(e uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	if e <= l.epoch {
		return fmt.Errorf("%w: set epoch %d, the log is at epoch %d", ErrEpochBehind, e, l.epoch)
	}
	l.frozen = l.archivedLocked()
	if err := l.startEpochLocked(e); err != nil {
		return fmt.Errorf("start epoch %d: %w", e, err)
	}
	l.log.Info("manifest_epoch_started", "epoch", e, "anchor_snapshot", l.anchor.ID, "position", l.anchor.Position.String())
	return nil
}

// anchorLocked starts the current epoch's chain: it seals the active
// chunk, so the anchor snapshot sits at a chunk boundary and needs no
// chunk of an older epoch after it, and writes the snapshot.
func (l *Log) anchorLocked() error {
	l.sealActiveLocked()
	if err := l.commitLocked(); err != nil {
		return err
	}
	if _, err := l.snapshotLocked(); err != nil {
		return err
	}
	l.anchor, l.anchorUp = l.snap, false
	wake(l.wakeUp)
	return nil
}

// sealActiveLocked closes the chunk Append writes into, if it holds a
// record: the next record opens the next chunk.
func (l *Log) sealActiveLocked() {
	if l.cur.count == 0 {
		return
	}
	if n := len(l.pending); n > 0 && l.pending[n-1].index == l.cur.index {
		l.pending[n-1].seal = true
	} else {
		l.pending = append(l.pending, &batch{index: l.cur.index, baseRecord: l.cur.baseRecord, seal: true})
	}
	l.cur = openChunk{index: l.cur.index + 1, baseRecord: l.cur.baseRecord + l.cur.count, size: ChunkHeaderSize}
}

// noteUploadDone remembers where a segment's first UploadDone was
// committed: the segment is archived once that position is.
func (l *Log) noteUploadDone(r Record, at Position) {
	if r.Type != UploadDone {
		return
	}
	if _, ok := l.doneAt[r.Segment]; !ok {
		l.doneAt[r.Segment] = at
	}
}

// noteSnapshotUploads marks the segments a loaded snapshot shows uploaded
// (or gone) as archived with the snapshot: their UploadDone lies before
// its position.
func (l *Log) noteSnapshotUploads(s *Snapshot) {
	before := s.Position
	before.Offset--
	for _, st := range s.Index.Segments() {
		if st.InTier2 || st.Deleted {
			l.doneAt[st.Segment] = before
		}
	}
}

// Archived returns what Tier 2 holds of the stream (see Archived). It
// only grows, except that a reopened Log starts again from what its own
// uploads confirm, and that a sealed segment storing again records a
// disaster recovery found lost holds Through below them until it is
// archived (capStoredAgain).
func (l *Log) Archived() Archived {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.archivedLocked()
}

// ArchivedAdvanced is signalled (capacity one, never blocking the Log)
// each time Archived advances; the receiver then calls Archived. There is
// one channel per Log: give it one reader.
func (l *Log) ArchivedAdvanced() <-chan struct{} { return l.archivedCh }

// signalArchived signals ArchivedAdvanced if Archived moved.
func (l *Log) signalArchived() {
	l.mu.Lock()
	a := l.archivedLocked()
	moved := a != l.archived
	l.archived = a
	l.mu.Unlock()
	if moved {
		wake(l.archivedCh)
	}
}

func (l *Log) archivedLocked() Archived {
	segs := l.idx.Segments()
	if l.epoch > 0 && !l.anchorUp {
		var later []SegmentState
		for _, s := range segs {
			if at, done := l.doneAt[s.Segment]; !s.Deleted && (!done || !at.Less(l.frozen.Position)) {
				later = append(later, s)
			}
		}
		return capStoredAgain(l.frozen, later)
	}
	a := Archived{Epoch: l.epoch, Position: l.uploadedEndLocked()}
	i := 0
	for ; i < len(segs); i++ {
		s := segs[i]
		if !s.Sealed && i < len(segs)-1 {
			// Abandoned: a later segment was opened, which the store does
			// only after sealing the one before. Its records are not in
			// this history (they went with a lost disk or a failed owner,
			// and a takeover reads them again from the archived position).
			continue
		}
		at, done := l.doneAt[s.Segment]
		if !s.Deleted && (!done || !at.Less(a.Position)) {
			break
		}
		a.Through = max(a.Through, s.LastExtID)
		if s.Sealed {
			a.NextOffset = max(a.NextOffset, s.LastLogicalOffset)
		}
	}
	// What was archived before the epoch changed stays archived: the
	// anchor covers it.
	a.Through = max(a.Through, l.frozen.Through)
	a.NextOffset = max(a.NextOffset, l.frozen.NextOffset)
	return capStoredAgain(a, segs[i:])
}

// capStoredAgain caps a.Through below the first ext_id of any segment of
// later (segments not yet archived) that holds ext_ids at or below it.
// Records stored again after a disaster recovery carry ext_ids below
// those of earlier segments: the recovery found the segment that held
// them lost, though the manifest, and so what was archived before an
// epoch change, still counts it. Until the segment storing them again is
// archived, Tier 2 does not hold them.
func capStoredAgain(a Archived, later []SegmentState) Archived {
	for _, s := range later {
		if s.BoundsKnown && s.FirstExtID > 0 && s.FirstExtID <= a.Through {
			a.Through = s.FirstExtID - 1
		}
	}
	return a
}

// uploadedEndLocked returns the end of the manifest prefix Tier 2 holds
// in the current epoch's chain: from the epoch's anchor (epoch 0: the
// first chunk), through every chunk confirmed uploaded without a gap. A
// chunk no longer on disk was uploaded (retention deletes only those).
func (l *Log) uploadedEndLocked() Position {
	end := Position{Offset: ChunkHeaderSize}
	if l.epoch > 0 {
		end = l.anchor.Position
	}
	for _, c := range l.chunks {
		i := c.hdr.Index
		switch {
		case i < end.Chunk:
			continue
		case i > end.Chunk:
			end = Position{Chunk: i, Offset: ChunkHeaderSize}
		}
		if !c.hdr.Sealed() || !c.hdr.Uploaded() {
			return end
		}
		end = Position{Chunk: i + 1, Offset: ChunkHeaderSize}
	}
	if end.Chunk < l.cur.index {
		end = Position{Chunk: l.cur.index, Offset: ChunkHeaderSize}
	}
	return end
}

// archiveLoop seals the active chunk once its first UploadDone is
// ArchiveInterval old, so the upload reaches Tier 2 in bounded time even
// when nothing else fills or rotates the chunk. Under load the chunk
// fills first; at most one chunk per interval is sealed for this.
func (l *Log) archiveLoop(ctx context.Context) {
	defer l.wg.Done()
	timer := time.NewTimer(l.opts.ArchiveInterval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.wakeArchive:
		case <-timer.C:
		}
		if wait := l.sealForArchive(); wait > 0 {
			timer.Reset(wait)
		}
	}
}

// ArchiveNow seals the active chunk at once if it holds an UploadDone,
// instead of when that record is ArchiveInterval old: a handover waits
// for Tier 2 to hold everything, and should not wait for the interval.
func (l *Log) ArchiveNow() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	if l.closed || l.cur.doneAt.IsZero() {
		return nil
	}
	l.sealActiveLocked()
	return l.commitLocked()
}

// sealForArchive seals the active chunk if its first UploadDone is old
// enough, and returns how long to wait before the next look (0: until
// woken).
func (l *Log) sealForArchive() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.cur.doneAt.IsZero() {
		return 0
	}
	if age := l.opts.Clock().Sub(l.cur.doneAt); age < l.opts.ArchiveInterval {
		return l.opts.ArchiveInterval - age
	}
	chunk := l.cur.index
	l.sealActiveLocked()
	if err := l.commitLocked(); err != nil {
		// The seal stays pending and goes with the next commit.
		l.log.Warn("manifest_archive_seal_failed", "chunk", chunk, "err", err)
		return l.opts.ArchiveInterval
	}
	l.log.Debug("manifest_chunk_sealed_for_archive", "chunk", chunk)
	return 0
}
