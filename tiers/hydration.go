package tiers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/tier1"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tracing"
)

// hydrate brings a segment's artifact back into Tier 1 from Tier 2.
func (b *background) hydrate(ctx context.Context, key tier1.Key) error {
	l, err := b.s.existing(key.Stream)
	if err != nil {
		return err
	}
	info := l.info(key.Segment)
	if info != nil && info.st.InTier1 && b.cache.Contains(key) {
		return nil // hydrated meanwhile
	}
	// An artifact the cache holds but the view does not count (its
	// LocalEvicted is recorded) is downloaded again: only a recorded
	// hydration counts it.
	up := b.s.opts.Tier2
	if up == nil || info == nil || !info.st.InTier2 {
		return fmt.Errorf("segment %d of %s has no copy to hydrate from", key.Segment, key.Stream)
	}
	ctx, span := b.s.opts.Tracer.Start(ctx, tracing.SpanHydrate, trace.WithAttributes(
		tracing.AttrStream.String(key.Stream), tracing.AttrSegment.Int64(int64(key.Segment)), tracing.AttrTier.Int(2)))
	defer span.End()
	start := time.Now()
	l.setHydrating(key.Segment, true)
	defer l.setHydrating(key.Segment, false)
	if err := l.record(manifest.Record{Type: manifest.HydrationStarted, Segment: key.Segment,
		Payload: manifest.HydrationStartedPayload{SourceTier: 2}}); err != nil {
		return err
	}
	n, err := b.cache.Put(key, func(w io.Writer) error {
		_, err := up.Get(ctx, info.st.Tier2Key, hydrationProgress{w: w, l: l, id: key.Segment})
		return err
	})
	if err == nil {
		// Verify what came back before anyone reads it.
		var ar *tier1.ArtifactReader
		if ar, err = b.cache.Open(key); err == nil {
			ar.Close()
		} else {
			b.cache.Remove(key)
		}
	}
	if err != nil {
		reason := manifest.ReasonCode(tier2.Reason(err))
		// A Tier 2 object that fails its checksum, or whose frames do not
		// decode, is as good as missing: reason 4, repair needed.
		var ce *tier1.CorruptionError
		var oe *tier2.CorruptionError
		if errors.As(err, &ce) || errors.As(err, &oe) {
			reason = manifest.ReasonMissing
		}
		span.RecordError(err)
		b.s.log.Error("tier1_hydration_failed", "stream", key.Stream, "segment", key.Segment, "reason", reason, "err", err)
		// Missing or codec: the segment needs recovery (the record's fold).
		l.record(manifest.Record{Type: manifest.HydrationFailed, Segment: key.Segment,
			Payload: manifest.HydrationFailedPayload{Reason: reason}})
		return &HydrationError{Stream: key.Stream, Segment: key.Segment, Reason: reason, Err: err}
	}
	// A hydrated artifact came from Tier 2, so HydrationDone makes it
	// evictable again (reactLocked), but not before the readers that
	// waited for it have opened it: it is pinned first, for a grace
	// period (an open artifact survives eviction).
	if err := b.cache.Pin(key); err == nil {
		time.AfterFunc(hydrationGrace, func() { b.cache.Unpin(key) })
	}
	if err := l.record(manifest.Record{Type: manifest.HydrationDone, Segment: key.Segment,
		Payload: manifest.HydrationDonePayload{ResidentBytes: uint64(n)}}); err != nil {
		return err
	}
	b.s.opts.Instruments.ObserveHydration(ctx, time.Since(start))
	return nil
}

// hydrationProgress counts a hydration's downloaded bytes for
// Segments (aof2-admin hydrate shows them).
type hydrationProgress struct {
	w  io.Writer
	l  *Log
	id uint64
}

func (p hydrationProgress) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.l.addHydrated(p.id, n)
	return n, err
}

// hydrationGrace is how long a freshly hydrated artifact stays pinned so
// that the readers waiting for it can open it before eviction.
const hydrationGrace = 5 * time.Second

// HydrationError says a segment could not be brought back. Reason is one of
// the manifest reason codes (4: the Tier 2 object is missing or corrupt).
type HydrationError struct {
	Stream  string
	Segment uint64
	Reason  manifest.ReasonCode
	Err     error
}

func (e *HydrationError) Error() string {
	return fmt.Sprintf("hydrate %s segment %d: %s: %v", e.Stream, e.Segment, e.Reason, e.Err)
}

func (e *HydrationError) Unwrap() error { return e.Err }
