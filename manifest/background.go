package manifest

import (
	"context"
	"errors"
	"fmt"
	"hash/crc64"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/bop-aof/aof/internal/vfs"
)

func crc64Update(crc uint64, b []byte) uint64 { return crc64.Update(crc, crcTable, b) }

// backoff doubles from min to max.
type backoff struct{ min, max, cur time.Duration }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur
}
func (b *backoff) reset() { b.cur = 0 }

// runLoop calls step until ctx ends: again at once while it makes
// progress, after a growing backoff when it fails, and on wake otherwise.
func runLoop(ctx context.Context, w <-chan struct{}, bo backoff, step func(context.Context) (bool, error), onErr func(error)) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w:
		case <-timer.C:
		}
		for {
			progress, err := step(ctx)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				onErr(err)
				timer.Reset(bo.next())
				break
			}
			bo.reset()
			if !progress {
				break
			}
		}
	}
}

// ---- publication: the local log is the outbox ----

// cursor file: chunk u64, offset u64, crc64 u64 of the first 16 bytes.
func (l *Log) loadCursor() Position {
	first := Position{Chunk: l.cur.index, Offset: ChunkHeaderSize}
	if len(l.chunks) > 0 {
		first.Chunk = l.chunks[0].hdr.Index
	}
	data, err := vfs.ReadFile(l.fs, filepath.Join(l.dir, cursorFile))
	if errors.Is(err, os.ErrNotExist) {
		return first
	}
	if err != nil || len(data) != 24 || CRC64(data[:16]) != le.Uint64(data[16:]) {
		l.log.Warn("manifest_publish_cursor_invalid", "err", err, "restart_at", first.String())
		return first
	}
	p := Position{Chunk: le.Uint64(data), Offset: int64(le.Uint64(data[8:]))}
	if p.Less(first) {
		l.log.Warn("manifest_publish_cursor_behind_retention", "cursor", p.String(), "restart_at", first.String())
		return first
	}
	return p
}

func (l *Log) saveCursor(p Position) error {
	b := le.AppendUint64(nil, p.Chunk)
	b = le.AppendUint64(b, uint64(p.Offset))
	b = le.AppendUint64(b, CRC64(b))
	return vfs.WriteFileAtomic(l.fs, filepath.Join(l.dir, cursorFile), b, 0o644)
}

// PublishedThrough returns the position of the next record to publish.
func (l *Log) PublishedThrough() Position {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cursor
}

func (l *Log) publishLoop(ctx context.Context) {
	defer l.wg.Done()
	bo := backoff{min: l.opts.RetryMin, max: l.opts.RetryMax}
	runLoop(ctx, l.wakePub, bo, l.publishSome, func(err error) {
		l.opts.Instruments.IncManifestPublishRetry(context.Background())
		l.log.Warn("manifest_publish_failed", "err", err)
	})
	// Persist the final cursor so a clean restart publishes nothing twice.
	l.mu.Lock()
	p := l.cursor
	l.mu.Unlock()
	if err := l.saveCursor(p); err != nil {
		l.log.Warn("manifest_publish_cursor_save_failed", "err", err)
	}
}

// publishSome publishes the committed records of the cursor's chunk that
// follow the cursor, advancing the cursor after each success.
func (l *Log) publishSome(ctx context.Context) (bool, error) {
	l.mu.Lock()
	cur := l.cursor
	var m *chunkMeta
	var next bool
	for i, c := range l.chunks {
		if c.hdr.Index == cur.Chunk {
			m = c
			next = i+1 < len(l.chunks)
			break
		}
	}
	var h ChunkHeader
	if m != nil {
		h = m.hdr
	}
	l.mu.Unlock()
	if m == nil {
		return false, nil // the chunk has no committed record yet
	}
	if cur.Offset >= h.End() {
		if h.Sealed() && next {
			l.setCursor(Position{Chunk: cur.Chunk + 1, Offset: ChunkHeaderSize})
			return true, nil
		}
		return false, nil
	}
	f, err := vfs.Open(l.fs, m.path)
	if err != nil {
		return false, fmt.Errorf("open chunk %d: %w", cur.Chunk, err)
	}
	buf := make([]byte, h.End()-cur.Offset)
	_, err = f.ReadAt(buf, cur.Offset)
	f.Close()
	if err != nil {
		return false, fmt.Errorf("read chunk %d: %w", cur.Chunk, err)
	}
	published := 0
	defer func() {
		if published > 0 {
			l.opts.Instruments.AddManifestPublished(context.Background(), int64(published))
			l.mu.Lock()
			p := l.cursor
			l.mu.Unlock()
			if err := l.saveCursor(p); err != nil {
				l.log.Warn("manifest_publish_cursor_save_failed", "err", err)
			}
		}
	}()
	for off := 0; off < len(buf); {
		rec, n, err := DecodeRecord(buf[off:])
		if err != nil {
			ie := l.integrity(cur.Chunk, cur.Offset+int64(off), err)
			l.quarantine(ie)
			return false, ie
		}
		ev := Event{Stream: l.stream, Chunk: cur.Chunk, Offset: cur.Offset + int64(off), Record: rec, Raw: buf[off : off+n]}
		if err := l.opts.Publisher.Publish(ctx, ev); err != nil {
			return published > 0, fmt.Errorf("publish %s at %d/%d: %w", rec.Type, ev.Chunk, ev.Offset, err)
		}
		off += n
		published++
		l.setCursor(Position{Chunk: cur.Chunk, Offset: cur.Offset + int64(off)})
	}
	return true, nil
}

