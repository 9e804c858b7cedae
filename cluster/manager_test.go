package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/bop-aof/aof/integration/harness"
)

// ownership records which node runs a handler for each partition and fails
// the test the moment two run at once or an epoch does not increase.
type ownership struct {
	t      *testing.T
	mu     sync.Mutex
	owner  map[int]string
	epoch  map[int]uint64
	causes map[string][]error // per node, why each of its handlers ended
	// onHandover runs when a handler is asked to hand over, before it returns.
	onHandover func(l Lease)
}

func newOwnership(t *testing.T) *ownership {
	return &ownership{t: t, owner: map[int]string{}, epoch: map[int]uint64{}, causes: map[string][]error{}}
}

func (o *ownership) handler(node string) Handler {
	return HandlerFunc(func(ctx context.Context, l Lease, handover <-chan struct{}) {
		o.mu.Lock()
		if cur, busy := o.owner[l.Partition]; busy {
			o.t.Errorf("partition %d: %s acquired epoch %d while %s still runs it", l.Partition, node, l.Epoch, cur)
		}
		if l.Epoch <= o.epoch[l.Partition] {
			o.t.Errorf("partition %d: epoch %d after %d", l.Partition, l.Epoch, o.epoch[l.Partition])
		}
		o.owner[l.Partition], o.epoch[l.Partition] = node, l.Epoch
		o.mu.Unlock()
		var cause error
		select {
		case <-ctx.Done():
			cause = context.Cause(ctx)
		case <-handover:
			if o.onHandover != nil {
				o.onHandover(l)
			}
		}
		o.mu.Lock()
		delete(o.owner, l.Partition)
		o.causes[node] = append(o.causes[node], cause)
		o.mu.Unlock()
	})
}

func (o *ownership) owners() map[int]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[int]string{}
	for p, n := range o.owner {
		out[p] = n
	}
	return out
}

func (o *ownership) endings(node string) []error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]error(nil), o.causes[node]...)
}

// runningManager is a Manager with its own NATS connection, as a gateway
// process would have.
type runningManager struct {
	*Manager
	stop func()
	done chan error
}

func startManager(t *testing.T, n *harness.NATS, node string, partitions int, ttl time.Duration, h Handler) *runningManager {
	t.Helper()
	return startManagerWith(t, n, ManagerOptions{Node: node, Partitions: partitions, LeaseTTL: ttl}, h)
}

// startManagerWith starts a Manager with o (its Logger set here).
func startManagerWith(t *testing.T, n *harness.NATS, o ManagerOptions, h Handler) *runningManager {
	t.Helper()
	b := ensureOn(t, n.JetStream(t))
	o.Logger = testLogger()
	m, err := NewManager(b, o, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningManager{Manager: m, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- m.Run(ctx) }()
	t.Cleanup(func() { r.shutdown(t) })
	return r
}

// testLogger shows the managers' logs with go test -v.
func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return nil
}

func (r *runningManager) shutdown(t *testing.T) {
	r.stop()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		r.done <- nil // a second shutdown returns at once
	case <-time.After(10 * time.Second):
		t.Errorf("Run did not return within 10s of its ctx ending")
	}
}

func ownsAll(m *Manager, partitions int) func() bool {
	return func() bool { return len(m.Owned()) == partitions }
}

