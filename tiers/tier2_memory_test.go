package tiers

import (
	"errors"
	"testing"
	"time"

	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

// Tests of the store's logic over Tier 2 faults, on the in-memory bucket:
// they need no object server.

func TestFailedUploadsAreRecordedAndRetriedUntilTheSegmentIsInTier2(t *testing.T) {
	ctx := testCtx(t)
	b := memory.New()
	b.FailPuts(2, nil)
	s := openStore(t, Options{Root: t.TempDir(), SegmentTargetBytes: 4 << 10, Tier2: b, JobRetryBackoff: time.Millisecond})
	defer s.Close()
	appendN(t, s, "flaky", 0, 50)
	id, err := s.Seal(ctx, "flaky", false)
	if err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, s, "flaky")
	idx, err := s.ManifestIndex("flaky")
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := idx.Get(id); !st.InTier2 || st.Failures != 2 || st.LastFailure != manifest.ReasonTransient {
		t.Fatalf("manifest after two refused uploads: %+v, want in Tier 2 after 2 transient failures", st)
	}
	if _, ok := b.Bytes(tier2.SegmentKey("flaky", id)); !ok {
		t.Fatalf("bucket holds %v, want segment %d", b.Keys(), id)
	}
}

func TestHydrationOfACorruptObjectMarksNeedsRecovery(t *testing.T) {
	ctx := testCtx(t)
	b := memory.New()
	s := openStore(t, Options{Root: t.TempDir(), SegmentTargetBytes: 4 << 10, Tier2: b})
	defer s.Close()
	appendN(t, s, "rot", 0, 50)
	id, err := s.Seal(ctx, "rot", false)
	if err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, s, "rot")
	if err := evictIdle(ctx, s, "rot", id); err != nil {
		t.Fatal(err)
	}
	if !b.Corrupt(tier2.SegmentKey("rot", id), 100) {
		t.Fatalf("no object for segment %d: %v", id, b.Keys())
	}
	r, _ := s.Reader("rot")
	defer r.Close()
	_, err = r.Next(ctx)
	var he *HydrationError
	if !errors.As(err, &he) || he.Reason != manifest.ReasonMissing {
		t.Fatalf("read of a segment whose object is damaged: %v, want HydrationError reason 4", err)
	}
	if st := s.Segments("rot")[0]; !st.NeedsRecovery {
		t.Fatalf("segment not marked needs-recovery: %+v", st)
	}
}

// A *tier2.Client variable left nil, passed as Options.Tier2, is held by
// the Bucket interface as a non-nil value; it must mean "no Tier 2".
func TestNilTier2ClientMeansNoTier2(t *testing.T) {
	var none *tier2.Client
	s := openStore(t, Options{Root: t.TempDir(), SegmentTargetBytes: 4 << 10, Tier2: none})
	defer s.Close()
	if s.Tier2() != nil {
		t.Fatalf("store's Tier 2 is %T(%v), want none", s.Tier2(), s.Tier2())
	}
	appendN(t, s, "local", 0, 50)
	if _, err := s.Seal(testCtx(t), "local", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "tier 1 copy", func() bool { return s.Segments("local")[0].InTier1 })
	readAll(t, s, "local", 50)
}
