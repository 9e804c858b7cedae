package ingest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/segment"
)

// storedSeqs reads every segment of stream that still has a copy and
// counts each ext_id (ingest sequence) it holds.
func storedSeqs(t *testing.T, s *tiers.Store, stream string) map[uint64]int {
	t.Helper()
	got := map[uint64]int{}
	rd, err := s.Reader(stream)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	for _, seg := range s.Segments(stream) {
		if seg.NeedsRecovery {
			continue
		}
		rd.Seek(seg.BaseOffset)
		for off := seg.BaseOffset; off < seg.NextOffset; off++ {
			e, err := rd.TryNext(context.Background())
			if err != nil {
				t.Fatalf("segment %d offset %d: %v", seg.Segment, off, err)
			}
			got[e.ExtID]++
		}
	}
	return got
}

// TestReplayAfterRecoveryStoresASegmentLostBelowSurvivorsOnce: a segment
// whose every copy is gone lies between two that survived (an object
// deleted from the bucket before a disaster recovery). Sequence dedupe
// alone would take its messages for duplicates of the newer segment's;
// with the recovery's holes file the replay stores them again, once, and
// a second replay stores nothing.
func TestReplayAfterRecoveryStoresASegmentLostBelowSurvivorsOnce(t *testing.T) {
	r, store, lost := rigWithLostMiddleSegment(t)
	replay := r.opts
	replay.Consumer.ReplayFromStart = true
	for round := range 2 {
		p, err := NewPipeline(r.js, store, replay)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.run(p); err != nil {
			t.Fatal(err)
		}
		expectEachOnce(t, store, fmt.Sprintf("replay %d", round+1), 30)
	}
	// Refilled, the lost segment is retired in the manifest, so that a
	// later recovery from Tier 2 does not count it as lost again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		idx, err := store.ManifestIndex("s")
		if err != nil {
			t.Fatal(err)
		}
		if st, ok := idx.Get(lost); ok && st.Deleted {
			break
		}
		if time.Now().After(deadline) {
			st, _ := idx.Get(lost)
			t.Fatalf("lost segment %d not retired after the refill: %+v", lost, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// New messages after the refill: the store drops the holes once its
	// newest segment is past the old ones, and dedupe stays exact.
	r.publish("s", 5)
	p, err := NewPipeline(r.js, store, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.run(p); err != nil {
		t.Fatal(err)
	}
	expectEachOnce(t, store, "after new messages", 35)
	if v, _ := store.DedupeView("s"); !v.Stored(15) || !v.Stored(35) || v.Stored(36) {
		t.Fatalf("dedupe view after the holes were dropped: %+v", v)
	}
}

// failOnExt fails the append that carries ext_id ext, once.
type failOnExt struct {
	*tiers.Store
	ext    uint64
	failed bool
}

func (s *failOnExt) Append(ctx context.Context, stream string, recs []segment.Record) (uint64, error) {
	for _, rec := range recs {
		if rec.ExtID == s.ext && !s.failed {
			s.failed = true
			return 0, errDisk
		}
	}
	return s.Store.Append(ctx, stream, recs)
}

// TestRefillInterruptedByAFailureGoesOnFromTheAckFloorOnce: the gateway
// stops halfway through storing a lost range again; the restarted
// pipeline resumes at the consumer's ack floor (no second replay) and
// neither stores a refilled sequence twice nor skips the rest.
func TestRefillInterruptedByAFailureGoesOnFromTheAckFloorOnce(t *testing.T) {
	r, store, _ := rigWithLostMiddleSegment(t)
	replay := r.opts
	replay.Consumer.ReplayFromStart = true
	replay.BatchSize = 4
	p, err := NewPipeline(r.js, &failOnExt{Store: store, ext: 15}, replay)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.run(p); !errors.Is(err, errDisk) {
		t.Fatalf("run: %v, want the injected failure", err)
	}
	if v, _ := store.DedupeView("s"); len(v.Missing) != 1 || v.Missing[0].From < 11 || v.Missing[0].To != 20 {
		t.Fatalf("after the failure the lost range should be partly refilled: %+v", v)
	}
	p2, err := NewPipeline(r.js, store, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.run(p2); err != nil {
		t.Fatal(err)
	}
	expectEachOnce(t, store, "after the restart", 30)
}

// expectEachOnce checks that sequences 1 to n are each stored once and
// that nothing is missing any more.
func expectEachOnce(t *testing.T, store *tiers.Store, when string, n uint64) {
	t.Helper()
	got := storedSeqs(t, store, "s")
	for seq := uint64(1); seq <= n; seq++ {
		if got[seq] != 1 {
			t.Fatalf("%s: sequence %d stored %d times (all: %v)", when, seq, got[seq], got)
		}
	}
	if len(got) != int(n) {
		t.Fatalf("%s: %d sequences stored, want %d: %v", when, len(got), n, got)
	}
	if v, _ := store.DedupeView("s"); len(v.Missing) != 0 || v.Last != n {
		t.Fatalf("%s: dedupe view %+v, want everything up to %d held", when, v, n)
	}
}

// rigWithLostMiddleSegment stores sequences 1 to 30 of stream s in three
// sealed segments, loses every copy of the middle one (11 to 20), writes
// the holes file RecoverFromTier2 would, and reopens the store.
func rigWithLostMiddleSegment(t *testing.T) (*rig, *tiers.Store, uint64) {
	t.Helper()
	r := newRig(t, 5*time.Second)
	ctx := context.Background()
	var sealed []uint64
	for range 3 {
		r.publish("s", 10)
		p, err := NewPipeline(r.js, r.store, r.opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.run(p); err != nil {
			t.Fatal(err)
		}
		id, err := r.store.Seal(ctx, "s", true)
		if err != nil {
			t.Fatal(err)
		}
		sealed = append(sealed, id)
	}
	root := r.store.Root()
	if err := r.store.Close(); err != nil {
		t.Fatal(err)
	}
	// Every copy of the middle segment (sequences 11 to 20) goes.
	lost := sealed[1]
	for _, p := range []string{
		filepath.Join(root, "tier0", "s", segment.FileName(lost)),
		filepath.Join(root, "tier1", "s", fmt.Sprintf("%020d.zst", lost)),
	} {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	// What RecoverFromTier2 writes when it finds such a segment.
	holes := fmt.Sprintf(`{"s": {"after_segment": %d, "holes": [{"after": 10, "to": 20, "segments": [%d]}]}}`, sealed[2], lost)
	if err := os.WriteFile(filepath.Join(root, tiers.HolesFile), []byte(holes), 0o644); err != nil {
		t.Fatal(err)
	}
	store, err := tiers.Open(ctx, tiers.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	r.store = store
	if v, _ := store.DedupeView("s"); v.Stored(15) || !v.Stored(25) || !v.Stored(5) {
		t.Fatalf("dedupe view before the replay: %+v", v)
	}

	return r, store, lost
}
