package readservice

import (
	"sync"
	"time"

	"github.com/bop-aof/aof/tiers"
)

// idleReaderTTL is how long the reader of a finished batch waits for the
// batch after it before it is closed (2 s).
const idleReaderTTL = 2 * time.Second

// idleReaders keeps the reader of each batch that ended, positioned at the
// batch's next offset, for the request that continues from there: a Read
// or a Follow asks for its next batch from next_offset at once. A new
// reader would open the segment again and find its position from the
// start: in the active Tier 0 segment by walking every record header
// before it (a follower at the tail of a nearly full 64 MiB segment walks
// about 120,000 per batch, milliseconds each time), in Tier 1 by decoding
// the record index and the frame again.
//
// A parked reader holds its segment open (and may pin it against
// eviction) for idleReaderTTL at most, and there are at most max of them.
type idleReaders struct {
	max int

	mu      sync.Mutex
	stopped bool
	parked  map[idleKey]*idleReader
}

type idleKey struct {
	stream string
	offset uint64
}

type idleReader struct {
	r     *tiers.Reader
	timer *time.Timer
}

func newIdleReaders(max int) *idleReaders {
	return &idleReaders{max: max, parked: make(map[idleKey]*idleReader)}
}

// take returns the reader parked at offset of stream, nil when none is.
func (c *idleReaders) take(stream string, offset uint64) *tiers.Reader {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := idleKey{stream, offset}
	p, ok := c.parked[k]
	if !ok || !p.timer.Stop() {
		// Absent, or its expiry is closing it right now.
		return nil
	}
	delete(c.parked, k)
	return p.r
}

// park keeps r, positioned at offset of stream, for the next batch; it
// closes r instead when the service stops, when max readers are parked,
// or when another reader is parked at the same position already.
func (c *idleReaders) park(stream string, offset uint64, r *tiers.Reader) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := idleKey{stream, offset}
	if _, taken := c.parked[k]; c.stopped || taken || len(c.parked) >= c.max {
		r.Close()
		return
	}
	p := &idleReader{r: r}
	p.timer = time.AfterFunc(idleReaderTTL, func() { c.expire(k, p) })
	c.parked[k] = p
}

func (c *idleReaders) expire(k idleKey, p *idleReader) {
	c.mu.Lock()
	if c.parked[k] == p {
		delete(c.parked, k)
	}
	c.mu.Unlock()
	p.r.Close()
}

// len is how many readers are parked.
func (c *idleReaders) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.parked)
}

// stop closes every parked reader; park closes the ones that come after.
func (c *idleReaders) stop() {
	c.mu.Lock()
	c.stopped = true
	parked := c.parked
	c.parked = make(map[idleKey]*idleReader)
	c.mu.Unlock()
	for _, p := range parked {
		if p.timer.Stop() {
			p.r.Close()
		}
	}
}
