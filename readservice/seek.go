package readservice

import (
	"cmp"
	"context"
	"time"

	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/readapi"
	"github.com/bop-aof/aof/tiers"
)

// seekKey is what a start by sequence or by time compares: a key that
// rises with the offset (ext_id, append time), the record's key, the
// known last key of a segment, and the manifest's choice of segment.
type seekKey[K cmp.Ordered] struct {
	of   func(tiers.Entry) K
	last func(tiers.SegmentStatus) (K, bool)
	pick func([]manifest.SegmentState, K) manifest.SeekResult
}

var bySeq = seekKey[uint64]{
	of: func(e tiers.Entry) uint64 { return e.ExtID },
	last: func(st tiers.SegmentStatus) (uint64, bool) {
		return st.LastExtID, st.BoundsKnown || st.LastExtID != 0
	},
	pick: manifest.SegmentForSeq,
}

var byTime = seekKey[int64]{
	of:   func(e tiers.Entry) int64 { return e.AppendMS },
	last: func(st tiers.SegmentStatus) (int64, bool) { return st.LastAppendMS, st.BoundsKnown },
	pick: manifest.SegmentForTime,
}

// seekHit is the first record at or after a seek's target.
type seekHit[K cmp.Ordered] struct {
	off   uint64
	key   K
	found bool
	reads int // records the seek read
}

// seek finds the first record whose key is at least target. The manifest
// picks the segment without reading any (manifest.SegmentForSeq,
// SegmentForTime); inside it a binary search reads about log2(records)
// records (ranged GETs when the segment is only in Tier 2). Segments
// sealed before the manifest kept their bounds are searched the same way,
// one after the other, from the first the manifest cannot rule out, and
// a segment whose known last key is below target is skipped unread.
// Both rely on keys rising with offsets; see offsetOfSeq and offsetOfTime
// for when they do not.
func seek[K cmp.Ordered](ctx context.Context, b *batch, k seekKey[K], target K) (seekHit[K], error) {
	idx, err := b.store.ManifestIndex(b.stream)
	if err != nil {
		return seekHit[K]{}, err
	}
	res := k.pick(idx.Segments(), target)
	b.r.SetRangedReads(true)
	reads := 0
	for _, sg := range b.store.Segments(b.stream) {
		if !fromSeekResult(sg.Segment, res, idx) || sg.NextOffset <= sg.BaseOffset {
			continue
		}
		if last, ok := k.last(sg); ok && last < target {
			continue
		}
		hit, err := searchSegment(ctx, b, k, sg.BaseOffset, sg.NextOffset, target)
		reads += hit.reads
		if err != nil || hit.found {
			hit.reads = reads
			b.s.log.Debug("read_seek", "stream", b.stream, "manifest", res.Outcome.String(), "segment", sg.Segment, "records_read", reads)
			return hit, err
		}
	}
	return seekHit[K]{reads: reads}, nil
}

// fromSeekResult says whether segment id is at or after where res starts
// the search: its segment, or for SeekPastSealed the first segment the
// manifest does not hold as sealed (the active one).
func fromSeekResult(id uint64, res manifest.SeekResult, idx *manifest.Index) bool {
	if res.Outcome != manifest.SeekPastSealed {
		return id >= res.Segment
	}
	st, ok := idx.Get(id)
	return !ok || !st.Sealed
}

// searchSegment finds the first offset in [lo, hi) whose record's key is
// at least target.
func searchSegment[K cmp.Ordered](ctx context.Context, b *batch, k seekKey[K], lo, hi uint64, target K) (seekHit[K], error) {
	var hit seekHit[K]
	for lo < hi {
		mid := lo + (hi-lo)/2
		b.r.Seek(mid)
		e, err := b.read(ctx)
		hit.reads++
		if err != nil {
			return hit, err
		}
		if key := k.of(e); key >= target {
			hi, hit.off, hit.key, hit.found = mid, mid, key, true
		} else {
			lo = mid + 1
		}
	}
	return hit, nil
}

// offsetOfSeq finds the offset of the first record whose JetStream
// sequence (ext_id) is at least seq. It relies on ext_ids rising with
// offsets, which ingest guarantees except for the records a disaster
// recovery stores again (DEDUPE_HOLES.json): those are found in their
// refill segment, not at their original place. A seq above every stored
// one starts at the durable end, so a follow request waits for it.
func (b *batch) offsetOfSeq(ctx context.Context, seq, earliest, end uint64) (uint64, error) {
	hit, err := seek(ctx, b, bySeq, seq)
	switch {
	case err != nil:
		return 0, err
	case !hit.found:
		return end, nil
	case hit.off == earliest && earliest > 0 && hit.key > seq:
		return 0, statusf(readapi.StatusGone, "seq %d of %s is before retention: the earliest retained record is seq %d at offset %d", seq, b.stream, hit.key, hit.off)
	}
	return hit.off, nil
}

// offsetOfTime finds the offset of the first record appended at or after
// tMS (Unix ms). Append times come from the gateway's clock, so a clock
// stepped back can make the answer later than the first such record. A
// time after every stored record starts at the durable end.
//
// A time before the earliest retained record is StatusGone when
// retention has retired records (some of them may be at or after t), and
// the first record when nothing was retired. When a retired segment's
// bounds are in the manifest, a time after its last record is not gone:
// the read starts at the earliest retained record, and no record at or
// after t is missing.
func (b *batch) offsetOfTime(ctx context.Context, tMS int64, earliest, end uint64) (uint64, error) {
	hit, err := seek(ctx, b, byTime, tMS)
	switch {
	case err != nil:
		return 0, err
	case !hit.found:
		return end, nil
	case hit.off == earliest && earliest > 0 && b.retiredAtOrAfter(tMS, hit.key):
		return 0, statusf(readapi.StatusGone, "time %s of %s is before retention: the earliest retained record, at offset %d, was appended at %s",
			formatMS(tMS), b.stream, hit.off, formatMS(hit.key))
	}
	return hit.off, nil
}

// retiredAtOrAfter says whether a record retention retired may have been
// appended at or after tMS, given that the earliest retained record was
// appended at firstMS. The newest retired segment's bounds answer when
// the manifest has them; without them (retired before the manifest kept
// bounds) any time before the first retained record counts as gone.
func (b *batch) retiredAtOrAfter(tMS, firstMS int64) bool {
	idx, err := b.store.ManifestIndex(b.stream)
	if err != nil {
		return firstMS > tMS
	}
	var newest *manifest.SegmentState
	segs := idx.Segments()
	for i := range segs {
		if segs[i].Deleted && segs[i].Sealed {
			newest = &segs[i]
		}
	}
	if newest != nil && newest.BoundsKnown {
		return newest.LastAppendMS >= tMS
	}
	return firstMS > tMS
}

// parseStartTime reads start_time (RFC 3339) as Unix ms, rounded up:
// records carry ms, and the first at or after a time between two ms is at
// the next one.
func parseStartTime(s string) (int64, *readapi.Error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, statusf(readapi.StatusBadRequest, "start_time %q is not an RFC 3339 time (2006-01-02T15:04:05Z07:00)", s)
	}
	ms := t.UnixMilli()
	if t.After(time.UnixMilli(ms)) {
		ms++
	}
	return ms, nil
}

func formatMS(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano) }
