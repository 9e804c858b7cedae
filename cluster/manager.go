package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/config"
)

// Handler runs a partition while this node owns it.
type Handler interface {
	// Acquired runs for the whole term of l, on a goroutine of its own.
	//
	// ctx is cancelled the instant this node may no longer own the
	// partition (context.Cause wraps ErrLeaseLost) or Run ends: from then
	// on the handler must not ack, upload, update archived records or
	// purge, and must return promptly. Valid(ctx) is the synchronous check
	// to make right before such a step.
	//
	// handover is closed when the node gives the partition up gracefully
	// (Release, ReleaseAll): the handler seals and archives what it holds,
	// then returns. ctx stays valid meanwhile, the lease being renewed.
	//
	// When Acquired returns, the handler must have stopped every write for
	// the partition; the lease is then deleted so the next owner starts at
	// once. A handler that returns on its own (a failure) gives the
	// partition up the same way, and this node leaves it to others for one
	// lease TTL.
	Acquired(ctx context.Context, l Lease, handover <-chan struct{})
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, l Lease, handover <-chan struct{})

// Acquired calls f.
func (f HandlerFunc) Acquired(ctx context.Context, l Lease, handover <-chan struct{}) {
	f(ctx, l, handover)
}

// ManagerOptions configure a Manager.
type ManagerOptions struct {
	Node       string        // this gateway's node id (config node.id or DefaultNodeID)
	Partitions int           // config cluster.partitions
	LeaseTTL   time.Duration // config cluster.lease_ttl; whole seconds, at least 1s
	Logger     *slog.Logger  // nil: discard
	// Want reports whether this node should hold partition p; nil wants
	// every partition. It is asked before each acquisition, never about a
	// partition already held.
	Want func(p int) bool
	// MovePause is the least time between two partitions this node hands
	// over to even out the spread (config cluster.rebalance_pause); see
	// balance.go.
	MovePause time.Duration
	// Follower makes a node that takes no partition: it only heartbeats,
	// so `aof2-admin cluster` lists it and the others leave it out of the
	// shares.
	Follower bool
}

// ErrNotOwned is returned by Release for a partition this node does not hold.
var ErrNotOwned = errors.New("partition not owned by this node")

// errHandlerReturned ends a term whose handler returned on its own.
var errHandlerReturned = errors.New("handler returned")

// Manager acquires, renews and releases this node's partition leases and
// runs a Handler for each partition it holds (see the package doc).
type Manager struct {
	b   *Bucket
	o   ManagerOptions
	h   Handler
	log *slog.Logger

	ttl        time.Duration // lease TTL as the server applies it
	renewEvery time.Duration // ttl/3
	margin     time.Duration // validity ends this long before the server's expiry
	started    time.Time

	running  atomic.Bool
	paused   atomic.Bool // test hook: a stopped process neither renews nor acquires
	draining atomic.Bool // Drain(on): hold nothing, take nothing
	ended    atomic.Bool // Run's loop returned: no more heartbeats
	moving   atomic.Bool // a rebalancing handover is under way
	target   atomic.Int64
	wg       sync.WaitGroup

	bal  *balance      // the loop goroutine's alone
	kick chan struct{} // asks the loop for a scan (the next move is due)
	beat chan struct{} // asks the loop for a heartbeat (holdings changed)

	mu       sync.Mutex
	terms    map[int]*term
	quiet    map[int]time.Time // partitions not to take again before the time
	gave     map[int]time.Time // handed over to even the spread: not taken back before the time unless under share
	failures map[int]failures  // handler failures in a row, for failedRest
	streak   failures          // failed terms in a row on any partition, for failing
	lastMove time.Time         // end of the last rebalancing handover

	acquired, lost, released atomic.Uint64
}

