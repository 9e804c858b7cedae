package tiers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bop-aof/aof/tiers/backpressure"
	"github.com/bop-aof/aof/tiers/tier1"
)

// hk is the key of segment i of a test stream.
func hk(i int) tier1.Key { return tier1.Key{Stream: "h", Segment: uint64(i)} }

func TestHydrationQueueRunsOneHydrationForTwentyWaiters(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	h := newHydrationQueue(func(ctx context.Context, k tier1.Key) error {
		calls.Add(1)
		<-release
		return fmt.Errorf("outcome of %v", k)
	}, 2, nil)
	defer h.Close()
	var wg sync.WaitGroup
	results := make(chan string, 20)
	started := make(chan struct{}, 20)
	for range 20 {
		wg.Go(func() {
			started <- struct{}{}
			results <- fmt.Sprint(h.Get(context.Background(), hk(7)))
		})
	}
	for range 20 {
		<-started
	}
	// Every waiter attaches to the running job before the fetch ends.
	waitFor(t, "twenty waiters on one job", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		j := h.running[hk(7)]
		return j != nil && j.waiters == 20
	})
	close(release)
	wg.Wait()
	close(results)
	for v := range results {
		if want := fmt.Sprintf("outcome of %v", hk(7)); v != want {
			t.Fatalf("waiter got %q, want the one hydration's outcome %q", v, want)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("hydration ran %d times for one segment, want 1", n)
	}
}

func TestHydrationQueueBoundsConcurrentHydrations(t *testing.T) {
	var running, peak atomic.Int32
	h := newHydrationQueue(func(ctx context.Context, k tier1.Key) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		running.Add(-1)
		return nil
	}, 3, nil)
	defer h.Close()
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			if err := h.Get(context.Background(), hk(i)); err != nil {
				t.Errorf("Get(%d): %v", i, err)
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > 3 || p < 2 {
		t.Fatalf("peak concurrent fetches %d, want at most 3 (and more than 1)", p)
	}
}

// TestHydrationQueueSetWorkersResizesARunningPool: with one worker, one
// hydration runs and the rest wait; raised to three, two more start at
// once; lowered to one, the running ones finish and only one runs after.
func TestHydrationQueueSetWorkersResizesARunningPool(t *testing.T) {
	var running atomic.Int32
	release := make(chan struct{})
	h := newHydrationQueue(func(ctx context.Context, k tier1.Key) error {
		running.Add(1)
		defer running.Add(-1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}, 1, nil)
	defer h.Close()
	waitRunning := func(want int32) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for running.Load() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%d fetches running, want %d", running.Load(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			if err := h.Get(context.Background(), hk(i)); err != nil {
				t.Errorf("Get(%d): %v", i, err)
			}
		})
	}
	waitRunning(1)
	time.Sleep(20 * time.Millisecond)
	if n := running.Load(); n != 1 {
		t.Fatalf("%d fetches running with one worker", n)
	}
	h.SetWorkers(3)
	waitRunning(3)
	h.SetWorkers(1)
	// Let the three finish; then at most one runs at a time.
	for range 3 {
		release <- struct{}{}
	}
	waitRunning(1)
	time.Sleep(20 * time.Millisecond)
	if n := running.Load(); n != 1 {
		t.Fatalf("%d fetches running after lowering to one worker", n)
	}
	close(release)
	wg.Wait()
}

func TestHydrationQueueTryGetAnswersBackpressureWhileHydrating(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	h := newHydrationQueue(func(ctx context.Context, k tier1.Key) error {
		calls.Add(1)
		<-release
		return nil
	}, 1, nil)
	defer h.Close()
	for range 3 {
		err := h.TryGet(hk(1))
		var bp *backpressure.Error
		if !errors.As(err, &bp) || bp.Kind != backpressure.Hydration {
			t.Fatalf("TryGet during fetch: %v, want Hydration backpressure", err)
		}
	}
	close(release)
	waitFor(t, "TryGet to find the finished hydration", func() bool { return h.TryGet(hk(1)) == nil })
	if n := calls.Load(); n != 1 {
		t.Fatalf("TryGet found the outcome after %d hydrations, want 1", n)
	}
}

func TestHydrationQueueWaiterGivesUpWithoutCancellingTheHydration(t *testing.T) {
	release := make(chan struct{})
	h := newHydrationQueue(func(ctx context.Context, k tier1.Key) error {
		<-release
		return ctx.Err()
	}, 1, nil)
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.Get(context.Background(), hk(1)) }()
	if err := h.Get(ctx, hk(1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("impatient waiter got %v, want deadline exceeded", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("patient waiter got %v", err)
	}
}

// QueueDepth counts jobs waiting for a worker (the store exports it as
// hydration_queue_depth).
func TestHydrationQueueDepthCountsWaitingJobs(t *testing.T) {
	release := make(chan struct{})
	h := newHydrationQueue(func(ctx context.Context, k tier1.Key) error {
		<-release
		return nil
	}, 1, nil)
	defer h.Close()
	for i := range 4 {
		h.TryGet(hk(i))
	}
	waitFor(t, "three jobs waiting for the one worker", func() bool { return h.QueueDepth() == 3 })
	close(release)
	for i := range 4 {
		if err := h.Get(context.Background(), hk(i)); err != nil {
			t.Fatal(err)
		}
	}
	if d := h.QueueDepth(); d != 0 {
		t.Fatalf("QueueDepth = %d after every job finished, want 0", d)
	}
}
