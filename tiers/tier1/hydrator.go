package tier1

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bop-aof/aof/tiers/backpressure"
)

// FetchFunc brings one key back (from Tier 2 into Tier 1, say). It runs on a
// hydration worker with the hydrator's context, not a waiter's: a waiter
// giving up does not cancel work other waiters need.
type FetchFunc[K comparable, V any] func(ctx context.Context, key K) (V, error)

// HydratorOptions configures a Hydrator.
type HydratorOptions struct {
	// Workers bounds concurrent fetches (hydration_workers); default 2.
	Workers int
	// Retain is how long a finished result stays available to TryGet
	// callers that started or polled the job; default 30 s.
	Retain time.Duration
	Logger *slog.Logger
}

// Hydrator runs at most one fetch per key at a time, however many callers
// wait for it, on at most Workers goroutines. Jobs wait in FIFO order for a
// worker. QueueDepth feeds hydration_queue_depth; the owner times each
// fetch for hydration_latency (tracing.Instruments.ObserveHydration).
type Hydrator[K comparable, V any] struct {
	fetch  FetchFunc[K, V]
	retain time.Duration
	log    *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	depth  atomic.Int64

	// slots admits fetches: active run, at most limit (SetWorkers).
	slotMu   sync.Mutex
	slotCond *sync.Cond
	active   int
	limit    int

	mu      sync.Mutex
	running map[K]*hydration[V]
	settled map[K]*hydration[V]
	closed  bool
}

type hydration[V any] struct {
	done    chan struct{}
	waiters int // Get callers attached; guarded by Hydrator.mu
	val     V
	err     error
	settled time.Time
}

// ErrHydratorClosed is returned by Get and TryGet after Close.
var ErrHydratorClosed = errors.New("tier1: hydrator closed")

// NewHydrator returns a hydrator that calls fetch.
func NewHydrator[K comparable, V any](fetch FetchFunc[K, V], opts HydratorOptions) (*Hydrator[K, V], error) {
	if opts.Workers <= 0 {
		opts.Workers = 2
	}
	if opts.Retain <= 0 {
		opts.Retain = 30 * time.Second
	}
	h := &Hydrator[K, V]{
		fetch:   fetch,
		retain:  opts.Retain,
		log:     opts.Logger,
		limit:   opts.Workers,
		running: make(map[K]*hydration[V]),
		settled: make(map[K]*hydration[V]),
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.slotCond = sync.NewCond(&h.slotMu)
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h, nil
}

// SetWorkers changes how many fetches may run at once. Raising it starts
// waiting jobs at once; lowering it lets running fetches finish.
func (h *Hydrator[K, V]) SetWorkers(n int) {
	h.slotMu.Lock()
	h.limit = max(n, 1)
	h.slotCond.Broadcast()
	h.slotMu.Unlock()
}

// Workers is the current limit of concurrent fetches.
func (h *Hydrator[K, V]) Workers() int {
	h.slotMu.Lock()
	defer h.slotMu.Unlock()
	return h.limit
}

// acquire waits for a fetch slot, in arrival order, and reports false
// when the hydrator closed first.
func (h *Hydrator[K, V]) acquire() bool {
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

func (h *Hydrator[K, V]) release() {
	h.slotMu.Lock()
	h.active--
	h.slotCond.Signal()
	h.slotMu.Unlock()
}

// start returns the running job for key, starting one if there is none.
// Caller holds h.mu.
func (h *Hydrator[K, V]) start(key K) *hydration[V] {
	if j, ok := h.running[key]; ok {
		return j
	}
	j := &hydration[V]{done: make(chan struct{})}
	h.running[key] = j
	h.depth.Add(1)
	h.wg.Add(1)
	go h.run(key, j)
	return j
}

func (h *Hydrator[K, V]) run(key K, j *hydration[V]) {
	defer h.wg.Done()
	if h.acquire() {
		h.depth.Add(-1)
		func() {
			defer func() {
				if r := recover(); r != nil {
					j.err = fmt.Errorf("hydration panicked: %v", r)
				}
			}()
			j.val, j.err = h.fetch(h.ctx, key)
		}()
		h.release()
	} else {
		h.depth.Add(-1)
		j.err = ErrHydratorClosed
	}
	if j.err != nil {
		h.log.Warn("tier1_hydration_failed", "key", fmt.Sprint(key), "err", j.err)
	}
	h.mu.Lock()
	delete(h.running, key)
	j.settled = time.Now()
	h.settled[key] = j
	h.mu.Unlock()
	close(j.done)
}

// Get returns key's value, starting a fetch unless one is running, and
// waits for it until ctx is done. A result retained from a finished job is
// not reused: Get always sees a fetch that started no earlier than the call.
func (h *Hydrator[K, V]) Get(ctx context.Context, key K) (V, error) {
	var zero V
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return zero, ErrHydratorClosed
	}
	h.expireLocked()
	delete(h.settled, key)
	j := h.start(key)
	j.waiters++
	h.mu.Unlock()
	select {
	case <-j.done:
		return j.val, j.err
	case <-ctx.Done():
		return zero, fmt.Errorf("wait for hydration: %w", ctx.Err())
	}
}

// TryGet never waits. If a job for key finished within Retain, it returns
// that result once (and forgets it). Otherwise it starts a job unless one is
// running and returns *backpressure.Error{Kind: Hydration}: the caller backs
// off (10 ms to 250 ms) and asks again.
func (h *Hydrator[K, V]) TryGet(key K) (V, error) {
	var zero V
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return zero, ErrHydratorClosed
	}
	h.expireLocked()
	if j, ok := h.settled[key]; ok {
		delete(h.settled, key)
		return j.val, j.err
	}
	h.start(key)
	return zero, backpressure.New(backpressure.Hydration, "", fmt.Errorf("hydrating %v", key))
}

func (h *Hydrator[K, V]) expireLocked() {
	now := time.Now()
	for k, j := range h.settled {
		if now.Sub(j.settled) > h.retain {
			delete(h.settled, k)
		}
	}
}

// QueueDepth is the number of jobs waiting for a worker.
func (h *Hydrator[K, V]) QueueDepth() int64 { return h.depth.Load() }

// Close cancels running fetches' context, fails queued jobs with
// ErrHydratorClosed and waits for every job to end.
func (h *Hydrator[K, V]) Close() {
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
