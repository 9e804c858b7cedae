package ingest

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/tiers/backpressure"
)

// HeldRedeliveryDelay is how long JetStream waits before it delivers a
// held stream's message again (NakWithDelay): long enough that held
// messages do not spin through the pipeline, short enough that they stay
// well inside any ack wait. The consumer has no MaxDeliver, so no number
// of naks ever drops a message.
const HeldRedeliveryDelay = 5 * time.Second

// Resume attempts for a held stream start after resumeFirstRetry and back
// off, doubling, to resumeMaxRetry. A stream held again within
// resumeMaxRetry of being resumed keeps its backoff: each resume restarts
// delivery from the ack floor, which redelivers every message since the
// held one, so a disk that only looks writable must not cause that every
// second.
const (
	resumeFirstRetry = time.Second
	resumeMaxRetry   = time.Minute
)

// A stream is held when the store refuses to write it (Flush or Rollover
// backpressure: a full disk, a manifest that cannot commit). The store
// keeps refusing it until it resumes, and its messages must never be
// stored out of sequence order (sequence dedupe would drop the older ones
// as duplicates): so none of the held stream's messages is stored or
// acked. Each is naked with HeldRedeliveryDelay, while every other stream
// goes on. Once the store resumes the stream, the pipeline restarts
// delivery from the ack floor, like after ErrDeliveryLost: the held
// messages come back first and in order, and the other streams' messages
// since then are recognised as duplicates.
type hold struct {
	kind   backpressure.Kind
	reason string
	since  time.Time
	// held is false once the stream was resumed; the entry stays to keep
	// its backoff should the stream fail again soon.
	held     bool
	resumed  time.Time
	backoff  time.Duration
	nextTry  time.Time
	attempts int
}

// holds is the pipeline's held streams, shared by the appending loop and
// the syncer.
type holds struct {
	mu      sync.Mutex
	streams map[string]*hold
	// syncing counts, per stream, the appended batches the syncer has not
	// finished: a stream is resumed only when none is left, so that no
	// record appended before its failure can be acked after the resume.
	syncing map[string]int
}

// HeldStream is a stream the pipeline holds.
type HeldStream struct {
	Stream string    `json:"stream"`
	Kind   string    `json:"kind"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// holdable reports whether err stops only its stream: the store refused to
// write it for now and will take it again after a resume.
func holdable(err error) bool {
	return backpressure.Is(err, backpressure.Flush) || backpressure.Is(err, backpressure.Rollover)
}

// holdStream marks stream held after the store answered err, once.
func (p *Pipeline) holdStream(ctx context.Context, stream string, err error) {
	var bp *backpressure.Error
	kind := backpressure.Flush
	if errors.As(err, &bp) {
		kind = bp.Kind
	}
	now := time.Now()
	p.holds.mu.Lock()
	h := p.holds.streams[stream]
	if h != nil && h.held {
		p.holds.mu.Unlock()
		return
	}
	if h == nil || now.Sub(h.resumed) > p.resumeMax {
		h = &hold{backoff: p.resumeFirst}
		p.holds.streams[stream] = h
	} else {
		// Failed again soon after a resume: keep backing off.
		h.backoff = min(2*h.backoff, p.resumeMax)
	}
	h.kind, h.reason, h.since, h.held = kind, err.Error(), now, true
	h.nextTry, h.attempts = now.Add(h.backoff), 0
	p.holds.mu.Unlock()
	p.inst.IncBackpressure(ctx, kind.String())
	p.log.Warn("ingest_stream_held", "stream", stream, "kind", kind.String(), "reason", err.Error(),
		"detail", "the stream's messages are not stored or acked until its store resumes; other streams go on")
}

// isHeld reports whether stream is held.
func (p *Pipeline) isHeld(stream string) bool {
	p.holds.mu.Lock()
	defer p.holds.mu.Unlock()
	h := p.holds.streams[stream]
	return h != nil && h.held
}

// heldStreams lists the held streams for Status.
func (p *Pipeline) heldStreams() []HeldStream {
	p.holds.mu.Lock()
	defer p.holds.mu.Unlock()
	var out []HeldStream
	for name, h := range p.holds.streams {
		if h.held {
			out = append(out, HeldStream{Stream: name, Kind: h.kind.String(), Reason: h.reason, Since: h.since})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Stream < out[j].Stream })
	return out
}

// nakHeld hands held messages back to JetStream for a later delivery.
func (p *Pipeline) nakHeld(msgs []jetstream.Msg) {
	for _, m := range msgs {
		if err := m.NakWithDelay(HeldRedeliveryDelay); err != nil {
			// Unacked, it comes back after the ack wait instead.
			p.log.Warn("ingest_nak_failed", "subject", m.Subject(), "err", err)
		}
	}
}

// startSyncing and doneSyncing count the syncer's unfinished batches per
// stream.
func (p *Pipeline) startSyncing(fl *inflight) {
	p.holds.mu.Lock()
	defer p.holds.mu.Unlock()
	for stream := range fl.syncs {
		p.holds.syncing[stream]++
	}
}

func (p *Pipeline) doneSyncing(fl *inflight) {
	p.holds.mu.Lock()
	defer p.holds.mu.Unlock()
	for stream := range fl.syncs {
		if p.holds.syncing[stream]--; p.holds.syncing[stream] <= 0 {
			delete(p.holds.syncing, stream)
		}
	}
}

// resumeHeld asks the store to resume each held stream that is due and
// has nothing left with the syncer, and returns those it resumed. They
// stay held until the caller has restarted delivery from the ack floor.
func (p *Pipeline) resumeHeld() []string {
	at := time.Now()
	p.holds.mu.Lock()
	var due []string
	for name, h := range p.holds.streams {
		if h.held && !at.Before(h.nextTry) && p.holds.syncing[name] == 0 {
			due = append(due, name)
		}
	}
	p.holds.mu.Unlock()
	var resumed []string
	for _, stream := range due {
		err := p.store.ResumeStream(stream)
		p.holds.mu.Lock()
		h := p.holds.streams[stream]
		h.attempts++
		if err != nil {
			h.reason = err.Error()
			h.backoff = min(2*h.backoff, p.resumeMax)
			h.nextTry = time.Now().Add(h.backoff)
		}
		attempts, retry := h.attempts, h.backoff
		p.holds.mu.Unlock()
		if err != nil {
			p.log.Warn("ingest_stream_resume_failed", "stream", stream, "attempts", attempts, "retry_in", retry, "err", err)
			continue
		}
		resumed = append(resumed, stream)
	}
	return resumed
}

// endHolds ends the hold of streams once delivery restarts from the ack
// floor.
func (p *Pipeline) endHolds(streams []string) {
	now := time.Now()
	for _, stream := range streams {
		p.holds.mu.Lock()
		h := p.holds.streams[stream]
		h.held, h.resumed = false, now
		since := h.since
		p.holds.mu.Unlock()
		p.log.Info("ingest_stream_resumed", "stream", stream, "held_for", now.Sub(since).Round(time.Millisecond))
	}
}

// errResumed ends one consumer run so that delivery restarts from the
// ack floor after held streams resumed.
type errResumed struct{ streams []string }

func (e *errResumed) Error() string { return "held streams resumed; restarting from the ack floor" }
