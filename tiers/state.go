package tiers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/segment"
	"github.com/bop-aof/aof/tiers/tier1"
	"github.com/bop-aof/aof/tiers/tier2"
)

// info returns a copy of what the log knows of segment id, or nil.
func (l *Log) info(id uint64) *segInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	si := l.segmentLocked(id)
	if si == nil {
		return nil
	}
	c := *si
	return &c
}

// holds reports whether segment id is still one of the log's segments
// (not retired or dropped).
func (l *Log) holds(id uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.segmentLocked(id) != nil
}

func (l *Log) setHydrating(id uint64, on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if si := l.segmentLocked(id); si != nil {
		si.hydrating, si.hydratedBytes = on, 0
	}
}

// addHydrated counts n more bytes of segment id's hydration download.
func (l *Log) addHydrated(id uint64, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if si := l.segmentLocked(id); si != nil && si.hydrating {
		si.hydratedBytes += int64(n)
	}
}

// retentionVictims returns, oldest first, the segments retention should
// delete from Tier 2.
func (l *Log) retentionVictims(now time.Time, maxAge time.Duration, maxBytes int64) []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Retention takes the oldest segments, contiguously: it stops at the
	// first sealed segment whose upload is unconfirmed rather than delete
	// newer ones around it and leave a hole in the readable log.
	var sealed []*segInfo
	var total int64
	prefix := true
	for _, si := range l.segs {
		if !si.st.Sealed {
			continue
		}
		if si.st.InTier2 {
			total += int64(si.st.CompressedBytes)
		}
		prefix = prefix && si.st.InTier2
		if prefix {
			sealed = append(sealed, si)
		}
	}
	// The newest sealed segment always stays.
	newest := uint64(0)
	for _, si := range l.segs {
		if si.st.Sealed {
			newest = si.id
		}
	}
	var victims []uint64
	for _, si := range sealed {
		if si.id == newest {
			break
		}
		old := maxAge > 0 && si.createdMS > 0 && now.Sub(time.UnixMilli(si.createdMS)) > maxAge
		over := maxBytes > 0 && total > maxBytes
		if !old && !over {
			break
		}
		victims = append(victims, si.id)
		total -= int64(si.st.CompressedBytes)
	}
	return victims
}

// dropSegment forgets a segment deleted by retention, with its local files.
func (l *Log) dropSegment(id uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, si := range l.segs {
		if si.id != id {
			continue
		}
		// Its LocalEvicted is recorded already (it left the view's Tier 0
		// then); the file goes now, if one is left.
		if err := l.s.fs.Remove(filepath.Join(l.dir0, segment.FileName(id))); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.s.log.Warn("retention_remove_failed", "stream", l.name, "segment", id, "err", err)
		}
		l.s.budget.Forget(newSegmentKey(l.name, id))
		l.segs = append(l.segs[:i], l.segs[i+1:]...)
		l.forgetMaxExt()
		return
	}
}

// SegmentPhase is where a segment is in its life: taking appends, sealed,
// or needing an operator because no copy of it can be read. It says
// nothing of where the segment's copies are (SegmentStatus.InTier0,
// InTier1, InTier2). The values are the strings operators see in segment
// listings, JSON and documentation; a wire type that carries a phase
// converts it with string(...).
//
// It is not called SegmentState: manifest.SegmentState is the whole
// folded record of a segment, and a second "state" type would read as a
// copy of it.
type SegmentPhase string

const (
	// PhaseActive: the segment appends go to; unsealed.
	PhaseActive SegmentPhase = "active"
	// PhaseSealed: footer written and SealSegment recorded; immutable.
	PhaseSealed SegmentPhase = "sealed"
	// PhaseNeedsRecovery: no readable copy is left (SegmentStatus.Reason
	// says why); its records wait for a restore or a redelivery.
	PhaseNeedsRecovery SegmentPhase = "needs_recovery"
)

// phase is where si is in its life; active tells that it is the log's
// active segment.
func (si *segInfo) phase(active bool) SegmentPhase {
	switch {
	case si.st.NeedsRecovery:
		return PhaseNeedsRecovery
	case active:
		return PhaseActive
	}
	return PhaseSealed
}

