package tiers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/bop-aof/aof/config"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/tier2"
)

// Defaults of ReplicaOptions.
const (
	DefaultReplicaRefresh    = time.Second
	DefaultReplicaIdle       = 5 * time.Minute
	DefaultReplicaMaxStreams = 8
)

// ErrNotArchived is returned by Replica.Acquire for a stream that has no
// archived record yet: nothing of it can be read from Tier 2.
var ErrNotArchived = errors.New("tiers: nothing of the stream is archived yet")

// ErrReadOnly is returned by a Replica's Tier 2 client for any write.
var ErrReadOnly = errors.New("tiers: the replica is read-only: Tier 2 is written by the owner only")

// ReplicaOptions configure a Replica.
type ReplicaOptions struct {
	// Root holds the copies (<data_root>/replica); whatever is there when
	// the replica opens is a cache of an earlier process and is removed.
	Root string
	// Store is the template of each copy's store: Tier2, budgets,
	// prefetch, logger. Root, Publisher, Discard, EpochOf, retention and
	// snapshots are ignored: a copy writes nothing but its own disk.
	Store Options
	// Record reads the stream's archived-through record (the cluster
	// bucket's archived.<stream>); a zero NextOffset means none.
	Record func(ctx context.Context, stream string) (manifest.Archived, error)
	// Refresh is the least time between two reads of a stream's record
	// (DefaultReplicaRefresh): a read past the copy's end asks at most
	// this often, so readers at the archived end do not hammer the bucket.
	Refresh time.Duration
	// Idle closes and removes a copy no read used for this long
	// (DefaultReplicaIdle).
	Idle time.Duration
	// MaxStreams bounds the copies open at once
	// (DefaultReplicaMaxStreams); past it the least recently used idle
	// copy is closed. Each copy has the template's budgets.
	MaxStreams int
}

// Replica is a read-only copy of the archived history of streams this
// gateway does not own. A stream's copy is adopted from Tier 2 through
// the stream's archived record (Store.Adopt into a store of its own), and
// serves offsets below the record's NextOffset only: every such record
// is in a segment object and a manifest chunk Tier 2 confirmed before the
// record was written, so the replica never serves anything unconfirmed.
// When a read needs more than the copy holds and the record has moved
// on, a new copy is adopted; reads in flight keep the one they hold,
// which is removed once the last of them is done. Offsets of archived
// records never change, across owners and epochs, so a reader's position
// is valid in every copy.
type Replica struct {
	opts ReplicaOptions

	mu      sync.Mutex
	streams map[string]*replicaStream
	gen     uint64
	closed  bool
	now     func() time.Time
}

// replicaStream is one stream's copy and when its record was last read.
type replicaStream struct {
	refresh sync.Mutex // one adoption of the stream at a time
	cur     *replicaCopy
	checked time.Time
}

// replicaCopy is one adoption of a stream: its own store in its own
// directory. refs and retired are guarded by Replica.mu.
type replicaCopy struct {
	store   *Store
	dir     string
	rec     manifest.Archived
	refs    int
	used    time.Time
	retired bool
}

// ReplicaView is one read's hold on a copy: Store serves offsets below
// End. Release it when the read is done.
type ReplicaView struct {
	Store  *Store
	End    uint64
	Record manifest.Archived
	once   sync.Once
	rel    func()
	c      *replicaCopy
}

// Release lets the copy go; it may be removed once no view holds it.
func (v *ReplicaView) Release() { v.once.Do(v.rel) }

// OpenReplica prepares a replica under opts.Root, emptied first.
func OpenReplica(opts ReplicaOptions) (*Replica, error) {
	if opts.Root == "" || opts.Record == nil || bucketOrNil(opts.Store.Tier2) == nil {
		return nil, errors.New("tiers: replica needs a root, a record source and a Tier 2 bucket")
	}
	if opts.Refresh <= 0 {
		opts.Refresh = DefaultReplicaRefresh
	}
	if opts.Idle <= 0 {
		opts.Idle = DefaultReplicaIdle
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = DefaultReplicaMaxStreams
	}
	if err := os.RemoveAll(opts.Root); err != nil {
		return nil, fmt.Errorf("tiers: clear replica root: %w", err)
	}
	if err := os.MkdirAll(opts.Root, 0o755); err != nil {
		return nil, fmt.Errorf("tiers: create replica root: %w", err)
	}
	so := opts.Store
	so.Tier2 = readOnlyBucket{so.Tier2}
	so.Publisher, so.Discard, so.EpochOf, so.Epoch = nil, nil, nil, 0
	so.RetentionMaxAge, so.RetentionMaxBytes, so.SnapshotInterval = 0, 0, 0
	so.readOnly = true
	so.FS = nil // the copies live on the local disk (os.RemoveAll above)
	opts.Store = so
	now := time.Now
	if so.Now != nil {
		now = so.Now
	}
	return &Replica{opts: opts, streams: map[string]*replicaStream{}, now: now}, nil
}

