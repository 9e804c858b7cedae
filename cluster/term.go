package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// term is one partition held by this node, from acquisition to the end of
// its handler.
type term struct {
	acquiredAt   time.Time
	handover     chan struct{}
	handoverOnce sync.Once
	releasedAs   atomic.Int32            // a rest once Release closed handover (restQuiet...); 0 before
	cancel       context.CancelCauseFunc // cancels the handler's ctx
	done         chan struct{}           // closed when the term is over
	err          error                   // why it ended; written before done closes

	mu         sync.Mutex
	lease      Lease
	validUntil time.Time // on the monotonic clock
}

func (t *term) current() Lease {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lease
}

type termKey struct{}

// Valid reports whether the term whose handler ctx this is still holds its
// lease by this node's reckoning: ctx is not done and the validity deadline
// has not passed, even if the goroutine that would cancel ctx has not run
// yet (a process resumed after a pause checks its clock here first). nil
// means valid; otherwise the error wraps ErrLeaseLost or is ctx's cause.
// It narrows the window of a zombie; fencing (epochs in Tier 2 keys,
// revisions of archived records) is what closes it.
func Valid(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	t, ok := ctx.Value(termKey{}).(*term)
	if !ok {
		return errors.New("cluster: Valid: ctx is not a partition handler's")
	}
	t.mu.Lock()
	until := t.validUntil
	t.mu.Unlock()
	if !time.Now().Before(until) {
		return fmt.Errorf("%w: validity ran out", ErrLeaseLost)
	}
	return nil
}

// start begins a term: the handler runs and the lease is renewed until the
// handler returns or ownership ends.
func (m *Manager) start(ctx context.Context, l Lease, acquiredAt, validUntil time.Time) {
	t := &term{acquiredAt: acquiredAt, handover: make(chan struct{}), done: make(chan struct{}), lease: l, validUntil: validUntil}
	hctx, cancel := context.WithCancelCause(context.WithValue(ctx, termKey{}, t))
	t.cancel = cancel
	m.mu.Lock()
	m.terms[l.Partition] = t
	m.mu.Unlock()
	m.acquired.Add(1)
	m.log.Info("cluster_partition_acquired", "partition", l.Partition, "epoch", l.Epoch)
	m.beatSoon()
	m.wg.Add(1)
	go m.hold(hctx, t)
}

// hold runs one term to its end. The handler's ctx is cancelled as soon as
// keepRenewed returns; the lease is deleted only after the handler has
// returned, and only if it was not lost.
func (m *Manager) hold(ctx context.Context, t *term) {
	defer m.wg.Done()
	l := t.current()
	handlerDone := make(chan struct{})
	go func() {
		defer close(handlerDone)
		m.h.Acquired(ctx, l, t.handover)
	}()
	err := m.keepRenewed(ctx, t, handlerDone)
	t.cancel(cmpOr(err, errHandlerReturned))
	<-handlerDone
	lost := errors.Is(err, ErrLeaseLost)
	if !lost {
		m.deleteLease(ctx, t)
	}
	m.mu.Lock()
	delete(m.terms, l.Partition)
	if !lost {
		m.rest(l.Partition, rest(t.releasedAs.Load()), time.Since(t.acquiredAt))
	}
	m.mu.Unlock()
	if lost {
		m.lost.Add(1)
		m.log.Error("cluster_partition_lost", "partition", l.Partition, "epoch", l.Epoch, "err", err)
	} else {
		m.released.Add(1)
		m.log.Info("cluster_partition_released", "partition", l.Partition, "epoch", l.Epoch, "cause", cmpOr(err, errHandlerReturned))
	}
	t.err = err
	close(t.done)
	m.beatSoon()
}

// deleteLease deletes the lease of a term whose handler has returned. A
// renewal cut short by the end of Run may have been stored all the same,
// so a mismatch on a revision of this very term is adopted and retried.
func (m *Manager) deleteLease(ctx context.Context, t *term) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.ttl)
	defer cancel()
	l := t.current()
	err := m.b.release(ctx, l)
	if errors.Is(err, ErrLeaseLost) {
		if adopted, ok := m.b.adoptRevision(ctx, l); ok {
			err = m.b.release(ctx, adopted)
		}
	}
	if err != nil {
		m.log.Warn("cluster_release_failed", "partition", l.Partition, "err", err)
	}
}

// keepRenewed renews the lease every ttl/3 (sooner after a failed attempt)
// until the handler returns (nil), ctx ends (its cause) or ownership ends
// (ErrLeaseLost): at once on a revision mismatch, or when the validity
// deadline passes without a successful renewal.
func (m *Manager) keepRenewed(ctx context.Context, t *term, handlerDone <-chan struct{}) error {
	t.mu.Lock()
	validUntil := t.validUntil
	t.mu.Unlock()
	expiry := time.NewTimer(time.Until(validUntil))
	defer expiry.Stop()
	next := time.NewTimer(m.renewEvery)
	defer next.Stop()
	for {
		select {
		case <-handlerDone:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-expiry.C:
			return fmt.Errorf("%w: not renewed within %s", ErrLeaseLost, m.ttl-m.margin)
		case <-next.C:
		}
		if m.paused.Load() {
			next.Reset(m.renewEvery)
			continue
		}
		sent, err := m.renewOnce(ctx, t, validUntil)
		switch {
		case ctx.Err() != nil:
			return context.Cause(ctx)
		case err == nil:
			validUntil = sent.Add(m.ttl - m.margin)
			expiry.Reset(time.Until(validUntil))
			t.mu.Lock()
			t.validUntil = validUntil
			t.mu.Unlock()
			next.Reset(m.renewEvery)
		case errors.Is(err, ErrLeaseLost):
			return err
		default:
			m.log.Warn("cluster_renew_failed", "partition", t.current().Partition, "err", err, "valid_for", time.Until(validUntil))
			next.Reset(m.renewEvery / 3)
		}
	}
}

// renewOnce renews the lease, bounded by its validity. A mismatch on a
// revision this very term wrote (an earlier renewal stored but whose reply
// was lost) is resolved by adoptRevision and retried once.
func (m *Manager) renewOnce(ctx context.Context, t *term, validUntil time.Time) (time.Time, error) {
	rctx, cancel := context.WithDeadline(ctx, validUntil)
	defer cancel()
	l, sent, err := m.b.renew(rctx, t.current(), t.acquiredAt, m.ttl)
	if errors.Is(err, ErrLeaseLost) {
		if adopted, ok := m.b.adoptRevision(rctx, t.current()); ok {
			l, sent, err = m.b.renew(rctx, adopted, t.acquiredAt, m.ttl)
		}
	}
	if err != nil {
		return sent, err
	}
	t.mu.Lock()
	t.lease = l
	t.mu.Unlock()
	return sent, nil
}

func cmpOr(err, fallback error) error {
	if err != nil {
		return err
	}
	return fallback
}
