package tiers

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"fmt"
	"hash/crc64"
	"log/slog"
	"sync"

	"github.com/bop-aof/aof/tiers/tier1"
	"github.com/bop-aof/aof/tiers/tier2"
)

// Read-ahead of cold segments (read.prefetch_segments,
// read.prefetch_bytes).
//
// A reader scanning segments that are only in Tier 2 reads the segment it
// is in with ranged GETs, one per frame, and asks the store's prefetcher
// for the next segments. The prefetcher downloads each of those objects
// whole, in parallel ranged GETs, into memory: one download per object
// however many readers ask (the first request starts it, the others wait
// on the same buffer), verified against the object's crc64. A reader that
// reaches a prefetched segment decodes it from memory.
//
// The buffers never enter the Tier 1 cache, so a scan of cold history does
// not evict Tier 1's working set. They are bounded by a byte budget: a
// download reserves its object's size first, evicting the least recently
// used buffers no reader holds; when the budget is taken by buffers in use
// or in flight the prefetch is skipped. A prefetch is an optimisation
// only: a skipped, failed or corrupt download leaves the reader on ranged
// GETs, and a reader holds no lock while it waits, so a slow reader holds
// up nobody but itself.

const (
	// prefetchChunkBytes is the size of one ranged GET of a prefetch (4 MiB).
	prefetchChunkBytes = 4 << 20
	// prefetchParallelGets is how many ranged GETs of one object run at once.
	prefetchParallelGets = 4
	// prefetchMaxGets bounds the ranged GETs of all prefetches of the store
	// at once, however many readers read ahead.
	prefetchMaxGets = 16
	// DefaultPrefetchBytes is Options.PrefetchBytes when unset (256 MiB).
	DefaultPrefetchBytes = 256 << 20
)

// prefetcher holds the store's read-ahead buffers, keyed by Tier 2 object.
type prefetcher struct {
	bucket tier2.Bucket
	ctx    context.Context // the store's: Close cancels the downloads
	log    *slog.Logger
	budget int64

	gets chan struct{} // a slot per ranged GET in flight, prefetchMaxGets

	mu     sync.Mutex
	closed bool // set by wait: no download starts after it
	bufs   map[string]*prefetchBuf
	lru    *list.List // of *prefetchBuf with no reader and no download, oldest first
	used   int64      // bytes reserved by the buffers in bufs
	wg     sync.WaitGroup
}

// prefetchBuf is one object downloaded (or being downloaded) into memory.
type prefetchBuf struct {
	key  string
	done chan struct{} // closed when data or err is set
	data []byte
	err  error

	// Under prefetcher.mu.
	size    int64 // bytes reserved in the budget
	readers int
	elem    *list.Element // in lru when idle
}

func newPrefetcher(ctx context.Context, b tier2.Bucket, budget int64, log *slog.Logger) *prefetcher {
	return &prefetcher{bucket: b, ctx: ctx, log: log, budget: budget, gets: make(chan struct{}, prefetchMaxGets),
		bufs: make(map[string]*prefetchBuf), lru: list.New()}
}

// start begins downloading the objects of segs, nearest first, unless
// held or being downloaded already. Room is made by evicting idle buffers
// other than segs' own, so a reader's read-ahead never evicts a segment it
// reads sooner; it stops at the first object that does not fit.
func (p *prefetcher) start(segs []coldSegment) {
	p.mu.Lock()
	defer p.mu.Unlock()
	wanted := make(map[string]bool, len(segs))
	for _, c := range segs {
		wanted[c.key] = true
	}
	for _, c := range segs {
		if b, ok := p.bufs[c.key]; ok {
			p.touchLocked(b)
			continue
		}
		if p.closed || p.ctx.Err() != nil || !p.reserveLocked(c.size, wanted) {
			p.log.Debug("prefetch_skipped", "key", c.key, "bytes", c.size, "budget_bytes", p.budget)
			return
		}
		b := &prefetchBuf{key: c.key, done: make(chan struct{}), size: c.size}
		p.bufs[c.key] = b
		p.wg.Add(1)
		go p.download(b)
	}
}

