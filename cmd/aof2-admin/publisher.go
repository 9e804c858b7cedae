package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publisher sends replayed records: core NATS publishes, or JetStream
// publishes whose acks it awaits.
type publisher interface {
	publish(ctx context.Context, m *nats.Msg, offset uint64) error
	// finish waits until everything published is confirmed.
	finish(ctx context.Context) (publishStats, error)
	// unconfirmed is the first offset not confirmed yet; next when all are.
	unconfirmed(next uint64) uint64
}

type publishStats struct {
	stored, duplicates uint64
}

func newPublisher(nc *nats.Conn, useJetStream bool, window int, timeout time.Duration) (publisher, error) {
	if !useJetStream {
		return &corePublisher{nc: nc, timeout: timeout}, nil
	}
	// No WithPublishAsyncTimeout: it arms a timer for every publish.
	// awaitOldest's one timer bounds the wait for each ack instead, and
	// a replay that waited in vain stops.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(window))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	t := time.NewTimer(timeout)
	t.Stop()
	return &jsPublisher{js: js, window: window, timeout: timeout, timer: t}, nil
}

// corePublisher publishes without acks; finish flushes the connection,
// so the server has every message when it returns.
type corePublisher struct {
	nc      *nats.Conn
	timeout time.Duration // for the final flush
	flushed bool
	pending uint64 // first offset not flushed
	started bool
}

func (p *corePublisher) publish(_ context.Context, m *nats.Msg, offset uint64) error {
	if !p.started {
		p.pending, p.started = offset, true
	}
	if err := p.nc.PublishMsg(m); err != nil {
		return fmt.Errorf("publish offset %d to %s: %w", offset, m.Subject, err)
	}
	return nil
}

func (p *corePublisher) finish(ctx context.Context) (publishStats, error) {
	// FlushWithContext refuses a context without a deadline, which the
	// command's is (it ends on a signal).
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if err := p.nc.FlushWithContext(ctx); err != nil {
		return publishStats{}, fmt.Errorf("flush the published records to the NATS server: %w", err)
	}
	p.flushed = true
	return publishStats{}, nil
}

func (p *corePublisher) unconfirmed(next uint64) uint64 {
	if p.flushed || !p.started {
		return next
	}
	return p.pending
}

// jsPublisher publishes asynchronously with at most window publishes
// awaiting their ack: the acks arrive in order of the publishes of one
// connection, so it waits for the oldest when the window is full.
type jsPublisher struct {
	js      jetstream.JetStream
	window  int
	timeout time.Duration
	pending []pendingAck // oldest first
	stats   publishStats
	timer   *time.Timer // awaitOldest's, reused
}

type pendingAck struct {
	offset  uint64
	subject string
	future  jetstream.PubAckFuture
}

func (p *jsPublisher) publish(ctx context.Context, m *nats.Msg, offset uint64) error {
	for len(p.pending) >= p.window {
		if err := p.awaitOldest(ctx); err != nil {
			return err
		}
	}
	f, err := p.js.PublishMsgAsync(m)
	if err != nil {
		return fmt.Errorf("publish offset %d to %s: %w", offset, m.Subject, err)
	}
	p.pending = append(p.pending, pendingAck{offset: offset, subject: m.Subject, future: f})
	return nil
}

func (p *jsPublisher) awaitOldest(ctx context.Context) error {
	a := p.pending[0]
	// The oldest was published at least as long ago as the wait: an ack
	// that does not come within the timeout of it is lost.
	p.timer.Reset(p.timeout)
	defer p.timer.Stop()
	select {
	case ack := <-a.future.Ok():
		p.pending = p.pending[1:]
		if ack.Duplicate {
			p.stats.duplicates++
		} else {
			p.stats.stored++
		}
		return nil
	case err := <-a.future.Err():
		return ackError(a, err)
	case <-p.timer.C:
		return ackError(a, jetstream.ErrAsyncPublishTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *jsPublisher) finish(ctx context.Context) (publishStats, error) {
	for len(p.pending) > 0 {
		if err := p.awaitOldest(ctx); err != nil {
			return p.stats, err
		}
	}
	return p.stats, nil
}

func (p *jsPublisher) unconfirmed(next uint64) uint64 {
	if len(p.pending) > 0 {
		return p.pending[0].offset
	}
	return next
}

// ackError explains a failed JetStream publish; no stream answering is
// the usual mistake.
func ackError(a pendingAck, err error) error {
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("JetStream publish of offset %d to %s: no stream stores this subject (create one whose subjects match, "+
			"or replay without --jetstream): %w", a.offset, a.subject, err)
	}
	return fmt.Errorf("JetStream publish of offset %d to %s: %w", a.offset, a.subject, err)
}