// SegmentStatus is one segment as operators see it.
type SegmentStatus struct {
	Stream           string       `json:"stream"`
	Segment          uint64       `json:"segment"`
	State            SegmentPhase `json:"state"`
	BaseOffset       uint64       `json:"base_offset"`
	NextOffset       uint64       `json:"next_offset"`
	Records          uint64       `json:"records"`
	Bytes            int64        `json:"bytes"`
	CompressedBytes  int64        `json:"compressed_bytes,omitempty"`
	InTier0          bool         `json:"in_tier0"`
	InTier1          bool         `json:"in_tier1"`
	InTier2          bool         `json:"in_tier2"`
	Tier2Key         string       `json:"tier2_key,omitempty"`
	ETag             string       `json:"etag,omitempty"`
	PendingHydration bool         `json:"pending_hydration,omitempty"`
	// HydratedBytes is how much of the Tier 2 object (CompressedBytes in
	// all) a hydration in flight has downloaded.
	HydratedBytes int64  `json:"hydrated_bytes,omitempty"`
	NeedsRecovery bool   `json:"needs_recovery,omitempty"`
	Reason        string `json:"reason,omitempty"`
	// The ext ids (JetStream sequences) and append times (Unix ms) of the
	// segment's first and last durable record. Zero when unknown: no
	// records, or a segment sealed before the manifest kept them
	// (BoundsKnown unset; LastExtID is known for every sealed segment).
	BoundsKnown   bool   `json:"bounds_known,omitempty"`
	FirstExtID    uint64 `json:"first_ext_id,omitempty"`
	LastExtID     uint64 `json:"last_ext_id,omitempty"`
	FirstAppendMS int64  `json:"first_append_ms,omitempty"`
	LastAppendMS  int64  `json:"last_append_ms,omitempty"`
}

// Segments lists the segments of stream ("" for all), oldest first.
func (s *Store) Segments(stream string) []SegmentStatus {
	var out []SegmentStatus
	for _, name := range s.Streams() {
		if stream != "" && name != stream {
			continue
		}
		l, err := s.existing(name)
		if err != nil {
			continue
		}
		out = append(out, l.Segments()...)
	}
	return out
}

// Segments lists this log's segments, oldest first.
func (l *Log) Segments() []SegmentStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]SegmentStatus, 0, len(l.segs))
	activeID := l.active.Header().SegmentID
	for _, si := range l.segs {
		st := SegmentStatus{
			Stream: l.name, Segment: si.id, BaseOffset: si.base, NextOffset: si.next,
			Records: si.next - si.base, Bytes: si.bytes, CompressedBytes: int64(si.st.CompressedBytes),
			InTier0: si.st.InTier0, InTier1: si.st.InTier1, InTier2: si.st.InTier2,
			Tier2Key: si.st.Tier2Key, ETag: si.st.ETag, NeedsRecovery: si.st.NeedsRecovery,
			State: si.phase(si.id == activeID),
		}
		st.setBounds(si)
		if si.id == activeID {
			st.Bytes = l.active.Size()
			st.NextOffset = l.active.DurableOffset()
			st.Records = st.NextOffset - si.base
			st.setWriterBounds(l.active.DurableBounds())
		}
		if si.st.NeedsRecovery {
			st.Reason = si.st.Reason.String()
		}
		st.PendingHydration = si.hydrating
		if si.hydrating {
			st.HydratedBytes = si.hydratedBytes
		}
		out = append(out, st)
	}
	return out
}

func (st *SegmentStatus) setBounds(si *segInfo) {
	st.LastExtID = si.lastExt
	if si.boundsKnown {
		st.BoundsKnown = true
		st.FirstExtID, st.FirstAppendMS, st.LastAppendMS = si.firstExt, si.firstMS, si.lastMS
	}
}

// setWriterBounds: the active segment's bounds are the writer's, durable
// records only, as NextOffset is.
func (st *SegmentStatus) setWriterBounds(b segment.Bounds) {
	st.BoundsKnown = true
	st.FirstExtID, st.LastExtID = b.FirstExtID, b.LastExtID
	st.FirstAppendMS, st.LastAppendMS = b.FirstAppendMS, b.LastAppendMS
}

