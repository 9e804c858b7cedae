package memory

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/bop-aof/aof/tiers/tier2"
)

// The contract itself is TestBucketContract (package tier2); these are
// the fault hooks.

func TestFailPutsRefusesTheNextUploadsThenStores(t *testing.T) {
	ctx := context.Background()
	b := New()
	b.FailPuts(2, nil)
	for i := range 2 {
		_, err := tier2.UploadBytes(ctx, b, "k", []byte("data"), tier2.ObjectMeta{})
		if !errors.Is(err, ErrInjected) || tier2.Reason(err) != tier2.ReasonTransient {
			t.Fatalf("upload %d: %v, want the injected transient failure", i+1, err)
		}
		if ok, _ := b.Exists(ctx, "k"); ok {
			t.Fatalf("a refused upload stored the object")
		}
	}
	if _, err := tier2.UploadBytes(ctx, b, "k", []byte("data"), tier2.ObjectMeta{}); err != nil {
		t.Fatalf("third upload: %v", err)
	}
}

func TestFailGetsRefusesTheNextReadsWithTheGivenError(t *testing.T) {
	ctx := context.Background()
	b := New()
	if _, err := tier2.UploadBytes(ctx, b, "k", []byte("data"), tier2.ObjectMeta{}); err != nil {
		t.Fatal(err)
	}
	down := errors.New("503")
	b.FailGets(3, down)
	_, getErr := b.Get(ctx, "k", io.Discard)
	_, rangeErr := b.GetRange(ctx, "k", 0, 1)
	_, attrErr := b.Attributes(ctx, "k")
	for _, err := range []error{getErr, rangeErr, attrErr} {
		if !errors.Is(err, down) {
			t.Fatalf("read: %v, want the injected error", err)
		}
	}
	if _, err := b.Get(ctx, "k", io.Discard); err != nil {
		t.Fatalf("fourth read: %v", err)
	}
}

func TestFailDeletesKeepsTheObject(t *testing.T) {
	ctx := context.Background()
	b := New()
	if _, err := tier2.UploadBytes(ctx, b, "k", []byte("data"), tier2.ObjectMeta{}); err != nil {
		t.Fatal(err)
	}
	b.FailDeletes(1, nil)
	if err := b.Delete(ctx, "k"); !errors.Is(err, ErrInjected) {
		t.Fatalf("delete: %v, want the injected failure", err)
	}
	if ok, _ := b.Exists(ctx, "k"); !ok {
		t.Fatal("a refused delete removed the object")
	}
}

func TestCorruptKeepsTheMetadataAndDamagesTheBytes(t *testing.T) {
	ctx := context.Background()
	b := New()
	if b.Corrupt("missing", 0) {
		t.Fatal("Corrupt of a missing object reported success")
	}
	if _, err := tier2.UploadBytes(ctx, b, "k", []byte("data"), tier2.ObjectMeta{Records: 4}); err != nil {
		t.Fatal(err)
	}
	before, _ := b.Attributes(ctx, "k")
	if b.Corrupt("k", 4) {
		t.Fatal("Corrupt past the object's end reported success")
	}
	if !b.Corrupt("k", 1) {
		t.Fatal("Corrupt of a stored byte failed")
	}
	after, _ := b.Attributes(ctx, "k")
	if after.Meta != before.Meta {
		t.Fatalf("metadata changed: %+v, was %+v", after.Meta, before.Meta)
	}
	if got, _ := b.Bytes("k"); string(got) == "data" {
		t.Fatal("bytes unchanged")
	}
}

func TestFailPutsWhereRefusesOnlyTheKeysItNamesUntilCleared(t *testing.T) {
	ctx := context.Background()
	b := New()
	b.FailPutsWhere(func(key string) error {
		if key == "manifest/s/0.mlog" {
			return ErrInjected
		}
		return nil
	})
	if _, err := tier2.UploadBytes(ctx, b, "manifest/s/0.mlog", []byte("c"), tier2.ObjectMeta{}); !errors.Is(err, ErrInjected) {
		t.Fatalf("refused key: %v, want the injected failure", err)
	}
	if ok, _ := b.Exists(ctx, "manifest/s/0.mlog"); ok {
		t.Fatal("a refused upload stored the object")
	}
	if _, err := tier2.UploadBytes(ctx, b, "segments/s/0.zst", []byte("s"), tier2.ObjectMeta{}); err != nil {
		t.Fatalf("other key: %v", err)
	}
	b.FailPutsWhere(nil)
	if _, err := tier2.UploadBytes(ctx, b, "manifest/s/0.mlog", []byte("c"), tier2.ObjectMeta{}); err != nil {
		t.Fatalf("after clearing: %v", err)
	}
}
