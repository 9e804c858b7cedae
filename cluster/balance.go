package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Spreading partitions over gateways (DESIGN.md "Ownership, failover and
// scale-out", point 7). Each Manager decides alone, from what the bucket
// shows it, how many partitions it should hold; nothing is negotiated.
//
// Membership is the node.<id> heartbeats: a node counts while its key is
// there (written every TTL/3 with the lease TTL; the server's marker
// removes it within a TTL of the node's death, goodbye at once). Draining
// nodes and followers are members that hold nothing.
//
// Shares: with n active nodes sorted by id, the node of rank r aims at
// P/n partitions, plus one when r < P mod n. That is ceil(P/n) for the
// first P mod n nodes and floor(P/n) for the others, so once every node
// sees the same members the spread differs by at most one and the shares
// add up to P exactly.
//
// Moves:
//   - A node under its share takes a free partition at once (a release
//     or an expiry marker it watched, or a scan).
//   - A node over its share hands one partition over (Release: seal,
//     archive, record, purge, delete the lease) when another node's
//     heartbeat shows it under its share and not resting on that
//     partition, then waits ManagerOptions.MovePause before the next. It
//     does not take that partition back for a TTL while it holds its
//     share, so the under-share node gets it; if its share grows meanwhile
//     (a node left), it takes it back at once.
//   - A partition free for longer than freeGrace (TTL/6) is taken by any
//     node that is not draining, whatever its share: a partition whose
//     handler failed, or two nodes that disagree about the members, must
//     not leave it without an owner. The share then moves it on.
//
// Races, and why they are safe: every move is a Release by the owner and a
// Create by a taker (see the package doc), so no partition is ever owned
// twice whatever the members look like; views that disagree can only
// delay a move or make one partition move twice. A node that joins and a
// node that leaves at the same time change every share once; each node
// then moves at most |its holding - its share| partitions.

// member is one node.<id> heartbeat as the loop last saw it.
type member struct {
	doc  nodeDoc
	seen time.Time // local time the heartbeat was watched
}

// balance is the loop goroutine's view of the members and of free
// partitions; only that goroutine touches it.
type balance struct {
	members   map[string]member
	freeSince map[int]time.Time // partitions seen without a lease, since when
}

func newBalance() *balance {
	return &balance{members: map[string]member{}, freeSince: map[int]time.Time{}}
}

// observeNode applies a watched node.<id> entry.
func (m *Manager) observeNode(e jetstream.KeyValueEntry) {
	id := strings.TrimPrefix(e.Key(), "node.")
	if id == m.o.Node {
		return // this node's own state is in the Manager
	}
	if e.Operation() != jetstream.KeyValuePut {
		delete(m.bal.members, id)
		return
	}
	var doc nodeDoc
	if err := decode(e.Key(), e.Value(), &doc, &doc.V); err != nil {
		m.log.Warn("cluster_heartbeat_unreadable", "key", e.Key(), "err", err)
		return
	}
	m.bal.members[id] = member{doc: doc, seen: time.Now()}
}

// pruneMembers forgets heartbeats older than a TTL whose expiry marker
// this node missed.
func (m *Manager) pruneMembers() {
	for id, mb := range m.bal.members {
		if time.Since(mb.seen) > m.ttl+m.margin {
			delete(m.bal.members, id)
		}
	}
}

// share computes this node's share of the partitions from the members in
// view (see above) and stores it for heartbeats and Stats.
func (m *Manager) share() int {
	s := shareOf(m.o.Node, m.active(), m.o.Partitions)
	m.target.Store(int64(s))
	return s
}

// active lists the nodes that hold partitions (neither draining, failing
// nor followers), this one included, sorted.
func (m *Manager) active() []string {
	var ids []string
	if m.ownDoc().active() {
		ids = append(ids, m.o.Node)
	}
	for id, mb := range m.bal.members {
		if mb.doc.active() {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// ownDoc is this node's state as its heartbeat states it, without the
// lists.
func (m *Manager) ownDoc() nodeDoc {
	return nodeDoc{Draining: m.draining.Load(), Follower: m.o.Follower, Failing: m.failing()}
}

// active reports whether the node takes a share of the partitions.
func (d nodeDoc) active() bool { return !d.Draining && !d.Follower && !d.Failing }

// shareOf is node's share of partitions among active (sorted): see above.
func shareOf(node string, active []string, partitions int) int {
	rank := slices.Index(active, node)
	if rank < 0 {
		return 0
	}
	s := partitions / len(active)
	if rank < partitions%len(active) {
		s++
	}
	return s
}

// takerFor reports whether another active node holds less than its share
// and would take p (it did not give p up within a TTL), by its last
// heartbeat. A handover with no taker would only leave p free.
func (m *Manager) takerFor(p int) bool {
	active := m.active()
	for _, id := range active {
		mb, ok := m.bal.members[id]
		if !ok {
			continue // this node
		}
		if len(mb.doc.Owned) < shareOf(id, active, m.o.Partitions) && !slices.Contains(mb.doc.Resting, p) {
			return true
		}
	}
	return false
}

// wantMore reports whether this node should try to take free partition p
// now: under its share, or p has been free for longer than freeGrace.
func (m *Manager) wantMore(p int) bool {
	if m.o.Follower || m.draining.Load() || !m.o.Want(p) {
		return false
	}
	if m.ownedCount() < m.share() {
		return true
	}
	return m.freePast(p, m.freeGrace())
}

// freePast reports whether p has been seen free for at least d.
func (m *Manager) freePast(p int, d time.Duration) bool {
	since, ok := m.bal.freeSince[p]
	return ok && time.Since(since) >= d
}

// ownedCount is how many partitions this node holds.
func (m *Manager) ownedCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.terms)
}

// freeGrace is how long a free partition is left to the nodes under their
// share before any node takes it: far longer than a watcher's lag (the
// under-share node sees the release within milliseconds), and short
// against the TTL, since the partition's messages wait meanwhile.
func (m *Manager) freeGrace() time.Duration { return m.renewEvery / 2 }

// maxFailedRest bounds the rest after failures in a row, in TTLs.
const maxFailedRest = 16

// failingAfter is how many failed terms in a row, on any partitions, make
// a node count itself out of the shares (failing) until a term runs a TTL
// or maxFailedRest TTLs pass without a failure: a node that cannot run
// partitions (a broken disk, credentials refused) is then handed none,
// and takes only what nobody else takes.
const failingAfter = 3

// failing reports whether this node counts itself out for failures.
func (m *Manager) failing() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.streak.n >= failingAfter && time.Since(m.streak.last) < maxFailedRest*m.ttl
}

// rest is how a term's end keeps this node off its partition for a while.
type rest int32

const (
	// restFailed: the handler returned on its own (a failure). The node
	// rests a TTL after the first failure in a row, twice as long after
	// each next one up to maxFailedRest TTLs, so the others stop handing
	// it a partition it cannot run (it shows its rests); the failures also
	// count toward failing.
	restFailed rest = iota
	// restQuiet: given up by Release; a TTL, so that another node takes it.
	restQuiet
	// restGave: handed over to even the spread; not taken back for a TTL
	// while this node holds its share, at once if its share grows.
	restGave
	// restNone: given away by a drain, which takes nothing while it lasts;
	// lifting the drain makes the partition this node's to take at once.
	restNone
)

// inARow counts one more failure, restarting the count when the last one
// is more than window ago.
func (f *failures) inARow(window time.Duration) {
	if time.Since(f.last) > window {
		f.n = 0
	}
	f.n++
	f.last = time.Now()
}

// rest applies the end of a term of p that was not lost and lasted
// lasted. Called under m.mu.
func (m *Manager) rest(p int, r rest, lasted time.Duration) {
	now := time.Now()
	switch r {
	case restFailed:
		m.streak.inARow(maxFailedRest * m.ttl)
		f := m.failures[p]
		f.inARow(maxFailedRest * m.ttl)
		m.failures[p] = f
		m.quiet[p] = now.Add(m.ttl * time.Duration(min(1<<(f.n-1), maxFailedRest)))
		return
	case restQuiet:
		m.quiet[p] = now.Add(m.ttl)
	case restGave:
		m.gave[p] = now.Add(m.ttl)
	}
	if lasted >= m.ttl {
		m.streak = failures{} // a term that ran ends a streak of failures
	}
}

// beatSoon asks the loop for a heartbeat: the others decide their moves
// on what this node holds and rests on, so the change should reach them
// now rather than at the next renewal. The loop alone writes heartbeats,
// so they land in order.
func (m *Manager) beatSoon() {
	select {
	case m.beat <- struct{}{}:
	default:
	}
}

// kickLoop asks the loop for a scan.
func (m *Manager) kickLoop() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// markFree notes that p has no lease in view; markHeld that it has one.
func (m *Manager) markFree(p int) {
	if _, ok := m.bal.freeSince[p]; !ok {
		m.bal.freeSince[p] = time.Now()
	}
}

func (m *Manager) markHeld(p int) { delete(m.bal.freeSince, p) }

// rebalance hands one partition over when this node holds more than its
// share and the last move is at least MovePause ago. The handover runs on
// its own goroutine; the loop goes on watching meanwhile.
func (m *Manager) rebalance(ctx context.Context) {
	if m.paused.Load() || m.moving.Load() || ctx.Err() != nil {
		return
	}
	owned := m.Owned()
	share := m.share()
	if len(owned) <= share {
		return
	}
	m.mu.Lock()
	last := m.lastMove
	m.mu.Unlock()
	if time.Since(last) < m.o.MovePause {
		return
	}
	// The highest partition a taker would take goes first: nodes with the
	// same view then agree on which partitions stay.
	p := -1
	for i := len(owned) - 1; i >= 0 && p < 0; i-- {
		if m.takerFor(owned[i].Partition) {
			p = owned[i].Partition
		}
	}
	if p < 0 {
		return
	}
	m.moving.Store(true)
	m.wg.Go(func() {
		defer m.moving.Store(false)
		m.log.Info("cluster_rebalance_handover", "partition", p, "owned", len(owned), "share", share)
		err := m.release(ctx, p, restGave)
		m.mu.Lock()
		m.lastMove = time.Now()
		m.mu.Unlock()
		time.AfterFunc(m.o.MovePause, m.kickLoop)
		if err != nil && !errors.Is(err, ErrNotOwned) && ctx.Err() == nil {
			m.log.Warn("cluster_rebalance_handover_failed", "partition", p, "err", err)
		}
	})
}

// Drain makes this node give every partition away and take none (on), or
// take its share again (off). It writes the heartbeat first, so the other
// nodes count this one out before its leases go and take them at once;
// with on it returns once every partition is released (see ReleaseAll).
func (m *Manager) Drain(ctx context.Context, on bool) error {
	if m.o.Follower {
		return errors.New("cluster: a follower holds no partitions to drain")
	}
	if m.ended.Load() {
		return errors.New("cluster: the partition manager has stopped")
	}
	m.draining.Store(on)
	if on {
		m.target.Store(0)
	}
	m.log.Info("cluster_drain", "on", on)
	// Written here so that the others count this node out before its
	// leases go; the loop writes one after it too, so that a heartbeat the
	// loop built before the change cannot be the last word.
	m.heartbeat(ctx)
	m.beatSoon()
	if !on {
		return nil
	}
	// An acquisition under way when the drain began may start its term
	// after ReleaseAll took its list: release until nothing is held.
	for range 5 {
		if len(m.Owned()) == 0 {
			return nil
		}
		if err := m.releaseAll(ctx, restNone); err != nil {
			return fmt.Errorf("cluster: drain: %w", err)
		}
	}
	if n := len(m.Owned()); n > 0 {
		return fmt.Errorf("cluster: drain: %d partitions still held", n)
	}
	return nil
}

// Draining reports whether Drain(on) is in force.
func (m *Manager) Draining() bool { return m.draining.Load() }