// Hydrate brings segment id of stream back into Tier 1 from Tier 2 and
// waits for it. It is a no-op for a segment already local.
func (s *Store) Hydrate(ctx context.Context, stream string, id uint64) error {
	_, si, err := s.lookup(stream, id)
	if err != nil {
		return err
	}
	if si.st.InTier0 || si.st.InTier1 {
		return nil
	}
	return s.bg.hydrator.Get(ctx, tier1.Key{Stream: stream, Segment: id})
}

// EvictLocal drops the local copies of a sealed segment that Tier 2 holds,
// so that the next read hydrates it: Tier 0 first, then Tier 1. It is
// refused for a segment without a confirmed Tier 2 copy.
func (s *Store) EvictLocal(ctx context.Context, stream string, id uint64) error {
	l, _, err := s.lookup(stream, id)
	if err != nil {
		return err
	}
	// No upload may start (and stop counting the Tier 2 copy) while the
	// local copies go; the Tier 2 mark is read once that holds.
	key := tier1.Key{Stream: stream, Segment: id}
	if err := s.bg.marks.beginDrop(key, false); err != nil {
		return fmt.Errorf("evict local copies: %w", err)
	}
	defer s.bg.marks.endDrop(key)
	si := l.info(id)
	if si == nil {
		return fmt.Errorf("%w: segment %d of %s", ErrSegmentNotFound, id, stream)
	}
	if !si.st.Sealed || !si.st.InTier2 {
		return fmt.Errorf("segment %d of %s is not confirmed in tier 2; refusing to evict its local copies", id, stream)
	}
	if si.st.InTier0 {
		if err := l.evictTier0(ctx, id); err != nil {
			return err
		}
	}
	// The cache checks the pins and marks the artifact as evicting in one
	// step, so a Reupload that pinned it keeps it, and one that comes
	// while the LocalEvicted is recorded is refused its pin.
	err = s.bg.evictTier1(key)
	if errors.Is(err, tier1.ErrNotCached) {
		return nil
	}
	return err
}

// RestoreTier1 makes segment id's Tier 1 artifact good again and leaves
// its other copies alone: the artifact is read back in full, and a
// missing or damaged one is compressed again from the Tier 0 file or,
// without one, dropped and hydrated from the confirmed Tier 2 copy.
func (s *Store) RestoreTier1(ctx context.Context, stream string, id uint64) error {
	l, si, err := s.lookup(stream, id)
	if err != nil {
		return err
	}
	if !si.st.Sealed {
		return fmt.Errorf("segment %d of %s is not sealed: it has no Tier 1 copy to restore", id, stream)
	}
	ck := tier1.Key{Stream: stream, Segment: id}
	if si.st.InTier0 {
		if err := s.bg.pinVerifiedArtifact(l, id); err != nil {
			return err
		}
		s.bg.cache.Unpin(ck)
		return nil
	}
	if !si.st.InTier2 {
		return fmt.Errorf("segment %d of %s has neither a Tier 0 nor a confirmed Tier 2 copy to restore its Tier 1 copy from", id, stream)
	}
	if err := s.bg.evictTier1(ck); err != nil && !errors.Is(err, tier1.ErrNotCached) {
		return fmt.Errorf("drop damaged tier 1 copy: %w", err)
	}
	return s.Hydrate(ctx, stream, id)
}

// ErrSegmentNotFound is returned for a segment a stream does not hold.
var ErrSegmentNotFound = errors.New("tiers: segment not found")

// Root is the data root of the store.
func (s *Store) Root() string { return s.opts.Root }

// Tier2 is the store's Tier 2 bucket; nil when it has none.
func (s *Store) Tier2() tier2.Bucket { return s.opts.Tier2 }

// ManifestIndex returns a copy of stream's folded manifest index.
func (s *Store) ManifestIndex(stream string) (*manifest.Index, error) {
	l, err := s.existing(stream)
	if err != nil {
		return nil, err
	}
	return l.man.Index(), nil
}

// ManifestChunks lists stream's local manifest chunks.
func (s *Store) ManifestChunks(stream string) ([]manifest.ChunkInfo, error) {
	l, err := s.existing(stream)
	if err != nil {
		return nil, err
	}
	return l.man.Chunks(), nil
}

// Snapshot writes a manifest snapshot of stream and returns its id.
func (s *Store) Snapshot(stream string) (uint64, error) {
	l, err := s.existing(stream)
	if err != nil {
		return 0, err
	}
	return l.man.Snapshot()
}