// acquire returns the object at key from memory if it is held or being
// downloaded, waiting for the download; the caller releases it. ok is
// false when there is no buffer for key, or its download failed.
func (p *prefetcher) acquire(ctx context.Context, key string) (b *prefetchBuf, ok bool, err error) {
	p.mu.Lock()
	b, ok = p.bufs[key]
	if ok {
		b.readers++
		p.idleLocked(b, false)
	}
	p.mu.Unlock()
	if !ok {
		return nil, false, nil
	}
	select {
	case <-b.done:
	case <-ctx.Done():
		p.release(b)
		return nil, false, ctx.Err()
	}
	if b.err != nil {
		p.release(b)
		return nil, false, nil
	}
	return b, true, nil
}

// release ends a reader's use of b; once idle it may be evicted.
func (p *prefetcher) release(b *prefetchBuf) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b.readers--
	p.idleLocked(b, true)
}

// idleLocked puts b in the eviction order when it is downloaded and
// unread, and takes it out otherwise.
func (p *prefetcher) idleLocked(b *prefetchBuf, mayIdle bool) {
	if b.elem != nil {
		p.lru.Remove(b.elem)
		b.elem = nil
	}
	if !mayIdle || b.readers > 0 || p.bufs[b.key] != b {
		return
	}
	select {
	case <-b.done:
		b.elem = p.lru.PushBack(b)
	default:
	}
}

func (p *prefetcher) touchLocked(b *prefetchBuf) {
	if b.elem != nil {
		p.lru.MoveToBack(b.elem)
	}
}

// reserveLocked takes n bytes of the budget, evicting idle buffers not in
// keep, least recently used first, to make room; it evicts and takes
// nothing when that is not enough.
func (p *prefetcher) reserveLocked(n int64, keep map[string]bool) bool {
	if n > p.budget {
		return false
	}
	var victims []*prefetchBuf
	free := p.budget - p.used
	for e := p.lru.Front(); e != nil && free < n; e = e.Next() {
		if b := e.Value.(*prefetchBuf); !keep[b.key] {
			victims = append(victims, b)
			free += b.size
		}
	}
	if free < n {
		return false
	}
	for _, b := range victims {
		p.dropLocked(b)
	}
	p.used += n
	return true
}

func (p *prefetcher) dropLocked(b *prefetchBuf) {
	if b.elem != nil {
		p.lru.Remove(b.elem)
		b.elem = nil
	}
	if p.bufs[b.key] == b {
		delete(p.bufs, b.key)
		p.used -= b.size
	}
}

// download fills b. On failure b is dropped, so a later read asks again,
// and readers waiting on it fall back to ranged GETs.
func (p *prefetcher) download(b *prefetchBuf) {
	defer p.wg.Done()
	data, err := p.fetch(b)
	p.mu.Lock()
	b.data, b.err = data, err
	close(b.done)
	if err != nil {
		p.log.Warn("prefetch_failed", "key", b.key, "err", err)
		p.dropLocked(b)
	} else {
		p.idleLocked(b, true)
	}
	p.mu.Unlock()
}

// fetch reads the object in parallel ranged GETs and checks its crc64.
func (p *prefetcher) fetch(b *prefetchBuf) ([]byte, error) {
	info, err := p.bucket.Attributes(p.ctx, b.key)
	if err != nil {
		return nil, err
	}
	if err := p.settleSize(b, info.Size); err != nil {
		return nil, err
	}
	data := make([]byte, info.Size)
	if err := p.getRanges(b.key, data); err != nil {
		return nil, err
	}
	if want := info.Meta.CRC64; want != 0 {
		if got := crc64.Checksum(data, tier2.CRC64Table); got != want {
			return nil, &tier2.CorruptionError{Key: b.key, Want: want, Got: got}
		}
	}
	return data, nil
}