// NewestCopy, as Acquire's need, asks for the newest copy (within the
// refresh period): for a start by sequence or time, whose offset is not
// known before the search.
const NewestCopy = ^uint64(0)

// Acquire returns a view of stream's copy for a read that needs offset
// need: the copy is adopted first when there is none, or refreshed from
// the record when need is at or past its end and the record was not read
// within ReplicaOptions.Refresh; a new copy is adopted only when it would
// hold need. The view's End may still be at or below need: the rest is
// not archived yet (the owner serves it). ErrNotArchived: there is no
// copy to serve from (the stream has no archived record, or need is past
// it).
func (r *Replica) Acquire(ctx context.Context, stream string, need uint64) (*ReplicaView, error) {
	if err := config.ValidStreamName(stream); err != nil {
		return nil, err
	}
	st, err := r.stream(stream)
	if err != nil {
		return nil, err
	}
	if r.stale(st, need) {
		if err := r.refresh(ctx, stream, st, need); err != nil {
			return nil, err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := st.cur
	if c == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotArchived, stream)
	}
	c.refs++
	c.used = r.now()
	v := &ReplicaView{Store: c.store, End: c.rec.NextOffset, Record: c.rec, c: c}
	v.rel = func() { r.release(c) }
	r.sweepLocked(c)
	return v, nil
}

// stream returns stream's entry, made on first use.
func (r *Replica) stream(stream string) (*replicaStream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	st := r.streams[stream]
	if st == nil {
		st = &replicaStream{}
		r.streams[stream] = st
	}
	return st, nil
}

// stale says whether stream's record must be read again for need.
func (r *Replica) stale(st *replicaStream, need uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st.cur == nil {
		return true
	}
	return need >= st.cur.rec.NextOffset && r.now().Sub(st.checked) >= r.opts.Refresh
}

// refresh reads the record and adopts a new copy when it moved: further
// on, or back (a stream deleted and written again starts over).
func (r *Replica) refresh(ctx context.Context, stream string, st *replicaStream, need uint64) error {
	st.refresh.Lock()
	defer st.refresh.Unlock()
	if !r.stale(st, need) { // another read refreshed it meanwhile
		return nil
	}
	rec, err := r.opts.Record(ctx, stream)
	if err != nil {
		return fmt.Errorf("tiers: replica of %s: read the archived record: %w", stream, err)
	}
	r.mu.Lock()
	cur := st.cur
	st.checked = r.now()
	r.mu.Unlock()
	if cur != nil && rec.NextOffset == cur.rec.NextOffset {
		// Same archived end: a new epoch fencing the record changes
		// nothing the copy serves.
		return nil
	}
	if need != NewestCopy && need >= rec.NextOffset && rec.NextOffset >= cur.end() {
		// A reader at the tail: a new copy would serve it nothing, the
		// owner answers. Adopting for it every Refresh would download
		// the manifest chain over and over for nothing.
		return nil
	}
	var c *replicaCopy
	if rec.NextOffset > 0 {
		if c, err = r.adopt(ctx, stream, rec); err != nil {
			return err
		}
	}
	r.mu.Lock()
	st.cur = c
	closed := r.closed
	r.mu.Unlock()
	if cur != nil {
		r.retire(cur)
	}
	if closed && c != nil {
		r.retire(c)
		return ErrClosed
	}
	return nil
}

// adopt makes a new copy of stream through rec in a directory of its own.
func (r *Replica) adopt(ctx context.Context, stream string, rec manifest.Archived) (*replicaCopy, error) {
	r.mu.Lock()
	r.gen++
	dir := filepath.Join(r.opts.Root, stream, strconv.FormatUint(r.gen, 10))
	r.mu.Unlock()
	so := r.opts.Store
	so.Root = dir
	start := time.Now()
	s, err := Open(ctx, so)
	if err != nil {
		return nil, fmt.Errorf("tiers: replica of %s: %w", stream, err)
	}
	// Epoch 0: the copy keeps the record's epoch and never anchors a
	// chain of its own.
	if err := s.Adopt(ctx, stream, rec, 0); err != nil {
		s.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("tiers: replica of %s: %w", stream, err)
	}
	s.log.Info("replica_adopted", "stream", stream, "epoch", rec.Epoch, "next_offset", rec.NextOffset,
		"position", rec.Position.String(), "took_ms", time.Since(start).Milliseconds())
	return &replicaCopy{store: s, dir: dir, rec: rec, used: r.now()}, nil
}