// QueueDepths reports the background queues, for status output.
type QueueDepths struct {
	Activation  int   `json:"activation_queue_depth"`
	Compression int   `json:"compression_queue_depth"`
	Upload      int   `json:"upload_queue_depth"`
	Hydration   int64 `json:"hydration_queue_depth"`
}

// Queues reports the current queue depths.
func (s *Store) Queues() QueueDepths {
	return QueueDepths{
		Activation:  s.budget.Stats().QueueDepth,
		Compression: s.bg.compress.len(),
		Upload:      s.bg.upload.len(),
		Hydration:   s.bg.hydrator.QueueDepth(),
	}
}

// Tier1Stats reports the Tier 1 cache.
func (s *Store) Tier1Stats() tier1.CacheStats { return s.bg.cache.Stats() }

// SetCompressionWorkers changes how many segments are compressed into
// Tier 1 at once (tier1.compression_workers); surplus workers leave after
// their current segment.
func (s *Store) SetCompressionWorkers(n int) {
	s.bg.setWorkers(s.bg.compress, max(n, 1))
}

// SetJobRetry changes the first retry delay of failed compressions and
// uploads (tier1.retry_backoff) and the attempt from which each failure is
// logged as an error (tier1.max_retries); zero keeps the current value.
func (s *Store) SetJobRetry(backoff time.Duration, maxRetries int) {
	s.bg.setJobRetry(backoff, maxRetries)
}

// SetActivationQueueWarnThreshold changes the admission queue depth that
// logs a warning (tier0.activation_queue_warn_threshold).
func (s *Store) SetActivationQueueWarnThreshold(n int) { s.budget.SetQueueWarnThreshold(n) }

// SetUploadWorkers changes how many segments are uploaded to Tier 2 at
// once (tier2.concurrency); surplus workers leave after their upload.
func (s *Store) SetUploadWorkers(n int) {
	s.bg.setWorkers(s.bg.upload, max(n, 1))
}

// SetHydrationWorkers changes how many hydrations from Tier 2 run at once
// (tier1.hydration_workers); running ones finish either way.
func (s *Store) SetHydrationWorkers(n int) { s.bg.hydrator.SetWorkers(n) }

// Workers reports the running pool sizes: compression, upload and
// hydration.
func (s *Store) Workers() (compression, upload, hydration int) {
	return s.bg.compress.size(), s.bg.upload.size(), s.bg.hydrator.Workers()
}

// SetTier1MaxBytes changes the Tier 1 budget at runtime.
func (s *Store) SetTier1MaxBytes(n int64) { s.bg.cache.SetMaxBytes(n) }

// maybeSnapshot writes a manifest snapshot when manifest.snapshot_interval
// has passed since the last one and records were added meanwhile, so a
// restart replays only the tail and old chunks can be pruned.
func (l *Log) maybeSnapshot() {
	every := l.s.opts.SnapshotInterval
	if every <= 0 {
		return
	}
	now := l.s.opts.Now()
	l.mu.Lock()
	due := now.Sub(l.lastSnapshot) >= every
	l.mu.Unlock()
	if !due {
		return
	}
	tail := l.man.Tail()
	if tail == l.snapshotAt {
		return
	}
	id, err := l.man.Snapshot()
	if err != nil {
		l.s.log.Warn("snapshot_failed", "stream", l.name, "err", err)
		return
	}
	l.mu.Lock()
	l.lastSnapshot, l.snapshotAt = now, l.man.Tail()
	l.mu.Unlock()
	l.s.log.Info("snapshot_created", "stream", l.name, "snapshot", id)
}

// olderAwaitingUpload returns a sealed segment older than id that still
// has to reach Tier 2 (and can: it has a local copy), or 0.
func (l *Log) olderAwaitingUpload(id uint64) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, si := range l.segs {
		if si.id >= id {
			break
		}
		if si.st.Sealed && !si.st.InTier2 && !si.st.NeedsRecovery && (si.st.InTier0 || si.st.InTier1) {
			return si.id
		}
	}
	return 0
}

// isActive reports whether id is the segment being written.
func (l *Log) isActive(id uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.active != nil && l.active.Header().SegmentID == id
}
