package tier1

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/metric"
)

// ErrPoolClosed is returned by Submit after Close.
var ErrPoolClosed = errors.New("tier1: pool closed")

// Pool runs compression jobs on a fixed number of workers, off the append
// path. Submit blocks while the queue is full (QueueCap jobs waiting), so a
// burst of seals slows the sealer instead of growing memory without bound.
// The gauge compression_queue_depth reports jobs waiting for a worker.
type Pool struct {
	jobs   chan func(context.Context)
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	depth  atomic.Int64
	log    *slog.Logger

	closeOnce sync.Once
	mu        sync.RWMutex // held for reading while submitting; Close takes it to close jobs
	closed    bool
}

// PoolOptions configures a Pool. Zero values take the defaults.
type PoolOptions struct {
	Workers  int // default 1
	QueueCap int // default 64
	Logger   *slog.Logger
	Meter    metric.Meter
}

// NewPool starts the workers.
func NewPool(opts PoolOptions) (*Pool, error) {
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	if opts.QueueCap <= 0 {
		opts.QueueCap = 64
	}
	p := &Pool{jobs: make(chan func(context.Context), opts.QueueCap), log: opts.Logger}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if opts.Meter != nil {
		g, err := opts.Meter.Int64ObservableGauge("compression_queue_depth",
			metric.WithDescription("compression jobs waiting for a worker"))
		if err != nil {
			return nil, fmt.Errorf("compression_queue_depth gauge: %w", err)
		}
		if _, err := opts.Meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
			o.ObserveInt64(g, p.depth.Load())
			return nil
		}, g); err != nil {
			return nil, fmt.Errorf("compression_queue_depth callback: %w", err)
		}
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	for range opts.Workers {
		p.wg.Add(1)
		go p.work()
	}
	return p, nil
}

func (p *Pool) work() {
	defer p.wg.Done()
	for job := range p.jobs {
		p.depth.Add(-1)
		func() {
			defer func() {
				if r := recover(); r != nil {
					p.log.Error("tier1_compression_panic", "panic", r)
				}
			}()
			job(p.ctx)
		}()
	}
}

// Submit queues job, waiting while the queue is full until ctx is done.
// The job receives a context that is cancelled by Close(ctx) when that
// ctx expires, so long jobs can stop early at shutdown.
func (p *Pool) Submit(ctx context.Context, job func(context.Context)) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrPoolClosed
	}
	p.depth.Add(1)
	select {
	case p.jobs <- job:
		return nil
	case <-ctx.Done():
		p.depth.Add(-1)
		return fmt.Errorf("submit compression job: %w", ctx.Err())
	}
}

// QueueDepth is the number of jobs waiting for a worker.
func (p *Pool) QueueDepth() int64 { return p.depth.Load() }

// Close stops accepting jobs and waits for queued ones to finish. If ctx
// ends first, running jobs see their context cancelled and Close returns
// ctx's error once they have returned.
func (p *Pool) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		close(p.jobs)
		p.mu.Unlock()
	})
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		p.cancel()
		return nil
	case <-ctx.Done():
		p.cancel()
		<-done
		return ctx.Err()
	}
}
