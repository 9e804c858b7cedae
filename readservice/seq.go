package readservice

import (
	"context"

	"github.com/bop-aof/aof/readapi"
)

// offsetOfSeq finds the offset of the first record whose JetStream
// sequence (ext_id) is at least seq. The manifest's last ext_id of each
// sealed segment picks the segment without reading it; inside it a binary
// search reads about log2(records) records (ranged GETs when the segment
// is only in Tier 2). Both rely on ext_ids rising with offsets, which
// ingest guarantees except for the records a disaster recovery stores
// again (DEDUPE_HOLES.json): those are found in their refill segment, not
// at their original place. A seq above every stored one starts at the
// durable end, so a follow request waits for it.
func (b *batch) offsetOfSeq(ctx context.Context, seq, earliest, end uint64) (uint64, error) {
	idx, err := b.s.store.ManifestIndex(b.stream)
	if err != nil {
		return 0, err
	}
	b.r.SetRangedReads(true)
	for _, sg := range b.s.store.Segments(b.stream) {
		if sg.NextOffset <= sg.BaseOffset {
			continue
		}
		if st, ok := idx.Get(sg.Segment); ok && st.Sealed && st.LastExtID != 0 && st.LastExtID < seq {
			continue
		}
		off, ext, found, err := b.searchSeq(ctx, sg.BaseOffset, sg.NextOffset, seq)
		if err != nil {
			return 0, err
		}
		if !found {
			continue
		}
		if off == earliest && earliest > 0 && ext > seq {
			return 0, statusf(readapi.StatusGone, "seq %d of %s is before retention: the earliest retained record is seq %d at offset %d", seq, b.stream, ext, off)
		}
		return off, nil
	}
	return end, nil
}

// searchSeq finds the first offset in [lo, hi) whose record has an ext_id
// of at least seq, with that ext_id.
func (b *batch) searchSeq(ctx context.Context, lo, hi, seq uint64) (off, ext uint64, found bool, err error) {
	for lo < hi {
		mid := lo + (hi-lo)/2
		b.r.Seek(mid)
		e, err := b.read(ctx)
		if err != nil {
			return 0, 0, false, err
		}
		if e.ExtID >= seq {
			hi, off, ext, found = mid, mid, e.ExtID, true
		} else {
			lo = mid + 1
		}
	}
	return off, ext, found, nil
}
