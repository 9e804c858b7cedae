package fsck

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

// A segment with a good Tier 0 file, a damaged Tier 1 artifact and a
// damaged Tier 2 object: the live repair must not drop the only good copy
// (Tier 0); it re-uploads from it and restores Tier 1, and the segment
// reads back whole.
func TestRepairWithDamagedTier1AndTier2KeepsTheGoodTier0Copy(t *testing.T) {
	ctx := testCtx(t)
	b := memory.New()
	root := t.TempDir()
	s, err := tiers.Open(ctx, tiers.Options{Root: root, SegmentTargetBytes: 1 << 20, FrameBytes: 1 << 10, Tier2: b})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 45; i++ {
		if i == 20 {
			sealAndSettle(t, s, "demo")
		}
		p := ingest.AppendEnvelope(nil, ingest.Envelope{Subject: "aof.ingest.demo", Body: fmt.Appendf(nil, "demo message %04d", i)})
		if err := s.AppendDurable(ctx, "demo", []tiers.Record{{Payload: p, ExtID: uint64(i + 1)}}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := s.Segments("demo")[0]
		if st.InTier2 {
			t.Logf("before: %+v", st)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not uploaded")
		}
		time.Sleep(10 * time.Millisecond)
	}
	art := root + "/tier1/demo/00000000000000000001.zst"
	if _, err := os.Stat(art); err != nil {
		t.Fatal(err)
	}
	flipByte(t, art, 300)
	b.Corrupt(tier2.SegmentKey("demo", 1), 200)
	rep, err := CheckLive(ctx, s, "demo", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		t.Logf("problem %s seg %d repaired=%v note=%q", p.Kind, p.Segment, p.Repaired, p.RepairNote)
		if !p.Repaired {
			t.Errorf("%s of segment %d not repaired: %s", p.Kind, p.Segment, p.RepairNote)
		}
	}
	for _, st := range s.Segments("demo") {
		t.Logf("after: seg %d T0=%v T1=%v T2=%v needsRecovery=%v", st.Segment, st.InTier0, st.InTier1, st.InTier2, st.NeedsRecovery)
	}
	// A compression again from Tier 0 queues its own upload; let it end.
	for deadline := time.Now().Add(20 * time.Second); s.Tier1Stats().Pinned > 0 || s.Queues().Upload > 0; {
		if time.Now().After(deadline) {
			t.Fatal("uploads did not settle")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.EvictLocal(ctx, "demo", 1); err != nil {
		t.Fatalf("evict local copies after the repair: %v", err)
	}
	if err := s.Hydrate(ctx, "demo", 1); err != nil {
		t.Errorf("segment 1 unreadable from Tier 2 after live repair: %v", err)
	}
	after, err := CheckLive(ctx, s, "demo", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Problems) != 0 {
		t.Errorf("problems left after the repair: %+v", after.Problems)
	}
}
