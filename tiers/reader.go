package tiers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/bop-aof/aof/tiers/backpressure"
	"github.com/bop-aof/aof/tiers/segment"
	"github.com/bop-aof/aof/tiers/tier1"
)

// ErrOffsetNotFound is returned for a logical offset no segment holds
// (deleted by retention, or never written).
var ErrOffsetNotFound = errors.New("tiers: offset not found")

// Reader reads one stream's records in logical offset order across all
// tiers: from the Tier 0 segment file when there is one, else from the
// Tier 1 artifact (decompressing only the record's frame), else it hydrates
// the segment from Tier 2 first. A Reader is not safe for concurrent use;
// open one per goroutine.
type Reader struct {
	s    *Store
	l    *Log
	next uint64

	// The open source, reused while reads stay in one segment.
	segID uint64
	t0    *segment.Reader
	t0pos uint64 // the offset t0.Next would return
	// t0active is set when t0 was opened on the active segment: once that
	// segment is sealed, t0 is reopened to see the whole sealed file.
	t0active bool
	t1       *tier1.ArtifactReader
	// remote is set when t1 reads a Tier 2 object with ranged GETs.
	remote bool
	ranged bool
	// readAhead: a sequential reader; cold segments are read ranged and
	// the next ones prefetched (SetReadAhead).
	readAhead bool
	// buf is the prefetched buffer t1 reads, held until the reader moves on.
	buf *prefetchBuf
}

// Reader returns a reader of stream positioned at offset 0.
func (s *Store) Reader(stream string) (*Reader, error) {
	l, err := s.existing(stream)
	if err != nil {
		return nil, err
	}
	return &Reader{s: s, l: l}, nil
}

// Seek positions the reader so that the next record returned is the one
// at logical offset off.
func (r *Reader) Seek(off uint64) {
	r.next = off
}

// Offset is the logical offset of the record Next returns next.
func (r *Reader) Offset() uint64 { return r.next }

// Next returns the next record, hydrating cold segments and waiting for new
// durable records at the tail (tail-follow) until ctx ends.
func (r *Reader) Next(ctx context.Context) (Entry, error) { return r.read(ctx, true) }

// TryNext is Next without waiting: a cold segment starts hydrating and the
// answer is Hydration backpressure; at the tail the answer is Tail
// backpressure.
func (r *Reader) TryNext(ctx context.Context) (Entry, error) { return r.read(ctx, false) }

// Close releases the open segment or artifact.
func (r *Reader) Close() error {
	r.closeSource()
	return nil
}

func (r *Reader) closeSource() {
	if r.t0 != nil {
		r.t0.Close()
		r.t0 = nil
	}
	if r.t1 != nil {
		r.t1.Close()
		r.t1 = nil
	}
	if r.buf != nil {
		r.s.prefetch.release(r.buf)
		r.buf = nil
	}
	r.segID, r.remote = 0, false
}

func (r *Reader) read(ctx context.Context, wait bool) (Entry, error) {
	hydrations := 0
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return Entry{}, err
		}
		si, durable, durableBytes, activeID, err := r.l.locate(r.next)
		if err != nil {
			return Entry{}, err
		}
		if r.next >= durable {
			if !wait {
				return Entry{}, backpressure.New(backpressure.Tail, r.l.name, nil)
			}
			if err := r.l.waitDurable(ctx, r.next); err != nil {
				return Entry{}, err
			}
			continue
		}
		if si == nil {
			return Entry{}, fmt.Errorf("%w: %s offset %d", ErrOffsetNotFound, r.l.name, r.next)
		}
		if si.base > r.next {
			return Entry{}, fmt.Errorf("%w: %s offset %d was retired; the earliest retained offset is %d", ErrOffsetNotFound, r.l.name, r.next, si.base)
		}
		var e Entry
		switch {
		case si.st.InTier0:
			e, err = r.readTier0(si, si.id == activeID, durableBytes)
		case si.st.InTier1:
			e, err = r.readTier1(si)
		case si.st.NeedsRecovery:
			return Entry{}, fmt.Errorf("%s segment %d needs recovery (%s): not readable until `aof2-admin manifest check --repair`", r.l.name, si.id, si.st.Reason)
		case si.st.InTier2 && (r.ranged || r.readAhead && r.s.prefetch != nil):
			e, err = r.readRanged(ctx, si)
		case si.st.InTier2:
			key := tier1.Key{Stream: r.l.name, Segment: si.id}
			if !wait {
				if err := r.s.bg.hydrator.TryGet(key); err != nil {
					return Entry{}, err
				}
				continue
			}
			if hydrations++; hydrations > 3 {
				return Entry{}, fmt.Errorf("%s segment %d: hydrated %d times and still not readable from Tier 1", r.l.name, si.id, hydrations-1)
			}
			if err := r.s.bg.hydrator.Get(ctx, key); err != nil {
				return Entry{}, err
			}
			continue
		default:
			return Entry{}, fmt.Errorf("%s segment %d has no copy in any tier", r.l.name, si.id)
		}
		if err != nil {
			// The copy may have moved down a tier between locate and open
			// (eviction); look again, a few times.
			if errors.Is(err, errMoved) && attempt < 5 {
				r.closeSource()
				continue
			}
			return Entry{}, err
		}
		r.next = e.Offset + 1
		return e, nil
	}
}

