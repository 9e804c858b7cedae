package cluster

import (
	"context"
	"testing"
	"time"
)

// Each node's view names the holder of a stream's partition: itself for
// the partitions it holds, the other node for the rest, nobody once a
// lease is gone.
func TestOwnersNamesTheHolderOfAStreamsPartition(t *testing.T) {
	b, _ := testBucket(t)
	ctx := testCtx(t)
	const partitions = 2
	var streamOf [partitions]string
	for i := 0; streamOf[0] == "" || streamOf[1] == ""; i++ {
		s := "s" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		streamOf[PartitionOf(s, partitions)] = s
	}
	la, _, err := b.acquire(ctx, 0, "gw-a", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.acquire(ctx, 1, "gw-b", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	a := NewOwners(b, partitions, "gw-a", func() []Lease { return []Lease{la} }, nil)
	a.refresh(ctx)
	if got := a.Owner(streamOf[0]); got != "gw-a" {
		t.Errorf("owner of %s = %q, want gw-a itself", streamOf[0], got)
	}
	if got := a.Owner(streamOf[1]); got != "gw-b" {
		t.Errorf("owner of %s = %q, want gw-b", streamOf[1], got)
	}
	// gw-a lets partition 0 go; the bucket still shows it until the
	// next refresh, and gw-a must not claim it meanwhile.
	a.held = func() []Lease { return nil }
	if got := a.Owner(streamOf[0]); got != "" {
		t.Errorf("owner of %s after its release = %q, want none", streamOf[0], got)
	}
	if err := b.release(context.Background(), la); err != nil {
		t.Fatal(err)
	}
	a.refresh(ctx)
	if got := a.Owner(streamOf[0]); got != "" {
		t.Errorf("owner of %s without a lease = %q, want none", streamOf[0], got)
	}
}
