package cluster

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func TestEnsureBucketIsIdempotentAndEnablesKeyTTLs(t *testing.T) {
	ctx := testCtx(t)
	b, n := testBucket(t)
	again := ensureOn(t, n.JetStream(t))
	st, err := again.KV().Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Bucket() != DefaultBucket || st.History() != 1 || st.LimitMarkerTTL() != markerTTL {
		t.Fatalf("bucket %s history %d marker TTL %s", st.Bucket(), st.History(), st.LimitMarkerTTL())
	}
	if _, err := b.kv.Create(ctx, "probe", []byte("x"), jetstream.KeyTTL(time.Second)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "a key with a 1s TTL expires", func() bool {
		_, err := b.kv.Get(ctx, "probe")
		return errors.Is(err, jetstream.ErrKeyNotFound)
	})
}

func TestLeaseAcquireRenewRelease(t *testing.T) {
	ctx := testCtx(t)
	b, _ := testBucket(t)
	a, _, err := b.acquire(ctx, 3, "gw-a", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if a.Epoch != 1 || a.Node != "gw-a" || a.Partition != 3 {
		t.Fatalf("first lease %+v, want epoch 1 of gw-a on partition 3", a)
	}
	if _, _, err := b.acquire(ctx, 3, "gw-b", 5*time.Second); !errors.Is(err, errLeaseHeld) {
		t.Fatalf("second taker: %v, want errLeaseHeld", err)
	}
	renewed, _, err := b.renew(ctx, a, time.Now(), 5*time.Second)
	if err != nil || renewed.Revision <= a.Revision {
		t.Fatalf("renew: %+v, %v", renewed, err)
	}
	if _, _, err := b.renew(ctx, a, time.Now(), 5*time.Second); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renew at a stale revision: %v, want ErrLeaseLost", err)
	}
	leases, err := b.ListLeases(ctx)
	if err != nil || len(leases) != 1 || leases[0].Lease != renewed {
		t.Fatalf("ListLeases = %+v, %v; want just %+v", leases, err, renewed)
	}
	if err := b.release(ctx, renewed); err != nil {
		t.Fatal(err)
	}
	next, _, err := b.acquire(ctx, 3, "gw-b", 5*time.Second)
	if err != nil || next.Epoch != 2 {
		t.Fatalf("taker after release: %+v, %v; want epoch 2 at once", next, err)
	}
}

// A zombie (an owner that stopped renewing past its TTL) can neither renew
// nor update an archived-through record once another node took over.
func TestZombieRenewAndArchivedUpdateAreFenced(t *testing.T) {
	ctx := testCtx(t)
	b, _ := testBucket(t)
	zombie, _, err := b.acquire(ctx, 0, "gw-a", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := b.UpdateArchived(ctx, "orders", 0, Archived{Epoch: zombie.Epoch, Through: 10, Offset: 10})
	if err != nil {
		t.Fatal(err)
	}
	var taker Lease
	eventually(t, 5*time.Second, "gw-b takes the expired lease", func() bool {
		taker, _, err = b.acquire(ctx, 0, "gw-b", time.Second)
		return err == nil
	})
	if taker.Epoch != zombie.Epoch+1 {
		t.Fatalf("taker epoch %d, want %d", taker.Epoch, zombie.Epoch+1)
	}
	// Takeover: the new owner rewrites the record unchanged under its epoch.
	a, trev, err := b.GetArchived(ctx, "orders")
	if err != nil || trev != rev {
		t.Fatalf("GetArchived: %+v rev %d, %v", a, trev, err)
	}
	a.Epoch = taker.Epoch
	if _, err := b.UpdateArchived(ctx, "orders", trev, a); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.renew(ctx, zombie, time.Now(), time.Second); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("zombie renew: %v, want ErrLeaseLost", err)
	}
	if _, err := b.UpdateArchived(ctx, "orders", rev, Archived{Epoch: zombie.Epoch, Through: 20}); !errors.Is(err, ErrFenced) {
		t.Fatalf("zombie UpdateArchived: %v, want ErrFenced", err)
	}
	if got, _, _ := b.GetArchived(ctx, "orders"); got.Through != 10 || got.Epoch != taker.Epoch {
		t.Fatalf("record after the zombie's attempt: %+v", got)
	}
}