// NewManager returns a Manager for b; Run starts it.
func NewManager(b *Bucket, o ManagerOptions, h Handler) (*Manager, error) {
	if err := config.ValidStreamName(o.Node); err != nil {
		return nil, fmt.Errorf("cluster: node id: %w", err)
	}
	if o.Partitions < 1 || o.Partitions > config.MaxPartitions {
		return nil, fmt.Errorf("cluster: partitions must be between 1 and %d, got %d", config.MaxPartitions, o.Partitions)
	}
	// The server keeps whole seconds of a message TTL, truncating: the
	// owner must count with what the server applies, never more.
	ttl := o.LeaseTTL.Truncate(time.Second)
	if ttl < time.Second {
		return nil, fmt.Errorf("cluster: lease TTL must be at least 1s, got %s", o.LeaseTTL)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Want == nil {
		o.Want = func(int) bool { return true }
	}
	return &Manager{
		b: b, o: o, h: h, log: o.Logger.With("node", o.Node),
		ttl: ttl, renewEvery: ttl / 3, margin: max(ttl/10, 100*time.Millisecond), started: time.Now(),
		terms: map[int]*term{}, quiet: map[int]time.Time{}, gave: map[int]time.Time{}, failures: map[int]failures{}, bal: newBalance(),
		kick: make(chan struct{}, 1), beat: make(chan struct{}, 1),
	}, nil
}

// failures counts a partition's handler failures in a row.
type failures struct {
	n    int
	last time.Time
}

// Stats are the Manager's counters for metrics: owned_partitions is Owned,
// ownership_changes is Acquired + Lost + Released.
type Stats struct {
	Owned    int    // partitions held now
	Share    int    // partitions this node aims at (balance.go)
	Draining bool   // Drain(on) is in force
	Acquired uint64 // terms started
	Lost     uint64 // terms ended because the lease was lost
	Released uint64 // terms ended otherwise (handover, handler return, Run end)
}

// Stats returns the current counters.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	owned := len(m.terms)
	m.mu.Unlock()
	return Stats{Owned: owned, Share: int(m.target.Load()), Draining: m.draining.Load(), Acquired: m.acquired.Load(), Lost: m.lost.Load(), Released: m.released.Load()}
}

// Owned returns the leases held now, by partition.
func (m *Manager) Owned() []Lease {
	m.mu.Lock()
	out := make([]Lease, 0, len(m.terms))
	for _, t := range m.terms {
		out = append(out, t.current())
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition })
	return out
}

// Run takes every free partition the node wants, keeps them renewed,
// heartbeats node.<id> and watches the leases so a released or expired one
// is taken within about one renewal period. It returns when ctx ends, after
// every handler has returned; leases still held are then deleted (their
// handlers have stopped, so the next owner need not wait for the TTL).
func (m *Manager) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("cluster: Manager.Run called twice")
	}
	m.mu.Lock()
	m.lastMove = time.Now() // the first rebalancing handover waits a pause too
	m.mu.Unlock()
	m.log.Info("cluster_manager_started", "partitions", m.o.Partitions, "lease_ttl", m.ttl)
	m.loop(ctx)
	m.ended.Store(true)
	m.wg.Wait()
	m.goodbye()
	return nil
}

// loop is Run's single goroutine: it alone acquires, so two terms of one
// partition never start on this node.
func (m *Manager) loop(ctx context.Context) {
	w := m.rewatch(ctx) // nil if the broker is unreachable: retried every tick
	defer func() {
		if w != nil {
			w.Stop()
		}
	}()
	tick := time.NewTicker(m.renewEvery)
	defer tick.Stop()
	seen := map[int]time.Time{} // live lease keys, by when this node saw them written
	m.heartbeat(ctx)
	for {
		var updates <-chan jetstream.KeyValueEntry
		if w != nil {
			updates = w.Updates()
		}
		select {
		case <-ctx.Done():
			return
		case e, ok := <-updates:
			if !ok { // the watcher ended; the next tick starts another
				w = nil
				continue
			}
			m.observe(ctx, e, seen)
		case <-m.kick:
			m.scan(ctx, seen)
		case <-m.beat:
			m.heartbeat(ctx)
		case <-tick.C:
			if w == nil {
				w = m.rewatch(ctx)
			}
			m.heartbeat(ctx)
			m.scan(ctx, seen)
		}
	}
}

