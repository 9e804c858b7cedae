package tiers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/segment"
	"github.com/bop-aof/aof/tiers/tier1"
	"github.com/bop-aof/aof/tiers/tier2"
)

// lookup returns stream's log and a copy of what it knows of segment id.
func (s *Store) lookup(stream string, id uint64) (*Log, *segInfo, error) {
	l, err := s.existing(stream)
	if err != nil {
		return nil, nil, err
	}
	si := l.info(id)
	if si == nil {
		return nil, nil, fmt.Errorf("%w: segment %d of %s", ErrSegmentNotFound, id, stream)
	}
	return l, si, nil
}

// EvictTier0 removes only the Tier 0 file of a sealed segment whose Tier 1
// copy exists; reads are then served from Tier 1.
func (s *Store) EvictTier0(ctx context.Context, stream string, id uint64) error {
	l, si, err := s.lookup(stream, id)
	if err != nil {
		return err
	}
	if !si.st.InTier0 {
		return nil
	}
	if !si.st.Sealed || !si.st.InTier1 {
		return fmt.Errorf("segment %d of %s has no Tier 1 copy yet; refusing to remove its Tier 0 file", id, stream)
	}
	return l.evictTier0(ctx, id)
}

// Retire deletes a sealed segment from every tier: its Tier 2 object
// (Tier2DeleteQueued, Tier2Deleted) and its local copies. Its records are
// gone afterwards; readers get ErrOffsetNotFound for them. The active
// segment cannot be retired.
func (s *Store) Retire(ctx context.Context, stream string, id uint64) error {
	l, si, err := s.lookup(stream, id)
	if err != nil {
		return err
	}
	if !si.st.Sealed {
		return fmt.Errorf("segment %d of %s is the active segment: seal it before retiring it", id, stream)
	}
	// An upload of the segment in flight finishes first (its object is
	// then deleted with the rest): retire waits for it, as long as ctx.
	for {
		err := s.bg.retire(ctx, l, id)
		if !errors.Is(err, errRetireLater) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("retire segment %d of %s: %w (%w)", id, stream, err, ctx.Err())
		case <-time.After(turnWait):
		}
	}
}

// errRetireLater says a segment's copies cannot be dropped yet: an upload
// of it is in flight, another drop runs, or its Tier 1 artifact is in use.
var errRetireLater = errors.New("segment busy, retire it later")

// errSegmentDropping refuses an upload of a segment whose copies are
// being dropped (Retire, EvictLocal).
var errSegmentDropping = errors.New("segment's copies are being dropped")

// uploadMarks makes uploads of a segment and the dropping of its copies
// exclude each other. An upload (a Reupload from its start, a background
// upload while it runs) that overlapped a retirement would write the
// deleted object back and record UploadDone after Tier2Deleted: the
// retired segment would be loaded again at the next boot. One that
// started during EvictLocal would stop counting the Tier 2 copy that
// EvictLocal relies on.
type uploadMarks struct {
	mu      sync.Mutex
	uploads map[tier1.Key]int
	// dropping holds the segments whose copies are being dropped: true
	// for a retirement (every copy goes), false for EvictLocal.
	dropping map[tier1.Key]bool
	// repairs holds the segments a Reupload is repairing, from its start
	// until a repair upload is confirmed: their Tier 2 object is damaged,
	// so no local copy may be evicted on the strength of it. The
	// UploadStarted record says so too once the manifest takes it; the
	// mark also covers a manifest that refused it.
	repairs map[tier1.Key]bool
}

func newUploadMarks() *uploadMarks {
	return &uploadMarks{uploads: map[tier1.Key]int{}, dropping: map[tier1.Key]bool{}, repairs: map[tier1.Key]bool{}}
}

// beginUpload marks an upload of k in flight; refused while k's copies
// are being dropped.
func (m *uploadMarks) beginUpload(k tier1.Key) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.dropping[k]; ok {
		return fmt.Errorf("upload segment %d of %s: %w", k.Segment, k.Stream, errSegmentDropping)
	}
	m.uploads[k]++
	return nil
}

func (m *uploadMarks) endUpload(k tier1.Key) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.uploads[k]--; m.uploads[k] <= 0 {
		delete(m.uploads, k)
	}
}

// beginDrop marks k's copies as being dropped (retire: all of them);
// refused while an upload of k is in flight or another drop runs.
func (m *uploadMarks) beginDrop(k tier1.Key, retire bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.uploads[k] > 0 {
		return fmt.Errorf("segment %d of %s has an upload in flight: %w", k.Segment, k.Stream, errRetireLater)
	}
	if _, ok := m.dropping[k]; ok {
		return fmt.Errorf("segment %d of %s has its copies dropped already: %w", k.Segment, k.Stream, errRetireLater)
	}
	if !retire && m.repairs[k] {
		return fmt.Errorf("segment %d of %s: its Tier 2 object is being repaired: %w", k.Segment, k.Stream, errRetireLater)
	}
	m.dropping[k] = retire
	return nil
}

