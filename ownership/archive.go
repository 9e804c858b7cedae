package ownership

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// archiveLoop advances the records of p's streams as their store
// archives further, and purges behind them, until ctx ends, handover is
// closed or a record write is fenced.
func (r *Runner) archiveLoop(ctx context.Context, p *partition, handover <-chan struct{}) error {
	tick := time.NewTicker(r.opts.ArchiveInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-handover:
			return nil
		case <-tick.C:
		}
		if err := r.archiveRound(ctx, p); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, ErrFenced) || errors.Is(err, errCrashed) {
				return err
			}
			r.log.Warn("archive_record_failed", "partition", p.lease.Partition(), "err", err)
		}
	}
}

// archiveRound writes the record of every stream of p whose store
// archived further than its record says, then purges it.
func (r *Runner) archiveRound(ctx context.Context, p *partition) error {
	for _, s := range r.opts.Store.Streams() {
		if r.opts.PartitionOf(s) != p.lease.Partition() {
			continue
		}
		if err := r.archiveStream(ctx, p, s); err != nil {
			return fmt.Errorf("stream %s: %w", s, err)
		}
	}
	return nil
}

// archiveStream writes stream's record if its store archived further,
// and purges what the record covers. The record is written before the
// purge, so a crash between them leaves messages that the next owner's
// takeover purges; never a purged message without its record.
func (r *Runner) archiveStream(ctx context.Context, p *partition, stream string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	sr := p.records[stream]
	if sr == nil {
		// A stream new since the takeover: it has no record yet, or a
		// zombie created one since (then the create below is fenced).
		sr = &streamRecord{}
		p.records[stream] = sr
		if err := r.opts.Store.SetEpoch(stream, p.lease.Epoch()); err != nil {
			return err
		}
	}
	a, err := r.opts.Store.Archived(stream)
	if err != nil {
		return fmt.Errorf("archived state: %w", err)
	}
	if a.Through > sr.rec.Through || movesToNewerChain(a, sr.rec) {
		rec := Record{Epoch: p.lease.Epoch(), Through: a.Through, NextOffset: a.NextOffset, Manifest: a.Manifest}
		if !p.lease.Valid() {
			return errLeaseExpired
		}
		if err := r.step("archive.before_record"); err != nil {
			return err
		}
		rev, err := r.opts.Records.Update(ctx, stream, sr.rev, rec)
		if err != nil {
			return fmt.Errorf("write archived record: %w", err)
		}
		sr.rec, sr.rev = rec, rev
		sr.waitingSince = time.Time{}
		if err := r.step("archive.before_purge"); err != nil {
			return err
		}
	}
	r.purge(ctx, p, stream, sr)
	r.measureWaiting(stream, sr)
	return nil
}

// movesToNewerChain reports whether the record should move to the
// store's chain although nothing more is archived: the store's chain is
// newer (this owner's anchor is in Tier 2) and covers as much. A record
// left pointing at an older epoch's chain depends on objects that a
// writer still at that epoch (a zombie, a restarted standby) may prune
// behind its own snapshots; once the record names this owner's chain,
// only this owner writes what it needs.
func movesToNewerChain(a Archived, rec Record) bool {
	return a.Manifest.Epoch > rec.Manifest.Epoch && a.Through >= rec.Through && a.NextOffset >= rec.NextOffset && a.Through > 0
}

// measureWaiting updates how many of stream's records wait for Tier 2,
// and since when.
func (r *Runner) measureWaiting(stream string, sr *streamRecord) {
	next, err := r.opts.Store.NextOffset(stream)
	if err != nil {
		return
	}
	sr.unarchived = 0
	if next > sr.rec.NextOffset {
		sr.unarchived = next - sr.rec.NextOffset
	}
	switch {
	case sr.unarchived == 0:
		sr.waitingSince = time.Time{}
	case sr.waitingSince.IsZero():
		sr.waitingSince = time.Now()
	}
}

// handover archives everything p holds, so that the next owner has
// nothing to re-read: the pipeline stops, every stream is sealed, and
// once Tier 2 holds everything stored the records are written and the
// messages purged, all within the handover timeout. What does not make
// it is left for the next owner to re-read.
func (r *Runner) handover(ctx context.Context, p *partition) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.HandoverTimeout)
	defer cancel()
	p.stopIngest()
	select {
	case <-p.ingestDone:
	case <-ctx.Done():
		return ctx.Err()
	}
	var streams []string
	for _, s := range r.opts.Store.Streams() {
		if r.opts.PartitionOf(s) == p.lease.Partition() {
			streams = append(streams, s)
		}
	}
	for _, s := range streams {
		if _, err := r.opts.Store.Seal(ctx, s, false); err != nil {
			return fmt.Errorf("seal %s: %w", s, err)
		}
	}
	for _, s := range streams {
		if err := r.waitArchived(ctx, s); err != nil {
			return err
		}
		if err := r.archiveStream(ctx, p, s); err != nil {
			return fmt.Errorf("stream %s: %w", s, err)
		}
	}
	return nil
}

// waitArchived returns once Tier 2 holds every record stream stored.
func (r *Runner) waitArchived(ctx context.Context, stream string) error {
	for {
		last, err := r.opts.Store.LastExtID(stream)
		if err != nil {
			return err
		}
		a, err := r.opts.Store.Archived(stream)
		if err != nil {
			return err
		}
		if a.Through >= last {
			return nil
		}
		if err := r.opts.Store.ArchiveNow(stream); err != nil {
			r.log.Warn("archive_now_failed", "stream", stream, "err", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream %s: archived through %d of %d: %w", stream, a.Through, last, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