// observe applies one watched lease entry: a released or expired lease is
// tried at once; nil marks the end of the current values.
func (m *Manager) observe(ctx context.Context, e jetstream.KeyValueEntry, seen map[int]time.Time) {
	if e == nil {
		m.scan(ctx, seen)
		m.beatSoon() // with the share this view gives, not the first beat's zero
		return
	}
	if strings.HasPrefix(e.Key(), "node.") {
		before := m.share()
		m.observeNode(e)
		if m.share() != before {
			// A join or a leave: take free partitions or give extras now
			// rather than at the next tick.
			m.scan(ctx, seen)
		}
		return
	}
	p, err := strconv.Atoi(strings.TrimPrefix(e.Key(), "lease."))
	if err != nil {
		return
	}
	if e.Operation() == jetstream.KeyValuePut {
		seen[p] = time.Now()
		m.markHeld(p)
		return
	}
	delete(seen, p)
	m.markFree(p)
	if !m.wantMore(p) {
		// Left to a node under its share; if none takes it, this one
		// will once the grace is over (wantMore).
		time.AfterFunc(m.freeGrace(), m.kickLoop)
		return
	}
	m.tryAcquire(ctx, p)
}

// rewatch starts a watcher, first or in place of one whose channel closed;
// nil if that fails, to be tried again on the next tick. Meanwhile scans on the
// last view still take partitions whose lease was seen go stale.
func (m *Manager) rewatch(ctx context.Context) jetstream.KeyWatcher {
	w, err := m.b.kv.WatchFiltered(ctx, []string{"lease.*", "node.*"})
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("cluster_watch_failed", "err", err)
		}
		return nil
	}
	m.log.Info("cluster_watch_started")
	return w
}

// scan tries every wanted partition that has no lease in view, or whose
// lease has not been written for longer than a TTL (its expiry marker is
// late or was missed), then hands one over if this node holds more than
// its share.
func (m *Manager) scan(ctx context.Context, seen map[int]time.Time) {
	m.pruneMembers()
	m.share()
	graceDue := false // a free partition left to others for now
	for p := range m.o.Partitions {
		if at, ok := seen[p]; ok && time.Since(at) <= m.ttl {
			continue
		}
		// No lease in view, or one not rewritten for a TTL (its expiry
		// marker is late or was missed): free either way.
		m.markFree(p)
		if !m.wantMore(p) {
			graceDue = true
			continue
		}
		m.tryAcquire(ctx, p)
	}
	if graceDue {
		time.AfterFunc(m.freeGrace(), m.kickLoop)
	}
	m.rebalance(ctx)
}

func (m *Manager) tryAcquire(ctx context.Context, p int) {
	if m.paused.Load() || ctx.Err() != nil || !m.wantMore(p) {
		return
	}
	m.mu.Lock()
	_, held := m.terms[p]
	quietUntil, gaveUntil := m.quiet[p], m.gave[p]
	owned := len(m.terms)
	m.mu.Unlock()
	// A partition given away to even the spread is not taken back while
	// this node holds its share, unless nobody took it within the grace.
	gaveBlocks := time.Now().Before(gaveUntil) && owned >= m.share() && !m.freePast(p, m.freeGrace())
	if held || time.Now().Before(quietUntil) || gaveBlocks {
		return
	}
	actx, cancel := context.WithTimeout(ctx, m.ttl)
	defer cancel()
	l, sent, err := m.b.acquire(actx, p, m.o.Node, m.ttl)
	switch {
	case errors.Is(err, errLeaseHeld):
		return
	case errors.Is(err, ErrLeaseLost):
		m.log.Info("cluster_acquire_lost_race", "partition", p, "err", err)
		return
	case err != nil:
		if ctx.Err() == nil {
			m.log.Warn("cluster_acquire_failed", "partition", p, "err", err)
		}
		return
	}
	validUntil := sent.Add(m.ttl - m.margin)
	if !time.Now().Before(validUntil) {
		m.log.Warn("cluster_acquire_too_slow", "partition", p, "epoch", l.Epoch)
		return
	}
	m.start(ctx, l, sent, validUntil)
}