var errMoved = errors.New("segment moved")

func (r *Reader) readTier0(si *segInfo, active bool, durableBytes int64) (Entry, error) {
	if r.t0 != nil && r.segID == si.id && r.t0active && !active {
		r.closeSource()
	}
	if r.t0 == nil || r.segID != si.id {
		r.closeSource()
		rd, err := segment.Open(r.s.fs, filepath.Join(r.l.dir0, segment.FileName(si.id)))
		if err != nil {
			return Entry{}, fmt.Errorf("%w: %v", errMoved, err)
		}
		r.t0, r.segID, r.t0pos, r.t0active = rd, si.id, ^uint64(0), active
	}
	if active {
		r.t0.SetLimit(durableBytes)
	}
	if r.t0pos != r.next {
		if err := r.t0.Seek(r.next); err != nil {
			return Entry{}, err
		}
	}
	e, err := r.t0.Next()
	if err == io.EOF {
		return Entry{}, fmt.Errorf("%w: %s offset %d past end of segment %d", ErrOffsetNotFound, r.l.name, r.next, si.id)
	}
	if err != nil {
		return Entry{}, err
	}
	r.t0pos = e.Offset + 1
	return e, nil
}

func (r *Reader) readRanged(ctx context.Context, si *segInfo) (Entry, error) {
	if r.t1 == nil || r.segID != si.id || !r.remote {
		r.closeSource()
		// Held first, so that the read-ahead cannot evict it.
		ok, err := r.openPrefetched(ctx, si)
		if err != nil {
			return Entry{}, err
		}
		if !ok {
			ar, err := r.s.openRemote(ctx, r.l.name, si.id, si.st.Tier2Key)
			if err != nil {
				return Entry{}, err
			}
			r.t1, r.segID, r.remote = ar, si.id, true
		}
		r.prefetchAfter(si)
	}
	return r.decodeFrom(si)
}

func (r *Reader) readTier1(si *segInfo) (Entry, error) {
	if r.t1 == nil || r.segID != si.id || r.remote {
		r.closeSource()
		key := tier1.Key{Stream: r.l.name, Segment: si.id}
		ar, err := r.s.bg.cache.Open(key)
		if err != nil {
			return Entry{}, fmt.Errorf("%w: %v", errMoved, err)
		}
		r.s.bg.cache.Touch(key)
		r.t1, r.segID = ar, si.id
	}
	return r.decodeFrom(si)
}

// decodeFrom reads the record at r.next from the open artifact.
func (r *Reader) decodeFrom(si *segInfo) (Entry, error) {
	b, err := r.t1.ReadRecord(r.next)
	if err != nil {
		return Entry{}, err
	}
	e, _, err := segment.DecodeRecord(b)
	if err != nil {
		return Entry{}, &segment.CorruptionError{Stream: r.l.name, Segment: si.id, Err: err}
	}
	return e, nil
}

// locate returns a copy of the segment holding off, with the durable
// watermark of the stream.
func (l *Log) locate(off uint64) (*segInfo, uint64, int64, uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	durable, durableBytes := l.active.Durable()
	activeID := l.active.Header().SegmentID
	si := l.segmentForLocked(off)
	if si == nil {
		return nil, durable, durableBytes, activeID, nil
	}
	c := *si
	return &c, durable, durableBytes, activeID, nil
}

// waitDurable blocks until the stream's durable watermark is above off, or
// ctx ends.
func (l *Log) waitDurable(ctx context.Context, off uint64) error {
	stop := context.AfterFunc(ctx, func() {
		l.mu.Lock()
		l.cond.Broadcast()
		l.mu.Unlock()
	})
	defer stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.active.DurableOffset() <= off {
		if err := ctx.Err(); err != nil {
			return err
		}
		if l.s.ctx.Err() != nil {
			return ErrClosed
		}
		l.cond.Wait()
	}
	return nil
}
