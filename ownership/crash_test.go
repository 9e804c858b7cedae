package ownership

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// termOf is one owner's term of partition 0 on its own store, over the
// shared records and ingest stream.
type termOf struct {
	store   *fakeStore
	runner  *Runner
	crashed atomic.Bool
	res     chan error
	cancel  context.CancelFunc
}

// runOwner starts a term with a crash injected at step (none when
// empty).
func runOwner(t *testing.T, recs Records, in *fakeIngest, epoch uint64, step string) *termOf {
	t.Helper()
	o := &termOf{store: newFakeStore(), res: make(chan error, 1)}
	o.runner = NewRunner(Options{Records: recs, Store: o.store, Ingest: in, PartitionOf: onePartition, ArchiveInterval: 5 * time.Millisecond})
	o.runner.crash = func(s string) error {
		if s == step {
			o.crashed.Store(true)
			return errors.New("injected")
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	o.cancel = cancel
	go func() { o.res <- o.runner.Acquired(ctx, newLease(0, epoch), nil) }()
	t.Cleanup(cancel)
	return o
}

// stop ends the term as a SIGKILL would (no handover) and returns what
// Acquired returned.
func (o *termOf) stop(t *testing.T) error {
	t.Helper()
	o.cancel()
	select {
	case err := <-o.res:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("the term did not end")
		return nil
	}
}

// owning waits until the term's takeover is done.
func (o *termOf) owning(t *testing.T) {
	t.Helper()
	waitFor(t, "the takeover", func() bool { return len(o.runner.Owned()) == 1 })
}

// checkNothingLost checks the invariants that make a takeover lose and
// double nothing: AOF_INGEST lost nothing the record does not cover, the
// record covers nothing Tier 2 does not hold, and the new owner holds
// exactly what the record covers, so that it re-reads the rest.
func checkNothingLost(t *testing.T, recs Records, in *fakeIngest, inTier2 uint64, owner *fakeStore) {
	t.Helper()
	rec, _, _ := recs.Get(context.Background(), "orders")
	if purged := in.purgedThrough("orders"); purged > rec.Through {
		t.Fatalf("AOF_INGEST purged through %d, the record covers %d", purged, rec.Through)
	}
	if rec.Through > inTier2 {
		t.Fatalf("the record covers %d, Tier 2 holds %d", rec.Through, inTier2)
	}
	if last, _ := owner.LastExtID("orders"); last != rec.Through {
		t.Fatalf("the new owner holds through %d, the record covers %d: it would re-read from %d", last, rec.Through, last+1)
	}
}

// A crash at each step of archiving (after Tier 2 holds the records,
// before and after the record is written) and of a takeover (after the
// fence, after the adoption, after the purge): the next owner loses
// nothing acknowledged and stores nothing twice.
func TestACrashAtEachStepLosesNothingAndStoresNothingTwice(t *testing.T) {
	for _, step := range []string{"archive.before_record", "archive.before_purge"} {
		t.Run(step, func(t *testing.T) {
			recs, in := newMemRecords(), newFakeIngest()
			old := runOwner(t, recs, in, 1, step)
			old.owning(t)
			old.store.store("orders", 40)
			old.store.archive("orders", 30) // Tier 2 holds 30; the crash comes next
			waitFor(t, "the crash", old.crashed.Load)
			if err := old.stop(t); !errors.Is(err, errCrashed) {
				t.Fatalf("the term ended with %v, want the injected crash", err)
			}
			if purged := in.purgedThrough("orders"); purged != 0 {
				t.Fatalf("purged through %d after crashing before the purge", purged)
			}
			next := runOwner(t, recs, in, 2, "")
			next.owning(t)
			checkNothingLost(t, recs, in, 30, next.store)
		})
	}
	for _, step := range []string{"takeover.after_fence", "takeover.after_adopt", "takeover.after_purge"} {
		t.Run(step, func(t *testing.T) {
			recs, in := newMemRecords(), newFakeIngest()
			old := runOwner(t, recs, in, 1, "")
			old.owning(t)
			old.store.store("orders", 40)
			old.store.archive("orders", 20)
			waitFor(t, "20 archived and purged", func() bool { return in.purgedThrough("orders") == 20 })
			old.stop(t)
			second := runOwner(t, recs, in, 2, step)
			waitFor(t, "the crash", second.crashed.Load)
			if err := second.stop(t); !errors.Is(err, errCrashed) {
				t.Fatalf("the takeover ended with %v, want the injected crash", err)
			}
			next := runOwner(t, recs, in, 3, "")
			next.owning(t)
			checkNothingLost(t, recs, in, 20, next.store)
			if rec, _, _ := recs.Get(context.Background(), "orders"); rec.Epoch != 3 {
				t.Fatalf("record epoch %d after the third takeover, want 3", rec.Epoch)
			}
		})
	}
}