func (m *uploadMarks) endDrop(k tier1.Key) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.dropping, k)
}

func (m *uploadMarks) isRetiring(k tier1.Key) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dropping[k]
}

func (m *uploadMarks) beginRepair(k tier1.Key) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.repairs[k] = true
}

// endRepair is called once a repair upload of k is confirmed, or k is
// retired.
func (m *uploadMarks) endRepair(k tier1.Key) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.repairs, k)
}

func (m *uploadMarks) isRepairing(k tier1.Key) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.repairs[k]
}

// Reupload writes segment id's Tier 2 object again from its local copy
// (compressing the Tier 0 file first when there is no Tier 1 copy). It is
// the repair for a Tier 2 object that is missing or fails its checksum.
//
// The object is replaced, not deleted and written again: an S3 PUT swaps
// the key's content atomically, so the key holds the old object until the
// new one is confirmed, and a refused upload removes nothing (the old
// object may even be good: a checksum failure can be a damaged download).
// Before the upload, an UploadStarted record makes the manifest stop
// vouching for the object, so from then until UploadDone the segment counts
// as not in Tier 2: its local copy cannot be evicted (EvictLocal and Tier 1
// eviction refuse), and a crash leaves the upload pending for the next
// Open. The upload is a full write (Client.Replace), never skipped because
// the damaged object's metadata claims the right checksum.
//
// If the record or the upload fails, Reupload returns the error and the
// upload stays queued: it is retried in the background, like any upload,
// until Tier 2 accepts it, and the newer segments of the stream (whose
// uploads wait for it) follow without a restart.
func (s *Store) Reupload(ctx context.Context, stream string, id uint64) error {
	if s.opts.Tier2 == nil {
		return errors.New("tiers: no Tier 2 configured")
	}
	l, si, err := s.lookup(stream, id)
	if err != nil {
		return err
	}
	if !si.st.Sealed || (!si.st.InTier0 && !si.st.InTier1) {
		return fmt.Errorf("segment %d of %s has no sealed local copy to upload from", id, stream)
	}
	ck := tier1.Key{Stream: stream, Segment: id}
	// In flight from here: a Retire waits until the repair is done.
	if err := s.bg.marks.beginUpload(ck); err != nil {
		return err
	}
	defer s.bg.marks.endUpload(ck)
	// The local copy is the only good one from here until the upload is
	// confirmed: pin it against Tier 1 eviction while Reupload runs (the
	// cleared Tier 2 mark protects it after that). The pin is refused
	// while an eviction of the artifact is recording its LocalEvicted.
	if err := s.bg.pinVerifiedArtifact(l, id); err != nil {
		return err
	}
	defer s.bg.cache.Unpin(ck)
	if err := l.checkRepairable(id); err != nil {
		return err
	}
	// The damaged object is not relied on from here until a repair upload
	// is confirmed, even if the manifest refuses the UploadStarted that
	// says so (see uploadMarks.repairs).
	s.bg.marks.beginRepair(ck)
	// From here the repair is queued whatever fails: only a confirmed
	// upload counts the segment in Tier 2 again. An UploadStarted taken by
	// the manifest counts it out at once, even if left pending (it commits
	// with the next manifest write); the repair mark covers one refused.
	j := job{kind: jobUpload, log: l, segment: id, repair: true}
	err = l.record(manifest.Record{Type: manifest.UploadStarted, Segment: id,
		Payload: manifest.UploadStartedPayload{Key: tier2.SegmentKeyAt(stream, l.man.Epoch(), id)}})
	if err == nil {
		err = s.bg.runUpload(j)
	}
	if err != nil {
		s.bg.retryLater(s.bg.upload, j, err)
		return fmt.Errorf("re-upload segment %d of %s (queued; retried in the background until Tier 2 accepts it): %w", id, stream, err)
	}
	return nil
}