// heartbeat writes node.<id> with a TTL, listing the partitions held.
func (m *Manager) heartbeat(ctx context.Context) {
	if m.paused.Load() {
		return
	}
	owned := []int{}
	for _, l := range m.Owned() {
		owned = append(owned, l.Partition)
	}
	doc := m.ownDoc()
	doc.V, doc.Node, doc.StartedAt, doc.Owned = docVersion, m.o.Node, m.started.UTC(), owned
	doc.Share, doc.Moving, doc.Resting = int(m.target.Load()), m.handingOver(), m.resting()
	hctx, cancel := context.WithTimeout(ctx, m.renewEvery)
	defer cancel()
	if _, err := m.b.putTTL(hctx, nodeKey(m.o.Node), encode(doc), m.ttl); err != nil && ctx.Err() == nil {
		m.log.Warn("cluster_heartbeat_failed", "err", err)
	}
}

// goodbye removes node.<id> after Run, so other nodes count one fewer at once.
func (m *Manager) goodbye() {
	ctx, cancel := context.WithTimeout(context.Background(), m.renewEvery)
	defer cancel()
	if err := m.b.kv.Delete(ctx, nodeKey(m.o.Node)); err != nil {
		m.log.Warn("cluster_node_delete_failed", "err", err)
	}
	m.log.Info("cluster_manager_stopped")
}

// Release gives partition p up gracefully: it closes the handler's
// handover channel, waits for the handler to return, then deletes the
// lease at its revision so a standby takes the partition at once. This
// node leaves p to others for one lease TTL. If ctx ends first, the
// handler's ctx is cancelled and Release returns ctx's error; the lease is
// still deleted once the handler returns.
func (m *Manager) Release(ctx context.Context, p int) error {
	return m.release(ctx, p, restQuiet)
}

// release is Release with the rest this node takes from p afterwards (see
// Manager.rest); the first release of a term decides it.
func (m *Manager) release(ctx context.Context, p int, r rest) error {
	m.mu.Lock()
	t := m.terms[p]
	m.mu.Unlock()
	if t == nil {
		return fmt.Errorf("cluster: release partition %d: %w", p, ErrNotOwned)
	}
	t.handoverOnce.Do(func() {
		t.releasedAs.Store(int32(r))
		close(t.handover)
	})
	select {
	case <-t.done:
		if t.err != nil && !errors.Is(t.err, errHandlerReturned) {
			return fmt.Errorf("cluster: release partition %d: %w", p, t.err)
		}
		return nil
	case <-ctx.Done():
		t.cancel(fmt.Errorf("handover of partition %d cut short: %w", p, context.Cause(ctx)))
		return ctx.Err()
	}
}

// resting lists the partitions this node gave up and does not take back
// before their quiet time ends.
func (m *Manager) resting() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int
	for p, until := range m.quiet {
		if time.Now().Before(until) {
			out = append(out, p)
		}
	}
	sort.Ints(out)
	return out
}

// handingOver lists the partitions being handed over now.
func (m *Manager) handingOver() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int
	for p, t := range m.terms {
		if t.releasedAs.Load() != 0 {
			out = append(out, p)
		}
	}
	sort.Ints(out)
	return out
}

// ReleaseAll releases every partition held, in parallel (see Release).
func (m *Manager) ReleaseAll(ctx context.Context) error {
	return m.releaseAll(ctx, restQuiet)
}

func (m *Manager) releaseAll(ctx context.Context, r rest) error {
	owned := m.Owned()
	errs := make([]error, len(owned))
	var wg sync.WaitGroup
	for i, l := range owned {
		wg.Go(func() { errs[i] = m.release(ctx, l.Partition, r) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