// getRanges fills data with the object at key, prefetchParallelGets
// ranged GETs at a time (and prefetchMaxGets for the whole store); the
// first error cancels the others.
func (p *prefetcher) getRanges(key string, data []byte) error {
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	size := int64(len(data))
	sem := make(chan struct{}, prefetchParallelGets)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for off := int64(0); off < size && ctx.Err() == nil; off += prefetchChunkBytes {
		n := min(prefetchChunkBytes, size-off)
		sem <- struct{}{}
		select {
		case p.gets <- struct{}{}:
		case <-ctx.Done():
			<-sem
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-p.gets; <-sem; wg.Done() }()
			chunk, err := p.bucket.GetRange(ctx, key, off, n)
			if err == nil && int64(len(chunk)) != n {
				err = fmt.Errorf("get-range %s [%d, %d): %d bytes", key, off, off+n, len(chunk))
			}
			if err != nil {
				select {
				case errs <- err:
					cancel()
				default:
				}
				return
			}
			copy(data[off:], chunk)
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return ctx.Err()
	}
}

// settleSize makes b's reservation the object's actual size.
func (p *prefetcher) settleSize(b *prefetchBuf, size int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if size == b.size {
		return nil
	}
	p.used -= b.size
	b.size = 0
	if !p.reserveLocked(size, map[string]bool{b.key: true}) {
		return errPrefetchOverBudget
	}
	b.size = size
	return nil
}

var errPrefetchOverBudget = errors.New("object does not fit in read.prefetch_bytes")

// wait returns once every download has ended (after the store's context
// is cancelled, promptly).
func (p *prefetcher) wait() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.wg.Wait()
}

// openPrefetched opens a segment's object from a prefetched buffer; ok is
// false when there is none and the caller reads it with ranged GETs.
func (r *Reader) openPrefetched(ctx context.Context, si *segInfo) (ok bool, err error) {
	p := r.s.prefetch
	if p == nil || !r.readAhead {
		return false, nil
	}
	b, ok, err := p.acquire(ctx, si.st.Tier2Key)
	if !ok {
		return false, err
	}
	ar, err := tier1.NewArtifactReader(bytes.NewReader(b.data), int64(len(b.data)), si.st.Tier2Key)
	if err != nil {
		p.release(b)
		return false, nil
	}
	r.t1, r.segID, r.remote, r.buf = ar, si.id, true, b
	return true, nil
}

// prefetchAfter starts the prefetch of the cold segments among the
// read.prefetch_segments segments after si, and then, when the reader
// opened si itself with ranged GETs (no buffer), of si.
//
// si's own download does not speed up this reader, which goes on with
// ranged GETs (they bring its first record soonest), but the readers after
// it: the read service opens a Reader per batch, a batch is a few frames
// of a 64 MiB segment, and without it every batch in the first segment of
// a scan reopened the object and read its record index and each frame
// with ranged GETs, one after the other. It comes last, so that it takes
// only budget the next segments leave (start stops at the first object
// that does not fit).
func (r *Reader) prefetchAfter(si *segInfo) {
	p := r.s.prefetch
	if p == nil || !r.readAhead {
		return
	}
	segs := r.l.coldSegmentsAfter(si.id, r.s.opts.PrefetchSegments)
	if r.buf == nil && si.st.Tier2Key != "" {
		segs = append(segs, coldSegment{key: si.st.Tier2Key, size: int64(si.st.CompressedBytes)})
	}
	p.start(segs)
}

type coldSegment struct {
	key  string
	size int64
}

// coldSegmentsAfter lists the segments among the n after id that are only
// in Tier 2.
func (l *Log) coldSegmentsAfter(id uint64, n int) []coldSegment {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []coldSegment
	for _, si := range l.segs {
		if si.id <= id {
			continue
		}
		if n--; n < 0 {
			break
		}
		if si.st.InTier2 && !si.st.InTier0 && !si.st.InTier1 && !si.st.NeedsRecovery && si.st.Tier2Key != "" {
			out = append(out, coldSegment{key: si.st.Tier2Key, size: int64(si.st.CompressedBytes)})
		}
	}
	return out
}