func (l *Log) setCursor(p Position) {
	l.mu.Lock()
	l.cursor = p
	l.mu.Unlock()
	wake(l.wakeUp) // retention may now drop a published chunk
}

// quarantine stops writes after damage was found in committed data.
func (l *Log) quarantine(ie *IntegrityError) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed == nil {
		l.failed = ie
	}
	l.log.Error("manifest_quarantined", "chunk", ie.Chunk, "offset", ie.Offset, "err", ie.Err)
}

// Err returns the error that stopped the Log from accepting writes, if any.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

// ---- Tier 2 uploads and local retention ----

func (l *Log) uploadLoop(ctx context.Context) {
	defer l.wg.Done()
	bo := backoff{min: l.opts.RetryMin, max: l.opts.RetryMax}
	runLoop(ctx, l.wakeUp, bo, l.uploadSome, func(err error) {
		var pe *pruneError
		if errors.As(err, &pe) {
			l.opts.Instruments.IncManifestTier2PruneFailure(context.Background())
			l.log.Warn("manifest_tier2_prune_failed", "snapshot", pe.anchor, "err", pe.err)
			return
		}
		l.opts.Instruments.IncManifestUploadRetry(context.Background())
		l.log.Warn("manifest_upload_failed", "err", err)
	})
}

// uploadSome uploads the oldest sealed chunk not yet confirmed, or the
// newest snapshot, then applies retention, local and in Tier 2. An
// epoch's anchor snapshot goes first: until it is in Tier 2, a reader of
// Tier 2 follows the older epoch's chain, so the epoch's chunks count for
// nothing.
func (l *Log) uploadSome(ctx context.Context) (bool, error) {
	l.mu.Lock()
	var m *chunkMeta
	for _, c := range l.chunks {
		if c.hdr.Sealed() && !c.hdr.Uploaded() {
			m = c
			break
		}
	}
	snap, snapUp, epoch := l.snap, l.snapUp, l.epoch
	anchor, needAnchor := l.anchor, epoch > 0 && !l.anchorUp
	l.mu.Unlock()

	if needAnchor {
		err := l.uploadSnapshot(ctx, anchor, epoch)
		if errors.Is(err, os.ErrNotExist) {
			// Newer snapshots outnumbered it before it was uploaded:
			// start the epoch's chain again from the tail.
			err = l.reanchor(anchor.ID, epoch, err)
		}
		if err != nil {
			return false, err
		}
		l.signalArchived()
		return true, nil
	}
	if m != nil {
		if err := l.uploadChunk(ctx, m); err != nil {
			return false, err
		}
		l.retain()
		l.signalArchived()
		return true, nil
	}
	if snap.ID > 0 && !snapUp {
		if err := l.uploadSnapshot(ctx, snap, epoch); err != nil {
			return false, err
		}
		l.signalArchived()
		return true, nil
	}
	l.retain()
	return false, l.pruneTier2(ctx)
}

// reanchor writes a new anchor for epoch if anchor id is still the one
// missing.
func (l *Log) reanchor(id, epoch uint64, cause error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.anchor.ID != id || l.epoch != epoch {
		return nil
	}
	l.log.Warn("manifest_epoch_anchor_rewritten", "epoch", epoch, "lost_snapshot", id, "err", cause)
	return l.anchorLocked()
}