func TestManagerTakesEveryPartitionAndHeartbeats(t *testing.T) {
	ctx := testCtx(t)
	n := harness.StartNATS(t)
	own := newOwnership(t)
	m := startManager(t, n, "gw-a", 8, 2*time.Second, own.handler("gw-a"))
	eventually(t, 5*time.Second, "gw-a owns all 8 partitions", ownsAll(m.Manager, 8))
	b := ensureOn(t, n.JetStream(t))
	leases, err := b.ListLeases(ctx)
	if err != nil || len(leases) != 8 {
		t.Fatalf("ListLeases: %d leases, %v", len(leases), err)
	}
	for i, l := range leases {
		if l.Partition != i || l.Node != "gw-a" || l.Epoch != 1 {
			t.Errorf("lease %+v, want partition %d of gw-a at epoch 1", l.Lease, i)
		}
	}
	eventually(t, 3*time.Second, "the heartbeat lists the 8 partitions", func() bool {
		nodes, err := b.ListNodes(ctx)
		return err == nil && len(nodes) == 1 && nodes[0].Node == "gw-a" && len(nodes[0].Owned) == 8
	})
	if st := m.Stats(); st.Owned != 8 || st.Acquired != 8 || st.Lost != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Run's end stops the handlers and deletes the leases and the heartbeat.
	m.shutdown(t)
	if got := own.owners(); len(got) != 0 {
		t.Fatalf("handlers still running after Run returned: %v", got)
	}
	if leases, _ := b.ListLeases(ctx); len(leases) != 0 {
		t.Fatalf("leases left after Run: %+v", leases)
	}
	if nodes, _ := b.ListNodes(ctx); len(nodes) != 0 {
		t.Fatalf("heartbeat left after Run: %+v", nodes)
	}
}

// An owner that stops renewing (a paused process) loses every partition to
// the standby within a lease TTL plus one renewal period, its handlers'
// contexts are cancelled with ErrLeaseLost, and it cannot renew afterwards.
func TestStandbyTakesOverFromAnOwnerThatStopsRenewing(t *testing.T) {
	const partitions, ttl = 4, 3 * time.Second
	n := harness.StartNATS(t)
	own := newOwnership(t)
	// gw-a never hands a partition over to even the spread (an hour's
	// pause), so gw-b is a standby.
	a := startManagerWith(t, n, ManagerOptions{Node: "gw-a", Partitions: partitions, LeaseTTL: ttl, MovePause: time.Hour}, own.handler("gw-a"))
	eventually(t, 5*time.Second, "gw-a owns every partition", ownsAll(a.Manager, partitions))
	b := startManager(t, n, "gw-b", partitions, ttl, own.handler("gw-b"))
	time.Sleep(ttl) // b is a standby: nothing is free
	if got := b.Owned(); len(got) != 0 {
		t.Fatalf("standby took %+v from a live owner", got)
	}
	stale := a.Owned()
	a.paused.Store(true)
	paused := time.Now()
	eventually(t, ttl+b.renewEvery+time.Second, "gw-b owns every partition", ownsAll(b.Manager, partitions))
	took := time.Since(paused)
	if limit := ttl + b.renewEvery; took > limit {
		t.Errorf("takeover took %s, want at most the TTL plus one renewal period (%s)", took, limit)
	}
	t.Logf("takeover after %s (ttl %s)", took, ttl)
	if got := a.Owned(); len(got) != 0 {
		t.Fatalf("paused owner still holds %+v", got)
	}
	ends := own.endings("gw-a")
	if len(ends) != partitions {
		t.Fatalf("gw-a handlers ended %d times, want %d", len(ends), partitions)
	}
	for _, err := range ends {
		if !errors.Is(err, ErrLeaseLost) {
			t.Errorf("gw-a handler ended with %v, want ErrLeaseLost", err)
		}
	}
	if st := a.Stats(); st.Lost != partitions {
		t.Errorf("gw-a stats %+v, want %d lost", st, partitions)
	}
	// The resumed zombie's renewal is refused.
	a.paused.Store(false)
	if _, _, err := a.b.renew(testCtx(t), stale[0], time.Now(), ttl); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("zombie renew: %v, want ErrLeaseLost", err)
	}
}