// Many takers race for one partition, round after round: each round exactly
// one wins, and epochs strictly increase although the lease key is deleted
// between rounds.
func TestRacingTakersWinOneAtATimeWithIncreasingEpochs(t *testing.T) {
	ctx := testCtx(t)
	b, n := testBucket(t)
	const takers, rounds = 6, 15
	buckets := make([]*Bucket, takers)
	for i := range buckets {
		buckets[i] = ensureOn(t, n.JetStream(t)) // one connection each, like separate gateways
	}
	var last uint64
	for round := range rounds {
		wins := make(chan Lease, takers)
		var wg sync.WaitGroup
		for i, tb := range buckets {
			wg.Go(func() {
				l, _, err := tb.acquire(ctx, 7, nodeName(i), 5*time.Second)
				switch {
				case err == nil:
					wins <- l
				case !errors.Is(err, errLeaseHeld) && !errors.Is(err, ErrLeaseLost):
					t.Errorf("round %d taker %d: %v", round, i, err)
				}
			})
		}
		wg.Wait()
		close(wins)
		var won []Lease
		for l := range wins {
			won = append(won, l)
		}
		if len(won) != 1 {
			t.Fatalf("round %d: %d winners %+v, want 1", round, len(won), won)
		}
		if won[0].Epoch <= last {
			t.Fatalf("round %d: epoch %d after %d", round, won[0].Epoch, last)
		}
		last = won[0].Epoch
		if err := b.release(ctx, won[0]); err != nil {
			t.Fatal(err)
		}
	}
}

func nodeName(i int) string { return "gw-" + string(rune('a'+i)) }

// A renewal whose reply was lost but which the server stored leaves the
// owner one revision behind; the owner adopts the key's revision because
// the key still holds its node and epoch, and not once another owns it.
func TestAdoptRevisionOnlyForThisTerm(t *testing.T) {
	ctx := testCtx(t)
	b, _ := testBucket(t)
	l, _, err := b.acquire(ctx, 1, "gw-a", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	stored, _, err := b.renew(ctx, l, time.Now(), time.Second) // "reply lost": keep using l
	if err != nil {
		t.Fatal(err)
	}
	got, ok := b.adoptRevision(ctx, l)
	if !ok || got.Revision != stored.Revision {
		t.Fatalf("adoptRevision = %+v, %v; want revision %d", got, ok, stored.Revision)
	}
	eventually(t, 5*time.Second, "gw-b takes the expired lease", func() bool {
		_, _, err := b.acquire(ctx, 1, "gw-b", time.Second)
		return err == nil
	})
	if _, ok := b.adoptRevision(ctx, got); ok {
		t.Fatal("adopted another term's lease")
	}
}

func TestArchivedRecords(t *testing.T) {
	ctx := testCtx(t)
	b, _ := testBucket(t)
	a, rev, err := b.GetArchived(ctx, "never-archived")
	if err != nil || rev != 0 || a != (Archived{}) {
		t.Fatalf("absent record: %+v rev %d, %v", a, rev, err)
	}
	want := Archived{Epoch: 2, Through: 41, Offset: 40, Manifest: ManifestPosition{Epoch: 1, Chunk: 3, Offset: 512}, UpdatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	rev1, err := b.UpdateArchived(ctx, "orders", 0, want)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.UpdateArchived(ctx, "orders", 0, want); !errors.Is(err, ErrFenced) {
		t.Fatalf("second create: %v, want ErrFenced", err)
	}
	got, rev, err := b.GetArchived(ctx, "orders")
	if err != nil || rev != rev1 || got != want {
		t.Fatalf("GetArchived = %+v rev %d, %v; want %+v rev %d", got, rev, err, want, rev1)
	}
	want.Through = 90
	rev2, err := b.UpdateArchived(ctx, "orders", rev1, want)
	if err != nil || rev2 <= rev1 {
		t.Fatalf("update: rev %d, %v", rev2, err)
	}
	if _, err := b.UpdateArchived(ctx, "orders", rev1, want); !errors.Is(err, ErrFenced) {
		t.Fatalf("update at a stale revision: %v, want ErrFenced", err)
	}
	if _, err := b.UpdateArchived(ctx, "billing_eu-1", 0, Archived{Through: 5}); err != nil {
		t.Fatal(err)
	}
	all, err := b.ListArchived(ctx)
	if err != nil || len(all) != 2 || all["orders"] != want || all["billing_eu-1"].Through != 5 {
		t.Fatalf("ListArchived = %+v, %v", all, err)
	}
}
