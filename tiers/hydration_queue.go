package tiers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bop-aof/aof/tiers/backpressure"
	"github.com/bop-aof/aof/tiers/tier1"
)

// hydrationQueue runs the hydrations of segments from Tier 2 into Tier 1
// (background.hydrate): at most one per segment at a time, however many
// readers wait for it, on at most workers goroutines (tier1.hydration_workers).
// Jobs wait in FIFO order for a worker. A hydration runs with the queue's
// context, not a waiter's: a reader giving up does not cancel a download
// other readers need. QueueDepth feeds hydration_queue_depth.
type hydrationQueue struct {
	hydrate func(ctx context.Context, key tier1.Key) error
	// retain is how long a finished hydration's outcome stays for the
	// TryGet callers that started or polled it.
	retain time.Duration
	log    *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	depth  atomic.Int64

	// slots admits hydrations: active run, at most limit (SetWorkers).
	slotMu   sync.Mutex
	slotCond *sync.Cond
	active   int
	limit    int

	mu      sync.Mutex
	running map[tier1.Key]*hydrationJob
	settled map[tier1.Key]*hydrationJob
	closed  bool
}

type hydrationJob struct {
	done    chan struct{}
	waiters int // Get callers attached; guarded by hydrationQueue.mu
	err     error
	settled time.Time
}

// errHydrationQueueClosed is returned by Get and TryGet after Close.
var errHydrationQueueClosed = errors.New("tiers: hydration queue closed")

// hydrationRetain is how long TryGet callers find a finished outcome.
const hydrationRetain = 30 * time.Second

// newHydrationQueue returns a queue that runs hydrate on workers
// goroutines at most (2 when workers <= 0).
func newHydrationQueue(hydrate func(ctx context.Context, key tier1.Key) error, workers int, log *slog.Logger) *hydrationQueue {
	if workers <= 0 {
		workers = 2
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &hydrationQueue{
		hydrate: hydrate,
		retain:  hydrationRetain,
		log:     log,
		limit:   workers,
		running: make(map[tier1.Key]*hydrationJob),
		settled: make(map[tier1.Key]*hydrationJob),
	}
	h.slotCond = sync.NewCond(&h.slotMu)
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h
}

// SetWorkers changes how many hydrations may run at once. Raising it
// starts waiting jobs at once; lowering it lets running ones finish.
func (h *hydrationQueue) SetWorkers(n int) {
	h.slotMu.Lock()
	h.limit = max(n, 1)
	h.slotCond.Broadcast()
	h.slotMu.Unlock()
}

// Workers is the current limit of concurrent hydrations.
func (h *hydrationQueue) Workers() int {
	h.slotMu.Lock()
	defer h.slotMu.Unlock()
	return h.limit
}

// acquire waits for a worker slot, in arrival order, and reports false
// when the queue closed first.
func (h *hydrationQueue) acquire() bool {
	h.slotMu.Lock()
	defer h.slotMu.Unlock()
	for h.active >= h.limit && h.ctx.Err() == nil {
		h.slotCond.Wait()
	}
	if h.ctx.Err() != nil {
		return false
	}
	h.active++
	return true
}

func (h *hydrationQueue) release() {
	h.slotMu.Lock()
	h.active--
	h.slotCond.Signal()
	h.slotMu.Unlock()
}

// start returns the running job for key, starting one if there is none.
// Caller holds h.mu.
func (h *hydrationQueue) start(key tier1.Key) *hydrationJob {
	if j, ok := h.running[key]; ok {
		return j
	}
	j := &hydrationJob{done: make(chan struct{})}
	h.running[key] = j
	h.depth.Add(1)
	h.wg.Add(1)
	go h.run(key, j)
	return j
}

func (h *hydrationQueue) run(key tier1.Key, j *hydrationJob) {
	defer h.wg.Done()
	if h.acquire() {
		h.depth.Add(-1)
		func() {
			defer func() {
				if r := recover(); r != nil {
					j.err = fmt.Errorf("hydration panicked: %v", r)
				}
			}()
			j.err = h.hydrate(h.ctx, key)
		}()
		h.release()
	} else {
		h.depth.Add(-1)
		j.err = errHydrationQueueClosed
	}
	if j.err != nil {
		h.log.Warn("tier1_hydration_failed", "key", key.String(), "err", j.err)
	}
	h.mu.Lock()
	delete(h.running, key)
	j.settled = time.Now()
	h.settled[key] = j
	h.mu.Unlock()
	close(j.done)
}

// Get hydrates key, joining the hydration that runs unless there is none,
// and waits for it until ctx is done. An outcome retained from a finished
// job is not reused: Get always sees a hydration that started no earlier
// than the call.
func (h *hydrationQueue) Get(ctx context.Context, key tier1.Key) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return errHydrationQueueClosed
	}
	h.expireLocked()
	delete(h.settled, key)
	j := h.start(key)
	j.waiters++
	h.mu.Unlock()
	select {
	case <-j.done:
		return j.err
	case <-ctx.Done():
		return fmt.Errorf("wait for hydration: %w", ctx.Err())
	}
}

// TryGet never waits. If a hydration of key finished within the retain
// period, it returns that outcome once (and forgets it). Otherwise it
// starts one unless one is running and returns *backpressure.Error{Kind:
// Hydration}: the caller backs off (10 ms to 250 ms) and asks again.
func (h *hydrationQueue) TryGet(key tier1.Key) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errHydrationQueueClosed
	}
	h.expireLocked()
	if j, ok := h.settled[key]; ok {
		delete(h.settled, key)
		return j.err
	}
	h.start(key)
	return backpressure.New(backpressure.Hydration, "", fmt.Errorf("hydrating %v", key))
}

func (h *hydrationQueue) expireLocked() {
	now := time.Now()
	for k, j := range h.settled {
		if now.Sub(j.settled) > h.retain {
			delete(h.settled, k)
		}
	}
}

// QueueDepth is the number of hydrations waiting for a worker.
func (h *hydrationQueue) QueueDepth() int64 { return h.depth.Load() }

// Close cancels running hydrations' context, fails queued ones with
// errHydrationQueueClosed and waits for every job to end.
func (h *hydrationQueue) Close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	// Jobs waiting for a slot see the cancellation.
	h.slotMu.Lock()
	h.slotCond.Broadcast()
	h.slotMu.Unlock()
	h.wg.Wait()
}
