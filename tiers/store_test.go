package tiers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/backpressure"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

func payload(stream string, i int) []byte {
	return []byte(fmt.Sprintf("%s record %06d %s", stream, i, bytes.Repeat([]byte{'x'}, i%97)))
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func openStore(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := Open(testCtx(t), opts)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return s
}

func appendN(t *testing.T, s *Store, stream string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := s.AppendDurable(testCtx(t), stream, []Record{{Payload: payload(stream, i), ExtID: uint64(i + 1)}}); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

// readAll reads stream from offset 0 and checks every record.
func readAll(t *testing.T, s *Store, stream string, n int) {
	t.Helper()
	r, err := s.Reader(stream)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := 0; i < n; i++ {
		e, err := r.Next(testCtx(t))
		if err != nil {
			t.Fatalf("read offset %d: %v", i, err)
		}
		if e.Offset != uint64(i) || e.ExtID != uint64(i+1) || !bytes.Equal(e.Payload, payload(stream, i)) {
			t.Fatalf("offset %d: got offset %d ext %d payload %q", i, e.Offset, e.ExtID, e.Payload)
		}
	}
	if _, err := r.TryNext(testCtx(t)); !backpressure.Is(err, backpressure.Tail) {
		t.Fatalf("read past the tail: %v, want Tail backpressure", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAppendRollReadAcrossTiers0And1(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, Options{Root: root, SegmentTargetBytes: 4 << 10, FrameBytes: 1 << 10})
	appendN(t, s, "orders", 0, 500)
	readAll(t, s, "orders", 500)

	segs := s.Segments("orders")
	if len(segs) < 5 {
		t.Fatalf("want several segments from 4 KiB rollover, got %d", len(segs))
	}
	waitFor(t, "sealed segments compressed into tier 1", func() bool {
		for _, st := range s.Segments("orders") {
			if st.State == "sealed" && !st.InTier1 {
				return false
			}
		}
		return true
	})
	if d, _ := s.DedupeView("orders"); d.Last != 500 {
		t.Fatalf("DedupeView().Last = %d, want 500", d.Last)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	// Restart: every record is still there, the ext id watermark too, and
	// appends continue at the next offset.
	s = openStore(t, Options{Root: root, SegmentTargetBytes: 4 << 10, FrameBytes: 1 << 10})
	defer s.Close()
	if d, _ := s.DedupeView("orders"); d.Last != 500 {
		t.Fatalf("DedupeView().Last after restart = %d, want 500", d.Last)
	}
	appendN(t, s, "orders", 500, 10)
	readAll(t, s, "orders", 510)
}

func TestTier0BudgetGivesAdmissionBackpressureThenEvictsTier1Copies(t *testing.T) {
	root := t.TempDir()
	// The active segment may grow past the whole budget: unsealed data
	// cannot be evicted, so the budget fills.
	s := openStore(t, Options{Root: root, SegmentTargetBytes: 64 << 10, Tier0MaxBytes: 8 << 10})
	defer s.Close()
	var err error
	i := 0
	for ; i < 10000; i++ {
		err = s.AppendDurable(testCtx(t), "hot", []Record{{Payload: payload("hot", i), ExtID: uint64(i + 1)}})
		if err != nil {
			break
		}
	}
	if !backpressure.Is(err, backpressure.Admission) {
		t.Fatalf("filling tier 0: %v after %d records, want Admission backpressure", err, i)
	}
	waited := make(chan error, 1)
	go func() { waited <- s.WaitForAdmission(testCtx(t), 512) }()
	select {
	case err := <-waited:
		t.Fatalf("admission granted while tier 0 holds only unsealed data: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if got := s.Tier0Stats().QueueDepth; got != 1 {
		t.Fatalf("activation queue depth = %d, want 1", got)
	}
	// Sealing lets the segment reach Tier 1; then it can be evicted and
	// the waiter is admitted.
	if _, err := s.Seal(testCtx(t), "hot", false); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("wait for admission: %v", err)
	}
	appendN(t, s, "hot", i, 20)
	readAll(t, s, "hot", i+20)
	if st := s.Segments("hot")[0]; st.InTier0 || !st.InTier1 {
		t.Fatalf("first segment should have been evicted from tier 0 to make room: %+v", st)
	}
}

func TestFullSegmentLifeThroughTier2(t *testing.T) {
	ctx := testCtx(t)
	t2 := memory.New()
	root := t.TempDir()
	opts := Options{Root: root, SegmentTargetBytes: 8 << 10, FrameBytes: 2 << 10, Tier2: t2}
	s := openStore(t, opts)
	appendN(t, s, "life", 0, 400)
	if _, err := s.Seal(ctx, "life", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every sealed segment uploaded", func() bool {
		for _, st := range s.Segments("life") {
			if st.State == "sealed" && !st.InTier2 {
				return false
			}
		}
		return true
	})
	// Drop every local copy: reads must come back from Tier 2.
	for _, st := range s.Segments("life") {
		if st.State == "sealed" {
			if err := evictIdle(ctx, s, "life", st.Segment); err != nil {
				t.Fatalf("evict %d: %v", st.Segment, err)
			}
		}
	}
	for _, st := range s.Segments("life") {
		if st.State == "sealed" && (st.InTier0 || st.InTier1) {
			t.Fatalf("segment %d still local after eviction: %+v", st.Segment, st)
		}
	}
	requireViewIsTheManifestFold(t, s, "life")
	readAll(t, s, "life", 400)
	requireViewIsTheManifestFold(t, s, "life")

	// The manifest says the same, also after a restart.
	s.Close()
	s = openStore(t, opts)
	defer s.Close()
	requireViewIsTheManifestFold(t, s, "life")
	readAll(t, s, "life", 400)
	l, _ := s.existing("life")
	idx := l.man.Index()
	uploaded := 0
	for _, st := range idx.Segments() {
		if st.InTier2 {
			uploaded++
			if st.ETag == "" || st.Tier2Key == "" {
				t.Fatalf("segment %d uploaded without key/etag in manifest: %+v", st.Segment, st)
			}
		}
	}
	if uploaded == 0 {
		t.Fatal("manifest records no upload")
	}
}

func TestHydrationOfMissingObjectMarksNeedsRecovery(t *testing.T) {
	ctx := testCtx(t)
	t2 := memory.New()
	s := openStore(t, Options{Root: t.TempDir(), SegmentTargetBytes: 4 << 10, Tier2: t2})
	defer s.Close()
	appendN(t, s, "gone", 0, 50)
	id, err := s.Seal(ctx, "gone", false)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "upload", func() bool { st := s.Segments("gone"); return st[0].InTier2 })
	if err := evictIdle(ctx, s, "gone", id); err != nil {
		t.Fatal(err)
	}
	if err := t2.Delete(ctx, tier2.SegmentKey("gone", id)); err != nil {
		t.Fatal(err)
	}
	r, _ := s.Reader("gone")
	_, err = r.Next(ctx)
	var he *HydrationError
	if !errors.As(err, &he) || he.Reason != manifest.ReasonMissing {
		t.Fatalf("read of a segment whose object is gone: %v, want HydrationError reason 4", err)
	}
	if st := s.Segments("gone")[0]; !st.NeedsRecovery {
		t.Fatalf("segment not marked needs-recovery: %+v", st)
	}
}

func TestTailReaderFollowsAcrossRollovers(t *testing.T) {
	s := openStore(t, Options{Root: t.TempDir(), SegmentTargetBytes: 2 << 10})
	defer s.Close()
	appendN(t, s, "follow", 0, 1)
	r, err := s.Reader("follow")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 300; i++ {
			e, err := r.Next(testCtx(t))
			if err != nil {
				done <- fmt.Errorf("offset %d: %w", i, err)
				return
			}
			if e.Offset != uint64(i) {
				done <- fmt.Errorf("got offset %d, want %d", e.Offset, i)
				return
			}
		}
		done <- nil
	}()
	// The reader waits at the tail of the active segment while it is
	// sealed and the next one opens, many times over.
	for i := 1; i < 300; i++ {
		appendN(t, s, "follow", i, 1)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// When Tier 0 is full of active segments, which can never be evicted,
// seal-on-pressure seals the largest one so that it moves to Tier 1 and
// the waiting writer is admitted without waiting for segment.max_age.
func TestSealOnPressureFreesABudgetFullOfActiveSegments(t *testing.T) {
	s := openStore(t, Options{Root: t.TempDir(), SegmentTargetBytes: 64 << 10, Tier0MaxBytes: 8 << 10, SealOnPressure: true})
	defer s.Close()
	var err error
	i := 0
	for ; i < 10000; i++ {
		stream := []string{"p1", "p2"}[i%2]
		if err = s.AppendDurable(testCtx(t), stream, []Record{{Payload: payload(stream, i), ExtID: uint64(i + 1)}}); err != nil {
			break
		}
	}
	if !backpressure.Is(err, backpressure.Admission) {
		t.Fatalf("filling tier 0: %v, want Admission backpressure", err)
	}
	if err := s.WaitForAdmission(testCtx(t), 512); err != nil {
		t.Fatalf("admission never came back: %v", err)
	}
	sealed := 0
	for _, st := range s.Segments("") {
		if st.State == "sealed" {
			sealed++
		}
	}
	if sealed == 0 {
		t.Fatal("no segment was sealed under pressure")
	}
}

// evictIdle is EvictLocal once the segment is idle: an upload that a
// queue handed to a worker a moment ago still holds the segment, and
// EvictLocal says so (errRetireLater) instead of waiting.
func evictIdle(ctx context.Context, s *Store, stream string, id uint64) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.EvictLocal(ctx, stream, id)
		if !errors.Is(err, errRetireLater) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}
