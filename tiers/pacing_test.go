package tiers

import (
	"context"
	"testing"
	"time"

	"github.com/bop-aof/aof/tiers/tier2/memory"
)

func TestPacerWaitsOnlyWhileIngestHasABacklogAndNothingIsPressing(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)}
	full := false
	p := &pacer{maxDefer: time.Minute, now: clock.Now, tier0Full: func() bool { return full }}
	queued := clock.Now()

	if p.shouldWait(queued) {
		t.Fatal("waits without any backlog reported")
	}
	p.backlog()
	if !p.shouldWait(queued) {
		t.Fatal("does not wait right after a backlog report")
	}
	clock.Add(backlogHold)
	if p.shouldWait(queued) {
		t.Fatalf("still waits %v after the last backlog report", backlogHold)
	}

	p.backlog()
	full = true
	if p.shouldWait(queued) {
		t.Fatal("waits although Tier 0 is three quarters full or a writer waits for admission")
	}
	full = false

	p.hurry()
	if p.shouldWait(queued) {
		t.Fatal("waits although someone waits for the archive")
	}
	clock.Add(hurryFor)
	p.backlog()
	if !p.shouldWait(queued) {
		t.Fatalf("pacing still off %v after the last archive request", hurryFor)
	}

	clock.Add(time.Minute)
	p.backlog()
	if p.shouldWait(queued) {
		t.Fatal("a segment queued more than compression_defer ago still waits")
	}
	if !p.shouldWait(clock.Now()) {
		t.Fatal("a segment queued just now does not wait")
	}

	off := &pacer{now: clock.Now, tier0Full: func() bool { return false }}
	off.backlog()
	if off.shouldWait(clock.Now()) {
		t.Fatal("compression_defer 0 waits")
	}
}

// backlogWhile reports an ingest backlog to s every 10 ms until the
// returned stop is called.
func backlogWhile(s *Store) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			s.IngestBacklog()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}

func sealedNotInTier1(s *Store, stream string) int {
	n := 0
	for _, st := range s.Segments(stream) {
		if st.State == "sealed" && !st.InTier1 {
			n++
		}
	}
	return n
}

func TestCompressionYieldsToAnIngestBacklogAndCatchesUpAfterIt(t *testing.T) {
	ctx := testCtx(t)
	s := openStore(t, Options{Root: t.TempDir(), SegmentTargetBytes: 8 << 10, FrameBytes: 2 << 10,
		Tier2: memory.New(), CompressDefer: time.Minute})
	defer s.Close()

	stop := backlogWhile(s)
	// Segments seal by rollover: an on-demand Seal would hurry them.
	appendN(t, s, "burst", 0, 300)
	sealed := sealedNotInTier1(s, "burst")
	if sealed < 3 {
		t.Fatalf("want several sealed segments, got %d", sealed)
	}
	time.Sleep(300 * time.Millisecond)
	if n := sealedNotInTier1(s, "burst"); n != sealed {
		t.Fatalf("%d of %d sealed segments compressed during the backlog, want none", sealed-n, sealed)
	}
	if s.pacer.deferred.Load() == 0 {
		t.Fatal("no compression reports having waited")
	}
	// Every record reads back from Tier 0 meanwhile.
	readAll(t, s, "burst", 300)

	stop()
	if _, err := s.Seal(ctx, "burst", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every sealed segment compressed and uploaded after the backlog", func() bool {
		for _, st := range s.Segments("burst") {
			if st.State == "sealed" && (!st.InTier1 || !st.InTier2) {
				return false
			}
		}
		return true
	})
	readAll(t, s, "burst", 300)
}

func TestAnArchiveRequestEndsTheWaitDuringABacklog(t *testing.T) {
	s := openStore(t, Options{Root: t.TempDir(), SegmentTargetBytes: 8 << 10, FrameBytes: 2 << 10,
		Tier2: memory.New(), CompressDefer: time.Minute})
	defer s.Close()
	stop := backlogWhile(s)
	defer stop()

	appendN(t, s, "handover", 0, 200) // sealed by rollover, not on demand
	time.Sleep(100 * time.Millisecond)
	if sealedNotInTier1(s, "handover") == 0 {
		t.Fatal("compressed during the backlog before anyone asked for the archive")
	}
	// A handover asks for the archive every 50 ms while it waits.
	waitFor(t, "the archive requested during a backlog", func() bool {
		if err := s.ArchiveNow("handover"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(40 * time.Millisecond)
		return sealedNotInTier1(s, "handover") == 0
	})
}

func TestCompressionDoesNotWaitOnceTier0IsThreeQuartersFull(t *testing.T) {
	s := openStore(t, Options{Root: t.TempDir(), SegmentTargetBytes: 8 << 10, FrameBytes: 2 << 10,
		Tier0MaxBytes: 128 << 10, Tier2: memory.New(), CompressDefer: time.Minute})
	defer s.Close()
	stop := backlogWhile(s)
	defer stop()

	// Fill Tier 0 past three quarters during the backlog, without a
	// writer ever waiting for admission.
	n := 0
	for ; !s.tier0Full(); n += 50 {
		if n > 5000 {
			t.Fatal("Tier 0 never reached three quarters")
		}
		appendN(t, s, "full", n, 50)
	}
	waitFor(t, "compression during the backlog bringing Tier 0 back under three quarters", func() bool { return !s.tier0Full() })
	if st := s.Tier0Stats(); st.QueueDepth != 0 {
		t.Fatalf("%d writers wait for admission", st.QueueDepth)
	}
	// Under the mark, compression waits for the backlog again.
	time.Sleep(300 * time.Millisecond)
	if sealedNotInTier1(s, "full") == 0 {
		t.Fatal("compression went on below three quarters during the backlog")
	}
	readAll(t, s, "full", n)
}

func TestPacerWaitEndsWithTheStore(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)}
	p := &pacer{maxDefer: time.Minute, now: clock.Now, tier0Full: func() bool { return false }}
	p.backlog() // the fake clock stands still: the backlog never ends
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan bool)
	go func() { done <- p.wait(ctx, clock.Now()) }()
	time.Sleep(3 * pacePoll)
	cancel()
	select {
	case waited := <-done:
		if !waited {
			t.Fatal("wait did not report waiting")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("wait did not end with its context")
	}
}

func TestAnOnDemandSealIsNotHeldBackByABacklog(t *testing.T) {
	ctx := testCtx(t)
	s := openStore(t, Options{Root: t.TempDir(), SegmentTargetBytes: 1 << 20, FrameBytes: 2 << 10,
		Tier2: memory.New(), CompressDefer: time.Minute})
	defer s.Close()
	stop := backlogWhile(s)
	defer stop()
	appendN(t, s, "operator", 0, 100)
	if _, err := s.Seal(ctx, "operator", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the segment sealed on demand in Tier 1 during a backlog", func() bool { return sealedNotInTier1(s, "operator") == 0 })
}
