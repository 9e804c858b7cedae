package tiers

import (
	"context"
	"fmt"
	"io"

	"github.com/bop-aof/aof/tiers/tier1"
	"github.com/bop-aof/aof/tiers/tier2"
)

// rangeReaderAt reads an object with ranged GETs. Together with the
// seekable format it lets a reader decode one frame of a Tier 2 object
// without downloading the rest: opening reads the seek table and the record
// index from the object's end, then each frame is one GET.
type rangeReaderAt struct {
	ctx  context.Context
	c    tier2.Bucket
	key  string
	size int64
}

func (r rangeReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), r.size-off)
	b, err := r.c.GetRange(r.ctx, r.key, off, n)
	if err != nil {
		return 0, err
	}
	copy(p, b)
	if n < int64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// openRemote opens the Tier 2 object of a segment for ranged reads.
func (s *Store) openRemote(ctx context.Context, stream string, id uint64, key string) (*tier1.ArtifactReader, error) {
	if s.opts.Tier2 == nil {
		return nil, fmt.Errorf("segment %d of %s is only in Tier 2 and the store has no Tier 2 client", id, stream)
	}
	info, err := s.opts.Tier2.Attributes(ctx, key)
	if err != nil {
		return nil, err
	}
	return tier1.NewArtifactReader(rangeReaderAt{ctx: ctx, c: s.opts.Tier2, key: key, size: info.Size}, info.Size, key)
}

// SetRangedReads makes the reader serve records of segments that are only
// in Tier 2 with ranged GETs of their frames instead of hydrating the
// whole segment first: the right choice for reading a few records of a cold
// segment. The context given to Next bounds those requests.
func (r *Reader) SetRangedReads(on bool) { r.ranged = on }

// SetReadAhead marks the reader as sequential: segments that are only in
// Tier 2 are read with ranged GETs instead of being hydrated into Tier 1,
// and reading one starts the prefetch of the next read.prefetch_segments
// cold segments into memory, which the reader then decodes without
// further GETs. It does nothing when the store's read-ahead is off
// (Options.PrefetchSegments 0): the reader hydrates as before.
func (r *Reader) SetReadAhead(on bool) { r.readAhead = on }