// uploadSnapshot puts snapshot snap into Tier 2 under epoch and marks it
// confirmed (and the epoch's anchor, if it is that).
func (l *Log) uploadSnapshot(ctx context.Context, snap Snapshot, epoch uint64) error {
	data, err := vfs.ReadFile(l.fs, SnapshotPath(l.dir, snap.ID))
	if err != nil {
		return fmt.Errorf("read snapshot %d: %w", snap.ID, err)
	}
	meta := map[string]string{"crc64": strconv.FormatUint(le.Uint64(data[len(data)-8:]), 10),
		"chunk-index": strconv.FormatUint(snap.Position.Chunk, 10), "chunk-offset": strconv.FormatInt(snap.Position.Offset, 10)}
	etag, err := l.opts.Uploader.PutObject(ctx, SnapshotKeyAt(l.stream, epoch, snap.ID), data, meta)
	if err != nil {
		return fmt.Errorf("upload snapshot %d: %w", snap.ID, err)
	}
	l.log.Info("manifest_snapshot_uploaded", "snapshot", snap.ID, "epoch", epoch, "etag", etag)
	l.mu.Lock()
	if l.snap.ID == snap.ID && l.epoch == epoch {
		l.snapUp = true
	}
	if l.anchor.ID == snap.ID && l.epoch == epoch {
		l.anchorUp = true
	}
	l.mu.Unlock()
	return nil
}

func (l *Log) uploadChunk(ctx context.Context, m *chunkMeta) error {
	l.mu.Lock()
	h, epoch := m.hdr, l.epoch
	l.mu.Unlock()
	data, err := vfs.ReadFile(l.fs, m.path)
	if err != nil {
		return fmt.Errorf("read chunk %d: %w", h.Index, err)
	}
	hdr, recs, err := ReadChunk(data)
	if err != nil {
		ie := l.integrity(h.Index, 0, err)
		l.quarantine(ie)
		return ie
	}
	meta := map[string]string{
		"crc64":        strconv.FormatUint(hdr.CRC64, 10),
		"record-count": strconv.FormatUint(hdr.RecordCount, 10),
		"base-record":  strconv.FormatUint(hdr.BaseRecord, 10),
	}
	if len(recs) > 0 {
		meta["first-logical-offset"] = strconv.FormatUint(recs[0].Record.LogicalOffset, 10)
		meta["last-logical-offset"] = strconv.FormatUint(recs[len(recs)-1].Record.LogicalOffset, 10)
	}
	etag, err := l.opts.Uploader.PutObject(ctx, ChunkKeyAt(l.stream, epoch, h.Index), data, meta)
	if err != nil {
		return fmt.Errorf("upload chunk %d: %w", h.Index, err)
	}
	// Only the uploader writes headers of sealed chunks, so this needs no
	// lock while it does I/O.
	h.Flags |= ChunkUploaded
	h.Generation++
	if err := writeSlot(l.fs, m.path, h); err != nil {
		return fmt.Errorf("mark chunk %d uploaded: %w", h.Index, err)
	}
	l.mu.Lock()
	m.hdr = h
	l.mu.Unlock()
	l.log.Info("manifest_chunk_uploaded", "chunk", h.Index, "epoch", epoch, "etag", etag)
	return nil
}

// retain deletes local chunks that are no longer needed: older than the
// chunk before the active one, wholly covered by the latest snapshot,
// confirmed in Tier 2, and (with a Publisher) published.
func (l *Log) retain() {
	l.mu.Lock()
	defer l.mu.Unlock()
	keep := l.chunks[:0:0]
	removed := 0
	for _, c := range l.chunks {
		i := c.hdr.Index
		drop := i+1 < l.cur.index && l.snap.ID > 0 && i < l.snap.Position.Chunk && c.hdr.Uploaded() &&
			(l.opts.Publisher == nil || i < l.cursor.Chunk)
		if drop {
			if err := l.fs.Remove(c.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				l.log.Warn("manifest_chunk_remove_failed", "chunk", i, "err", err)
				drop = false
			}
		}
		if !drop {
			keep = append(keep, c)
			continue
		}
		removed++
		l.log.Info("manifest_chunk_removed", "chunk", i)
	}
	if removed > 0 {
		l.chunks = keep
		l.opts.Instruments.AddManifestChunksDeleted(context.Background(), int64(removed))
		if err := l.fs.SyncDir(l.dir); err != nil {
			l.log.Warn("manifest_dir_sync_failed", "err", err)
		}
	}
}
