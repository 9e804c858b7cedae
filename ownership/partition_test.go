package ownership

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memRecords is an in-memory Records with the bucket's revision rule.
type memRecords struct {
	mu   sync.Mutex
	recs map[string]Record
	revs map[string]uint64
	seq  uint64
}

func newMemRecords() *memRecords {
	return &memRecords{recs: map[string]Record{}, revs: map[string]uint64{}}
}

func (m *memRecords) Get(_ context.Context, s string) (Record, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.recs[s], m.revs[s], nil
}

func (m *memRecords) Update(_ context.Context, s string, rev uint64, r Record) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.revs[s] != rev {
		return 0, fmt.Errorf("record %s at %d, not %d: %w", s, m.revs[s], rev, ErrFenced)
	}
	m.seq++
	m.recs[s], m.revs[s] = r, m.seq
	return m.seq, nil
}

func (m *memRecords) List(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for s := range m.recs {
		out = append(out, s)
	}
	sort.Strings(out)
	return out, nil
}

// fakeStore is one gateway's store: per stream the epoch its local copy
// was written under, what it stored and what Tier 2 holds of it.
type fakeStore struct {
	mu       sync.Mutex
	local    map[string]uint64 // stream -> local epoch
	last     map[string]uint64
	archived map[string]uint64
	adopted  []string
	sealed   []string
	// archiveOnSeal makes a seal archive everything stored.
	archiveOnSeal bool
	// chain is the epoch of the chain Archived reports.
	chain uint64
}

func newFakeStore() *fakeStore {
	return &fakeStore{local: map[string]uint64{}, last: map[string]uint64{}, archived: map[string]uint64{}}
}

func (f *fakeStore) Streams() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for s := range f.local {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func (f *fakeStore) LocalEpoch(s string) (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.local[s]
	return e, ok
}

func (f *fakeStore) Adopt(_ context.Context, s string, r Record, epoch uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, open := f.local[s]; open {
		return errors.New("the stream is open in this store")
	}
	f.adopted = append(f.adopted, s)
	f.local[s], f.last[s], f.archived[s] = epoch, r.Through, r.Through
	return nil
}

func (f *fakeStore) SetEpoch(s string, e uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.local[s] = e
	return nil
}

func (f *fakeStore) Archived(s string) (Archived, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Archived{Through: f.archived[s], NextOffset: f.archived[s], Manifest: ManifestPosition{Epoch: f.chain}}, nil
}

func (f *fakeStore) LastExtID(s string) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last[s], nil
}

func (f *fakeStore) ArchiveNow(string) error { return nil }

func (f *fakeStore) NextOffset(s string) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last[s], nil
}

func (f *fakeStore) Seal(_ context.Context, s string, _ bool) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sealed = append(f.sealed, s)
	if f.archiveOnSeal {
		f.archived[s] = f.last[s]
	}
	return 1, nil
}

func (f *fakeStore) store(s string, through uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.local[s]; !ok {
		f.local[s] = 0
	}
	f.last[s] = max(f.last[s], through)
}

func (f *fakeStore) archive(s string, through uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.archived[s] = through
}

// fakeIngest records purges; Run blocks until ctx ends.
type fakeIngest struct {
	mu        sync.Mutex
	purged    map[string]uint64
	running   atomic.Int32
	failPurge bool
}

func newFakeIngest() *fakeIngest { return &fakeIngest{purged: map[string]uint64{}} }

func (f *fakeIngest) Run(ctx context.Context, _ int, _ func() bool) error {
	f.running.Add(1)
	defer f.running.Add(-1)
	<-ctx.Done()
	return nil
}

func (f *fakeIngest) Purge(_ context.Context, s string, through uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failPurge {
		return errors.New("purge refused")
	}
	f.purged[s] = max(f.purged[s], through)
	return nil
}

func (f *fakeIngest) purgedThrough(s string) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.purged[s]
}

type testLease struct {
	p     int
	epoch uint64
	valid atomic.Bool
}

func newLease(p int, epoch uint64) *testLease {
	l := &testLease{p: p, epoch: epoch}
	l.valid.Store(true)
	return l
}

