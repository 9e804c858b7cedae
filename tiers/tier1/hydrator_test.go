package tier1

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bop-aof/aof/tiers/backpressure"
)

func TestHydratorRunsOneFetchForTwentyWaiters(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	h, err := NewHydrator(func(ctx context.Context, k string) (string, error) {
		calls.Add(1)
		<-release
		return "data-" + k, nil
	}, HydratorOptions{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var wg sync.WaitGroup
	results := make(chan string, 20)
	started := make(chan struct{}, 20)
	for range 20 {
		wg.Go(func() {
			started <- struct{}{}
			v, err := h.Get(context.Background(), "seg-7")
			if err != nil {
				t.Error(err)
			}
			results <- v
		})
	}
	for range 20 {
		<-started
	}
	// Every waiter attaches to the running job before the fetch ends.
	waitFor(t, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		j := h.running["seg-7"]
		return j != nil && j.waiters == 20
	})
	close(release)
	wg.Wait()
	close(results)
	for v := range results {
		if v != "data-seg-7" {
			t.Fatalf("waiter got %q", v)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("fetch ran %d times for one key, want 1", n)
	}
}

func TestHydratorBoundsConcurrentFetches(t *testing.T) {
	var running, peak atomic.Int32
	h, _ := NewHydrator(func(ctx context.Context, k int) (int, error) {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		running.Add(-1)
		return k, nil
	}, HydratorOptions{Workers: 3})
	defer h.Close()
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			if v, err := h.Get(context.Background(), i); err != nil || v != i {
				t.Errorf("Get(%d) = %d, %v", i, v, err)
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > 3 || p < 2 {
		t.Fatalf("peak concurrent fetches %d, want at most 3 (and more than 1)", p)
	}
}

// TestHydratorSetWorkersResizesARunningPool: with one worker, one fetch
// runs and the rest wait; raised to three, two more start at once;
// lowered to one, the running ones finish and only one runs after.
func TestHydratorSetWorkersResizesARunningPool(t *testing.T) {
	var running atomic.Int32
	release := make(chan struct{})
	h, _ := NewHydrator(func(ctx context.Context, k int) (int, error) {
		running.Add(1)
		defer running.Add(-1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return k, nil
	}, HydratorOptions{Workers: 1})
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
			if _, err := h.Get(context.Background(), i); err != nil {
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

func TestHydratorTryGetAnswersBackpressureWhileFetching(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	h, _ := NewHydrator(func(ctx context.Context, k string) ([]byte, error) {
		calls.Add(1)
		<-release
		return []byte("bytes"), nil
	}, HydratorOptions{Workers: 1})
	defer h.Close()
	for range 3 {
		_, err := h.TryGet("k")
		var bp *backpressure.Error
		if !errors.As(err, &bp) || bp.Kind != backpressure.Hydration {
			t.Fatalf("TryGet during fetch: %v, want Hydration backpressure", err)
		}
	}
	close(release)
	var v []byte
	waitFor(t, func() bool {
		var err error
		v, err = h.TryGet("k")
		return err == nil
	})
	if string(v) != "bytes" || calls.Load() != 1 {
		t.Fatalf("TryGet result %q after %d fetches, want \"bytes\" after 1", v, calls.Load())
	}
}

func TestHydratorWaiterGivesUpWithoutCancellingTheFetch(t *testing.T) {
	release := make(chan struct{})
	h, _ := NewHydrator(func(ctx context.Context, k string) (string, error) {
		<-release
		return "ok", ctx.Err()
	}, HydratorOptions{Workers: 1})
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := h.Get(context.Background(), "k"); done <- err }()
	if _, err := h.Get(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("impatient waiter got %v, want deadline exceeded", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("patient waiter got %v", err)
	}
}

// QueueDepth counts jobs waiting for a worker (the store exports it as
// hydration_queue_depth).
func TestHydratorQueueDepthCountsWaitingJobs(t *testing.T) {
	release := make(chan struct{})
	h, err := NewHydrator(func(ctx context.Context, k int) (int, error) {
		<-release
		return k, nil
	}, HydratorOptions{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for i := range 4 {
		h.TryGet(i)
	}
	waitFor(t, func() bool { return h.QueueDepth() == 3 })
	close(release)
	for i := range 4 {
		if _, err := h.Get(context.Background(), i); err != nil {
			t.Fatal(err)
		}
	}
	if d := h.QueueDepth(); d != 0 {
		t.Fatalf("QueueDepth = %d after every job finished, want 0", d)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