// Release hands a partition over at once, far within the TTL: the handler
// sees the handover, returns, the lease is deleted and the standby takes it.
// Drain gives the rest away the same way and takes nothing back.
func TestReleaseHandsOverAtOnce(t *testing.T) {
	const partitions, ttl = 4, 10 * time.Second
	n := harness.StartNATS(t)
	own := newOwnership(t)
	var handedOver sync.Map
	own.onHandover = func(l Lease) { handedOver.Store(l.Partition, true) }
	a := startManagerWith(t, n, ManagerOptions{Node: "gw-a", Partitions: partitions, LeaseTTL: ttl, MovePause: time.Hour}, own.handler("gw-a"))
	eventually(t, 5*time.Second, "gw-a owns every partition", ownsAll(a.Manager, partitions))
	b := startManager(t, n, "gw-b", partitions, ttl, own.handler("gw-b"))
	time.Sleep(200 * time.Millisecond) // let b's watcher start
	start := time.Now()
	if err := a.Release(testCtx(t), 2); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "gw-b takes partition 2", func() bool { return own.owners()[2] == "gw-b" })
	t.Logf("handover of one partition in %s", time.Since(start))
	if _, ok := handedOver.Load(2); !ok {
		t.Fatal("the handler was not asked to hand over")
	}
	if err := a.Release(testCtx(t), 2); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("second release: %v, want ErrNotOwned", err)
	}
	start = time.Now()
	if err := a.Drain(testCtx(t), true); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "gw-b owns every partition", ownsAll(b.Manager, partitions))
	t.Logf("handover of the rest in %s", time.Since(start))
	time.Sleep(2 * ttl) // past the quiet time of the released partitions
	if got := a.Owned(); len(got) != 0 {
		t.Fatalf("draining gw-a took %+v back", got)
	}
}