// Invalidate drops the copy v reads from, when it is still stream's
// current one, so that the next Acquire adopts again: a read of it failed
// in a way a newer state of Tier 2 may explain (an object the owner's
// retention deleted after the copy was adopted). v stays usable until
// released.
func (r *Replica) Invalidate(stream string, v *ReplicaView) {
	r.mu.Lock()
	st := r.streams[stream]
	if st == nil || st.cur != v.c {
		r.mu.Unlock()
		return
	}
	st.cur, st.checked = nil, time.Time{}
	r.mu.Unlock()
	r.retire(v.c)
}

// release drops a view's hold on c.
func (r *Replica) release(c *replicaCopy) {
	r.mu.Lock()
	c.refs--
	c.used = r.now()
	gone := c.retired && c.refs == 0
	r.mu.Unlock()
	if gone {
		c.close()
	}
}

// retire marks c replaced; it is closed at once when no view holds it.
func (r *Replica) retire(c *replicaCopy) {
	r.mu.Lock()
	c.retired = true
	gone := c.refs == 0
	r.mu.Unlock()
	if gone {
		c.close()
	}
}

// sweepLocked retires the copies no read used within Idle, and the least
// recently used idle ones past MaxStreams; keep is the one just taken.
func (r *Replica) sweepLocked(keep *replicaCopy) {
	now := r.now()
	open := 0
	var lru *replicaStream
	var drop []*replicaCopy
	for _, st := range r.streams {
		c := st.cur
		if c == nil {
			continue
		}
		if c != keep && c.refs == 0 && now.Sub(c.used) >= r.opts.Idle {
			st.cur, c.retired = nil, true
			drop = append(drop, c)
			continue
		}
		open++
		if c != keep && c.refs == 0 && (lru == nil || c.used.Before(lru.cur.used)) {
			lru = st
		}
	}
	if open > r.opts.MaxStreams && lru != nil {
		c := lru.cur
		lru.cur, c.retired = nil, true
		drop = append(drop, c)
	}
	for _, c := range drop {
		// Closing waits for the store's background work: not under mu.
		go c.close()
	}
}

// end is the copy's archived end, 0 for no copy.
func (c *replicaCopy) end() uint64 {
	if c == nil {
		return 0
	}
	return c.rec.NextOffset
}

// close closes the copy's store and removes its directory.
func (c *replicaCopy) close() {
	if err := c.store.Close(); err != nil {
		c.store.log.Warn("replica_close_failed", "dir", c.dir, "err", err)
	}
	if err := os.RemoveAll(c.dir); err != nil {
		c.store.log.Warn("replica_remove_failed", "dir", c.dir, "err", err)
	}
}

// Streams returns the streams that have a copy open now.
func (r *Replica) Streams() map[string]manifest.Archived {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]manifest.Archived{}
	for name, st := range r.streams {
		if st.cur != nil {
			out[name] = st.cur.rec
		}
	}
	return out
}

// Close closes every copy no read holds; the others close as their
// reads end.
func (r *Replica) Close() error {
	r.mu.Lock()
	r.closed = true
	var copies []*replicaCopy
	for _, st := range r.streams {
		if st.cur != nil {
			copies = append(copies, st.cur)
			st.cur = nil
		}
	}
	r.mu.Unlock()
	for _, c := range copies {
		r.retire(c)
	}
	return nil
}

// readOnlyBucket is a Tier 2 client that refuses every write: a copy
// must never put or delete an object of the owner's.
type readOnlyBucket struct{ tier2.Bucket }

func (readOnlyBucket) Upload(context.Context, string, io.ReadSeeker, int64, tier2.ObjectMeta) (tier2.UploadResult, error) {
	return tier2.UploadResult{}, ErrReadOnly
}

func (readOnlyBucket) Replace(context.Context, string, io.ReadSeeker, int64, tier2.ObjectMeta) (tier2.UploadResult, error) {
	return tier2.UploadResult{}, ErrReadOnly
}

func (readOnlyBucket) Delete(context.Context, string) error { return ErrReadOnly }