func (l *testLease) Partition() int { return l.p }
func (l *testLease) Epoch() uint64  { return l.epoch }
func (l *testLease) Valid() bool    { return l.valid.Load() }

// onePartition puts every stream in partition 0.
func onePartition(string) int { return 0 }

type gatewayUnderTest struct {
	runner *Runner
	store  *fakeStore
	ingest *fakeIngest
}

func newGateway(recs Records) *gatewayUnderTest {
	st, in := newFakeStore(), newFakeIngest()
	r := NewRunner(Options{Records: recs, Store: st, Ingest: in, PartitionOf: onePartition, ArchiveInterval: 5 * time.Millisecond})
	return &gatewayUnderTest{runner: r, store: st, ingest: in}
}

// start runs lease on g until the returned stop is called (the lease is
// lost) or handover is closed; the result of Acquired arrives on the
// channel.
func (g *gatewayUnderTest) start(t *testing.T, lease Lease) (stop func(), result <-chan error) {
	stop, _, result = g.startWithHandover(t, lease)
	return stop, result
}

func (g *gatewayUnderTest) startWithHandover(t *testing.T, lease Lease) (stop, handover func(), result <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ho := make(chan struct{})
	res := make(chan error, 1)
	go func() { res <- g.runner.Acquired(ctx, lease, ho) }()
	waitFor(t, "partition running", func() bool { return g.ingest.running.Load() == 1 })
	t.Cleanup(cancel)
	return cancel, func() { close(ho) }, res
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestArchivedStreamIsRecordedThenPurged(t *testing.T) {
	recs := newMemRecords()
	g := newGateway(recs)
	stop, res := g.start(t, newLease(0, 1))
	g.store.store("orders", 40)
	g.store.archive("orders", 25)
	waitFor(t, "purge through 25", func() bool { return g.ingest.purgedThrough("orders") == 25 })
	rec, _, _ := recs.Get(context.Background(), "orders")
	if rec.Through != 25 || rec.Epoch != 1 {
		t.Fatalf("record = %+v, want through 25 at epoch 1", rec)
	}
	stop()
	if err := <-res; err != nil {
		t.Fatalf("Acquired = %v", err)
	}
}

func TestStatsCountWhatWaitsForTier2AndForHowLong(t *testing.T) {
	recs := newMemRecords()
	g := newGateway(recs)
	g.start(t, newLease(0, 1))
	g.store.store("orders", 40)
	g.store.archive("orders", 25)
	waitFor(t, "15 records waiting", func() bool { return g.runner.Stats().Unarchived == 15 })
	time.Sleep(30 * time.Millisecond)
	if lag := g.runner.Stats().ArchiveLag; lag < 20*time.Millisecond {
		t.Fatalf("archive lag %v while 15 records waited 30ms", lag)
	}
	g.store.archive("orders", 40)
	waitFor(t, "nothing waiting", func() bool { st := g.runner.Stats(); return st.Unarchived == 0 && st.ArchiveLag == 0 })
}

// Once this owner's own chain holds as much as the record's, the record
// moves to it, although nothing more was archived: the older chain may be
// pruned by a writer still at its epoch.
func TestTheRecordMovesToTheOwnersChainOnceItsAnchorIsInTier2(t *testing.T) {
	recs := newMemRecords()
	if _, err := recs.Update(context.Background(), "orders", 0, Record{Epoch: 1, Through: 30, NextOffset: 30, Manifest: ManifestPosition{Epoch: 1, Chunk: 4}}); err != nil {
		t.Fatal(err)
	}
	g := newGateway(recs)
	g.store.chain = 1
	g.start(t, newLease(0, 2))
	time.Sleep(30 * time.Millisecond)
	if rec, _, _ := recs.Get(context.Background(), "orders"); rec.Manifest.Epoch != 1 {
		t.Fatalf("record moved to chain %d before the owner's anchor was in Tier 2", rec.Manifest.Epoch)
	}
	g.store.mu.Lock()
	g.store.chain = 2 // the new owner's anchor is uploaded
	g.store.mu.Unlock()
	waitFor(t, "the record in the owner's chain", func() bool {
		rec, _, _ := recs.Get(context.Background(), "orders")
		return rec.Manifest.Epoch == 2 && rec.Through == 30 && rec.Epoch == 2
	})
}

func TestNothingStoredButNotArchivedIsPurged(t *testing.T) {
	recs := newMemRecords()
	g := newGateway(recs)
	g.start(t, newLease(0, 1))
	g.store.store("orders", 40)
	g.store.archive("orders", 10)
	waitFor(t, "purge through 10", func() bool { return g.ingest.purgedThrough("orders") == 10 })
	time.Sleep(30 * time.Millisecond)
	if got := g.ingest.purgedThrough("orders"); got != 10 {
		t.Fatalf("purged through %d with only 10 archived", got)
	}
}

// A crash after the record was written and before the purge leaves the
// messages in AOF_INGEST; the next owner's takeover purges them.
func TestTakeoverPurgesWhatACrashLeftBetweenRecordAndPurge(t *testing.T) {
	recs := newMemRecords()
	if _, err := recs.Update(context.Background(), "orders", 0, Record{Epoch: 1, Through: 30}); err != nil {
		t.Fatal(err)
	}
	g := newGateway(recs)
	g.start(t, newLease(0, 2))
	if got := g.ingest.purgedThrough("orders"); got != 30 {
		t.Fatalf("after takeover purged through %d, want 30", got)
	}
}

func TestTakeoverFencesTheOldOwner(t *testing.T) {
	recs := newMemRecords()
	old := newGateway(recs)
	oldLease := newLease(0, 1)
	_, oldRes := old.start(t, oldLease)
	old.store.store("orders", 20)
	old.store.archive("orders", 20)
	waitFor(t, "old owner archived", func() bool { return old.ingest.purgedThrough("orders") == 20 })

	// The old owner is paused past its lease (it still believes it holds
	// it) while a new owner takes over.
	newer := newGateway(recs)
	newer.start(t, newLease(0, 2))
	rec, _, _ := recs.Get(context.Background(), "orders")
	if rec.Epoch != 2 || rec.Through != 20 {
		t.Fatalf("record after takeover = %+v, want epoch 2 through 20", rec)
	}
	if len(newer.store.adopted) != 1 {
		t.Fatalf("new owner adopted %v, want orders rebuilt from Tier 2", newer.store.adopted)
	}

	// The zombie archives more: its record write is fenced, it stops,
	// and it purges nothing more.
	old.store.store("orders", 50)
	old.store.archive("orders", 50)
	select {
	case err := <-oldRes:
		if !errors.Is(err, ErrFenced) {
			t.Fatalf("zombie stopped with %v, want ErrFenced", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("zombie kept running after it was fenced")
	}
	if got := old.ingest.purgedThrough("orders"); got != 20 {
		t.Fatalf("zombie purged through %d, want no purge past 20", got)
	}
	rec, _, _ = recs.Get(context.Background(), "orders")
	if rec.Epoch != 2 || rec.Through != 20 {
		t.Fatalf("record = %+v after the zombie's write", rec)
	}
}

// A gateway resumed after its lease ran out on its own clock writes
// nothing, even before anyone else took the partition.
func TestExpiredLeaseWritesNoRecordAndPurgesNothing(t *testing.T) {
	recs := newMemRecords()
	g := newGateway(recs)
	lease := newLease(0, 1)
	_, res := g.start(t, lease)
	lease.valid.Store(false)
	g.store.store("orders", 10)
	g.store.archive("orders", 10)
	select {
	case err := <-res:
		if !errors.Is(err, ErrFenced) {
			t.Fatalf("stopped with %v, want ErrFenced", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("kept running with an expired lease")
	}
	if _, rev, _ := recs.Get(context.Background(), "orders"); rev != 0 {
		t.Fatal("a record was written with an expired lease")
	}
	if got := g.ingest.purgedThrough("orders"); got != 0 {
		t.Fatalf("purged through %d with an expired lease", got)
	}
}

func TestTakeoverKeepsOrRebuildsTheLocalCopy(t *testing.T) {
	const (
		keep    = "keep"
		adopt   = "adopt from Tier 2"
		restart = "restart the store"
	)
	cases := []struct {
		name   string
		local  *uint64 // epoch of the local copy, nil for none
		record *Record
		want   string
	}{
		{name: "no local copy, no record", want: keep},
		{name: "no local copy, archived data", record: &Record{Epoch: 3, Through: 9, Manifest: ManifestPosition{Epoch: 3}}, want: adopt},
		{name: "local copy written by the last archiver", local: ptr[uint64](3), record: &Record{Epoch: 3, Through: 9, Manifest: ManifestPosition{Epoch: 3}}, want: keep},
		{name: "a later owner fenced the record but archived nothing", local: ptr[uint64](3), record: &Record{Epoch: 4, Through: 9, Manifest: ManifestPosition{Epoch: 3}}, want: keep},
		{name: "a later owner archived further", local: ptr[uint64](2), record: &Record{Epoch: 3, Through: 9, Manifest: ManifestPosition{Epoch: 3}}, want: restart},
		{name: "local copy from before epochs, no record", local: ptr[uint64](0), want: keep},
		{name: "local copy never archived by anyone", local: ptr[uint64](4), want: keep},
		{name: "record of a takeover that archived nothing", local: ptr[uint64](1), record: &Record{Epoch: 4}, want: keep},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			recs := newMemRecords()
			if tc.record != nil {
				if _, err := recs.Update(context.Background(), "orders", 0, *tc.record); err != nil {
					t.Fatal(err)
				}
			}
			g := newGateway(recs)
			if tc.local != nil {
				g.store.local["orders"] = *tc.local
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			res := make(chan error, 1)
			go func() { res <- g.runner.Acquired(ctx, newLease(0, 5), nil) }()
			var err error
			select {
			case err = <-res:
			case <-time.After(200 * time.Millisecond):
			}
			got := keep
			switch {
			case errors.Is(err, ErrRestart):
				got = restart
			case err != nil:
				t.Fatalf("Acquired = %v", err)
			case len(g.store.adopted) == 1:
				got = adopt
			}
			if got != tc.want {
				t.Fatalf("takeover did %q, want %q", got, tc.want)
			}
			if e, ok := g.store.LocalEpoch("orders"); got != restart && ok && e != 5 {
				t.Fatalf("stream continues under epoch %d, want 5", e)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestHandoverArchivesAndPurgesEverything(t *testing.T) {
	recs := newMemRecords()
	g := newGateway(recs)
	g.store.archiveOnSeal = true
	_, handover, res := g.startWithHandover(t, newLease(0, 1))
	g.store.store("orders", 70)
	g.store.store("audit", 12)
	handover()
	if err := <-res; err != nil {
		t.Fatalf("Acquired after handover = %v", err)
	}
	if g.ingest.running.Load() != 0 {
		t.Fatal("the pipeline still runs after the handover")
	}
	for s, want := range map[string]uint64{"orders": 70, "audit": 12} {
		rec, _, _ := recs.Get(context.Background(), s)
		if rec.Through != want || g.ingest.purgedThrough(s) != want {
			t.Fatalf("%s: record %+v, purged %d; want both at %d", s, rec, g.ingest.purgedThrough(s), want)
		}
	}
}

func TestHandoverTimesOutWhenTier2LagsAndPurgesNothingUnarchived(t *testing.T) {
	recs := newMemRecords()
	g := newGateway(recs)
	g.runner.opts.HandoverTimeout = 100 * time.Millisecond
	_, handover, res := g.startWithHandover(t, newLease(0, 1))
	g.store.store("orders", 70)
	g.store.archive("orders", 40)
	handover()
	err := <-res
	if err == nil {
		t.Fatal("Handover succeeded while Tier 2 held 40 of 70")
	}
	if got := g.ingest.purgedThrough("orders"); got > 40 {
		t.Fatalf("purged through %d, only 40 archived", got)
	}
}