// Two managers contend for the same partitions while one is paused now and
// then and partitions are released at random: no partition ever has two
// running handlers, and epochs strictly increase (checked by ownership).
func TestTwoManagersNeverOwnOnePartitionAtOnce(t *testing.T) {
	const partitions, ttl = 6, time.Second
	n := harness.StartNATS(t)
	own := newOwnership(t)
	ms := []*runningManager{
		startManager(t, n, "gw-a", partitions, ttl, own.handler("gw-a")),
		startManager(t, n, "gw-b", partitions, ttl, own.handler("gw-b")),
	}
	ctx := testCtx(t)
	for round := range 8 {
		m := ms[round%2]
		if round%3 == 0 {
			m.paused.Store(true)
			time.Sleep(ttl + 500*time.Millisecond)
			m.paused.Store(false)
		} else {
			for _, l := range m.Owned()[:len(m.Owned())/2] {
				if err := m.Release(ctx, l.Partition); err != nil && !errors.Is(err, ErrNotOwned) {
					t.Errorf("release %d: %v", l.Partition, err)
				}
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	eventually(t, 2*ttl+time.Second, "every partition has an owner again", func() bool {
		return len(ms[0].Owned())+len(ms[1].Owned()) == partitions
	})
	st := fmt.Sprintf("%+v %+v", ms[0].Stats(), ms[1].Stats())
	t.Logf("stats: %s", st)
}

// Valid reports a lapsed validity at once, before the manager's goroutine
// has cancelled the handler's context.
func TestValidChecksTheDeadlineSynchronously(t *testing.T) {
	tm := &term{validUntil: time.Now().Add(time.Hour)}
	ctx, cancel := context.WithCancelCause(context.WithValue(context.Background(), termKey{}, tm))
	defer cancel(nil)
	if err := Valid(ctx); err != nil {
		t.Fatalf("valid term: %v", err)
	}
	tm.validUntil = time.Now().Add(-time.Millisecond)
	if err := Valid(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("lapsed term: %v, want ErrLeaseLost", err)
	}
	cancel(errors.New("run ended"))
	if err := Valid(ctx); err == nil || err.Error() != "run ended" {
		t.Fatalf("cancelled term: %v, want the cause", err)
	}
	if err := Valid(context.Background()); err == nil {
		t.Fatal("Valid accepted a ctx that is no handler's")
	}
}

// A handler that returns on its own gives the partition up: the lease is
// deleted so the standby takes it at once, and this node leaves it alone
// for one TTL.
func TestHandlerReturningGivesThePartitionUp(t *testing.T) {
	const ttl = 3 * time.Second
	n := harness.StartNATS(t)
	own := newOwnership(t)
	var failOnce sync.Once
	failing := HandlerFunc(func(ctx context.Context, l Lease, handover <-chan struct{}) {
		failed := false
		failOnce.Do(func() { failed = true })
		if !failed {
			own.handler("gw-a").Acquired(ctx, l, handover)
		}
	})
	a := startManager(t, n, "gw-a", 1, ttl, failing)
	eventually(t, 3*time.Second, "gw-a's first handler returned", func() bool { return a.Stats().Released == 1 })
	if got := a.Owned(); len(got) != 0 {
		t.Fatalf("gw-a still holds %+v after its handler returned", got)
	}
	b := startManager(t, n, "gw-b", 1, ttl, own.handler("gw-b"))
	eventually(t, time.Second, "gw-b takes the given-up partition well within the TTL", func() bool { return len(b.Owned()) == 1 })
}

// An acquisition that fails after winning the Create deletes its lease, so
// nobody waits a TTL for a term that never started.
func TestFailedAcquisitionDeletesItsLease(t *testing.T) {
	ctx := testCtx(t)
	b, _ := testBucket(t)
	// An epoch document of a newer version: this gateway refuses to bump it.
	if _, err := b.kv.Create(ctx, epochKey(0), []byte(`{"v":2,"epoch":9}`)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.acquire(ctx, 0, "gw-a", 10*time.Second); err == nil {
		t.Fatal("acquired over an epoch document it cannot read")
	}
	if leases, err := b.ListLeases(ctx); err != nil || len(leases) != 0 {
		t.Fatalf("leases after the failed acquisition: %+v, %v", leases, err)
	}
}

// A broker restart shorter than the lease's validity costs no partition:
// failed renewals are retried until the validity ends, and the owner keeps
// watching the leases afterwards (a lease released after the restart is
// taken by the standby at once).
func TestOwnerKeepsItsLeasesAcrossABrokerRestart(t *testing.T) {
	const partitions, ttl = 4, 3 * time.Second
	n := harness.StartNATS(t)
	own := newOwnership(t)
	a := startManager(t, n, "gw-a", partitions, ttl, own.handler("gw-a"))
	eventually(t, 5*time.Second, "gw-a owns every partition", ownsAll(a.Manager, partitions))
	b := startManager(t, n, "gw-b", partitions, ttl, own.handler("gw-b"))
	n.Restart()
	time.Sleep(2 * ttl)
	if st := a.Stats(); st.Owned != partitions || st.Lost != 0 {
		t.Fatalf("gw-a after the restart: %+v", st)
	}
	if err := a.Release(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "gw-b takes the released partition at once", func() bool { return len(b.Owned()) == 1 })
}

// The server keeps whole seconds of a TTL, truncating; the manager counts
// with the same TTL, so its view of validity never outlasts the server's.
func TestNewManagerTruncatesTheTTLAndRefusesBadOptions(t *testing.T) {
	b := &Bucket{}
	m, err := NewManager(b, ManagerOptions{Node: "gw-a", Partitions: 16, LeaseTTL: 2500 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.ttl != 2*time.Second || m.renewEvery != m.ttl/3 || m.margin != 200*time.Millisecond {
		t.Fatalf("ttl %s, renew every %s, margin %s", m.ttl, m.renewEvery, m.margin)
	}
	for name, o := range map[string]ManagerOptions{
		"ttl under 1s":     {Node: "gw-a", Partitions: 16, LeaseTTL: 900 * time.Millisecond},
		"no partitions":    {Node: "gw-a", Partitions: 0, LeaseTTL: time.Second},
		"node id with dot": {Node: "gw.a", Partitions: 16, LeaseTTL: time.Second},
		"empty node id":    {Partitions: 16, LeaseTTL: time.Second},
	} {
		if _, err := NewManager(b, o, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