// pinVerifiedArtifact pins segment id's Tier 1 artifact for a repair
// upload once every record of it reads back intact, compressing it (again)
// from Tier 0 when it is missing or damaged. An unverified artifact is
// never uploaded: it would become the confirmed Tier 2 copy, and the good
// Tier 0 file could then be evicted.
func (b *background) pinVerifiedArtifact(l *Log, id uint64) error {
	ck := tier1.Key{Stream: l.name, Segment: id}
	err := b.pinArtifact(l, id, false)
	if err == nil {
		if err = b.verifyArtifact(l, id); err == nil {
			return nil
		}
		b.cache.Unpin(ck)
		b.s.log.Error("tier1_artifact_damaged", "stream", l.name, "segment", id, "err", err)
		if si := l.info(id); si == nil || !si.st.InTier0 {
			return fmt.Errorf("tier 1 copy of segment %d of %s is damaged and there is no Tier 0 copy to compress it again from: %w", id, l.name, err)
		}
		if err = b.pinArtifact(l, id, true); err == nil {
			if err = b.verifyArtifact(l, id); err != nil {
				b.cache.Unpin(ck)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("tier 1 copy of segment %d of %s: %w", id, l.name, err)
	}
	return nil
}

// pinArtifact pins segment id's artifact, compressing it from Tier 0
// first when the cache lacks it or, with again, in any case (the new
// artifact replaces the old one atomically).
func (b *background) pinArtifact(l *Log, id uint64, again bool) error {
	ck := tier1.Key{Stream: l.name, Segment: id}
	if again || !b.cache.Contains(ck) {
		if si := l.info(id); si == nil || !si.st.InTier0 {
			return fmt.Errorf("no Tier 0 copy to compress segment %d from", id)
		}
		if err := b.runCompress(job{kind: jobCompress, log: l, segment: id, replace: again}); err != nil {
			return fmt.Errorf("compress segment %d: %w", id, err)
		}
	}
	if err := b.cache.Pin(ck); err != nil {
		return fmt.Errorf("pin: %w", err)
	}
	return nil
}

// verifyArtifact reads segment id's artifact the way a reader does, every
// record in order: every frame is decoded (and its checksum checked),
// every record's CRC-32C checked, and the records must be exactly the
// segment's offsets.
func (b *background) verifyArtifact(l *Log, id uint64) error {
	si := l.info(id)
	if si == nil {
		return fmt.Errorf("%w: segment %d of %s", ErrSegmentNotFound, id, l.name)
	}
	ar, err := b.cache.Open(tier1.Key{Stream: l.name, Segment: id})
	if err != nil {
		return err
	}
	defer ar.Close()
	recs := ar.Records()
	if uint64(len(recs)) != si.next-si.base {
		return fmt.Errorf("artifact holds %d records, segment has %d", len(recs), si.next-si.base)
	}
	if len(recs) == 0 {
		_, err := ar.ReadRange(0, ar.Size())
		return err
	}
	for i, rb := range recs {
		want := si.base + uint64(i)
		raw, err := ar.ReadRecord(rb.LogicalOffset)
		if err != nil {
			return err
		}
		e, _, err := segment.DecodeRecord(raw)
		if err != nil {
			return fmt.Errorf("record at offset %d: %w", want, err)
		}
		if rb.LogicalOffset != want || e.Offset != want {
			return fmt.Errorf("record at offset %d: artifact has offset %d (index %d)", want, e.Offset, rb.LogicalOffset)
		}
	}
	return nil
}

// checkRepairable checks that a local copy of segment id is still
// counted, so that the repair has one to upload from: a Tier 1 copy whose
// LocalEvicted is committed or pending does not count, and repairing from
// it would leave the manifest with the segment in no tier. The caller has
// pinned the artifact, so no eviction takes the counted copy afterwards.
func (l *Log) checkRepairable(id uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	si := l.segmentLocked(id)
	if si == nil || (!si.st.InTier0 && !si.st.InTier1) {
		return fmt.Errorf("segment %d of %s has no local copy left to upload from", id, l.name)
	}
	return nil
}

// retire deletes one segment from Tier 2 and then locally, recording the
// deletion in the manifest first.
// It returns errRetireLater while an upload of the segment is in flight
// or its Tier 1 artifact is pinned.
func (b *background) retire(ctx context.Context, l *Log, id uint64) error {
	key := tier1.Key{Stream: l.name, Segment: id}
	if err := b.marks.beginDrop(key, true); err != nil {
		return err
	}
	defer b.marks.endDrop(key)
	si := l.info(id)
	if si == nil {
		return nil
	}
	// Local copies go first, each recorded before its file is removed: a
	// crash before the Tier 2 delete leaves an ordinary Tier 2 segment,
	// which retention picks again, never a retired segment that comes
	// back by re-upload. Files a crash leaves behind are removed at boot.
	if err := b.retireTier1(l, id); err != nil {
		return err
	}
	if si.st.InTier0 {
		if err := l.record(manifest.Record{Type: manifest.LocalEvicted, Segment: id,
			Payload: manifest.LocalEvictedPayload{ReclaimedBytes: uint64(si.bytes)}}); err != nil {
			return err
		}
	}
	if si.st.InTier2 && b.s.opts.Tier2 != nil {
		objKey := si.st.Tier2Key
		if err := l.record(manifest.Record{Type: manifest.Tier2DeleteQueued, Segment: id,
			Payload: manifest.Tier2DeleteQueuedPayload{Key: objKey}}); err != nil {
			return err
		}
		if err := b.s.opts.Tier2.Delete(ctx, objKey); err != nil && tier2.Reason(err) != tier2.ReasonMissing {
			return fmt.Errorf("delete %s: %w", objKey, err)
		}
		if err := l.record(manifest.Record{Type: manifest.Tier2Deleted, Segment: id,
			Payload: manifest.Tier2DeletedPayload{Key: objKey}}); err != nil {
			return err
		}
	}
	l.dropSegment(id)
	b.marks.endRepair(key)
	b.s.log.Info("segment_retired", "stream", l.name, "segment", id, "key", si.st.Tier2Key)
	return nil
}

// retireTier1 removes a retiring segment's Tier 1 copy through an
// eviction (which records LocalEvicted), which keeps a pinned artifact:
// whoever pinned it relies on it.
func (b *background) retireTier1(l *Log, id uint64) error {
	err := b.evictTier1(tier1.Key{Stream: l.name, Segment: id})
	switch {
	case err == nil, errors.Is(err, tier1.ErrNotCached):
	case errors.Is(err, tier1.ErrPinned), errors.Is(err, tier1.ErrEvicting):
		return fmt.Errorf("tier 1 copy of segment %d of %s in use (%v): %w", id, l.name, err, errRetireLater)
	default:
		return err
	}
	// No artifact in the cache, yet the log counts one (its file went
	// missing): record it gone all the same, or the manifest keeps the
	// retired segment alive.
	si := l.info(id)
	if si == nil || !si.st.InTier1 {
		return nil
	}
	// A pending LocalEvicted commits later: the copy counts as gone
	// already (it took effect when appended).
	return l.record(manifest.Record{Type: manifest.LocalEvicted, Flags: manifest.FlagTier1Copy, Segment: id,
		Payload: manifest.LocalEvictedPayload{ReclaimedBytes: si.st.CompressedBytes}})
}

// retireLostAsync retires, in the background, lost segments whose records
// were stored again after a disaster recovery (see HolesFile).
func (b *background) retireLostAsync(l *Log, ids []uint64) {
	b.asyncMu.Lock()
	defer b.asyncMu.Unlock()
	if b.stopping {
		return // closing: the next open finds them refilled again
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		retired := 0
		for _, id := range ids {
			if err := b.retireLost(l, id); err != nil {
				b.s.log.Warn("lost_segment_retire_failed", "stream", l.name, "segment", id, "err", err)
				l.mu.Lock()
				delete(l.lostRetired, id) // tried again at the next dedupe, upload or open
				l.mu.Unlock()
				continue
			}
			retired++
			b.s.log.Info("lost_segment_retired", "stream", l.name, "segment", id,
				"note", "its records were stored again from the ingest stream after a recovery")
		}
		if retired > 0 {
			// A snapshot carries the retirement to Tier 2 now, not with
			// the next chunk rotation: a recovery in between would count
			// the loss again.
			if _, err := l.man.Snapshot(); err != nil {
				b.s.log.Warn("manifest_snapshot_failed", "stream", l.name, "err", err)
			}
		}
	}()
}

// retireLost records that segment id, which lost every copy, has none
// left in any tier, whatever the manifest last said of it: the manifest
// then shows it deleted, and a later recovery from Tier 2 does not take
// its range for lost again. The segment leaves the log.
func (b *background) retireLost(l *Log, id uint64) error {
	si := l.info(id)
	if si == nil {
		return nil
	}
	if l.isActive(id) {
		return fmt.Errorf("segment %d is the active segment: it is being written, not lost", id)
	}
	for _, r := range []manifest.Record{
		{Type: manifest.LocalEvicted, Segment: id, Payload: manifest.LocalEvictedPayload{}},
		{Type: manifest.LocalEvicted, Flags: manifest.FlagTier1Copy, Segment: id, Payload: manifest.LocalEvictedPayload{}},
		{Type: manifest.Tier2Deleted, Segment: id, Payload: manifest.Tier2DeletedPayload{Key: si.st.Tier2Key}},
	} {
		if err := l.record(r); err != nil {
			return err
		}
	}
	l.dropSegment(id)
	return nil
}
