package tiers

import (
	"context"
	"sync/atomic"
	"time"
)

// Compression yields to ingest during a burst.
//
// A sealed segment's compression into Tier 1 (and so its upload, which
// follows it) is the costliest work of the gateway per byte: on a machine
// where ingest and compression share a CPU, compressing a burst while it
// arrives halves the rate at which the burst is drained. Nothing needs the
// Tier 1 copy at once: the record is durable in Tier 0 when it is acked,
// the ingest stream keeps the message until Tier 2 holds it, and readers
// read a sealed segment from Tier 0 until it is evicted, which needs the
// Tier 1 copy first.
//
// So while ingest reports a backlog (Store.IngestBacklog: messages are
// waiting in the ingest stream behind the batch just taken), a compression
// job waits before each frame, up to Options.CompressDefer after the
// segment was queued. It does not wait when
//   - three quarters of Tier 0 are held by segments no eviction can free
//     (active, or sealed and not yet in Tier 1), or a writer waits for
//     admission: the budget is what holds uncompressed bytes, and
//     compression is what lets them go;
//   - someone waits for the archive (Store.ArchiveNow: a handover, a drain
//     or a shutdown) or sealed a segment on demand (Store.Seal: an
//     operator, a handover), within hurryFor of the last such call;
//   - the segment has waited CompressDefer already, so that the archive
//     never falls more than that behind ingest.
//
// The work is deferred, never skipped, and no guarantee changes: acks
// still follow the fsync, and the purge of the ingest stream still
// follows the archive.

const (
	// backlogHold is how long one backlog report defers compression:
	// longer than the gap between two batches of a busy pipeline.
	backlogHold = 100 * time.Millisecond
	// hurryFor is how long one Store.ArchiveNow turns pacing off; a
	// handover calls it every 50 ms while it waits.
	hurryFor = time.Second
	// pacePoll is how often a deferred compression looks again.
	pacePoll = 10 * time.Millisecond
)

// pacer decides whether compression waits for ingest. The zero value
// never waits (Options.CompressDefer 0).
type pacer struct {
	maxDefer time.Duration
	now      func() time.Time
	// tier0Full reports that Tier 0 is too full to wait: three quarters
	// held, or a writer waiting for admission.
	tier0Full func() bool

	backlogUntil atomic.Int64 // unix nanoseconds
	hurryUntil   atomic.Int64
	// deferred counts the waits, for tests and the compression log.
	deferred atomic.Int64
}

func (p *pacer) backlog() {
	if p.maxDefer > 0 {
		p.backlogUntil.Store(p.now().Add(backlogHold).UnixNano())
	}
}

func (p *pacer) hurry() {
	p.hurryUntil.Store(p.now().Add(hurryFor).UnixNano())
}

// shouldWait says whether a compression of a segment queued at queued
// should wait now.
func (p *pacer) shouldWait(queued time.Time) bool {
	if p.maxDefer <= 0 {
		return false
	}
	now := p.now()
	n := now.UnixNano()
	switch {
	case n >= p.backlogUntil.Load(), n < p.hurryUntil.Load():
		return false
	case now.Sub(queued) >= p.maxDefer:
		return false
	}
	return !p.tier0Full()
}

// wait returns once a compression of a segment queued at queued may go
// on, or ctx ends; it reports whether it waited at all.
func (p *pacer) wait(ctx context.Context, queued time.Time) bool {
	waited := false
	for p.shouldWait(queued) {
		if !waited {
			waited = true
			p.deferred.Add(1)
		}
		t := time.NewTimer(pacePoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return waited
		case <-t.C:
		}
	}
	return waited
}

// IngestBacklog tells the store that messages wait in the ingest stream
// behind the batch just appended: compression of sealed segments yields
// to ingest for a moment (see pacing.go). The ingest pipeline calls it
// after each batch that left a backlog.
func (s *Store) IngestBacklog() { s.pacer.backlog() }

// tier0Full is the pacer's test of the Tier 0 budget.
func (s *Store) tier0Full() bool {
	held, max, waiting := s.budget.Held()
	return waiting > 0 || held*4 >= max*3
}
