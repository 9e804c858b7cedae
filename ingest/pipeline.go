package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/bop-aof/aof/tiers/backpressure"
	"github.com/bop-aof/aof/tiers/segment"
	"github.com/bop-aof/aof/tracing"
)

// Store is what the pipeline needs of the tiered store.
type Store interface {
	// AppendDurable appends recs to stream and returns once every one of
	// them is durable. When Tier 0 cannot admit them it appends nothing
	// and returns *backpressure.Error of kind Admission.
	AppendDurable(ctx context.Context, stream string, recs []segment.Record) error
	// LastExtID is the highest ext_id stored for stream, 0 for none.
	LastExtID(stream string) (uint64, error)
	// WaitForAdmission blocks until n bytes could be admitted to Tier 0
	// or ctx ends.
	WaitForAdmission(ctx context.Context, n int64) error
}

// Options configure a Pipeline. Zero values take the defaults noted.
type Options struct {
	Consumer         ConsumerSettings
	SubjectPrefix    string // aof.ingest
	DeadLetterPrefix string // aof.deadletter
	BatchSize        int    // 256
	MaxRecordBytes   int    // 1 MiB: the whole stored envelope
	Logger           *slog.Logger
	Tracer           trace.Tracer
	// Instruments records ingest_messages, ingest_bytes, backpressure and
	// deadletters; nil records nothing.
	Instruments *tracing.Instruments
}

// InvalidStream is the dead-letter token for messages whose subject names
// no valid stream.
const InvalidStream = "_invalid"

// Pipeline consumes AOF_INGEST and stores every message exactly once.
// Run it from one goroutine; it is the stream's single writer.
type Pipeline struct {
	js    jetstream.JetStream
	store Store
	opts  Options
	log   *slog.Logger
	tr    trace.Tracer

	inst *tracing.Instruments
	// ack acknowledges a stored message; tests replace it to lose acks.
	ack func(jetstream.Msg) error

	mu          sync.Mutex
	blocked     bool // waiting for Tier 0 admission
	startSeq    uint64
	stored      uint64
	duplicates  uint64
	deadLetters uint64
}

// NewPipeline returns a pipeline over js and store.
func NewPipeline(js jetstream.JetStream, store Store, opts Options) (*Pipeline, error) {
	if opts.SubjectPrefix == "" {
		opts.SubjectPrefix = "aof.ingest"
	}
	if opts.DeadLetterPrefix == "" {
		opts.DeadLetterPrefix = "aof.deadletter"
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 256
	}
	if opts.MaxRecordBytes <= 0 {
		opts.MaxRecordBytes = 1 << 20
	}
	if opts.Consumer.FilterSubject == "" {
		opts.Consumer.FilterSubject = opts.SubjectPrefix + ".>"
	}
	if opts.Consumer.AckWait <= 0 {
		opts.Consumer.AckWait = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Tracer == nil {
		opts.Tracer = tracenoop.NewTracerProvider().Tracer("ingest")
	}
	return &Pipeline{js: js, store: store, opts: opts, log: opts.Logger, tr: opts.Tracer, inst: opts.Instruments,
		ack: func(m jetstream.Msg) error { return m.Ack() }}, nil
}

// Status is a point-in-time view for /readyz and the control service.
type Status struct {
	AdmissionBlocked bool   `json:"admission_blocked"`
	StartSequence    uint64 `json:"start_sequence"`
	Stored           uint64 `json:"stored"`
	Duplicates       uint64 `json:"duplicates"`
	DeadLetters      uint64 `json:"dead_letters"`
}

// Status reports what the pipeline is doing.
func (p *Pipeline) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Status{AdmissionBlocked: p.blocked, StartSequence: p.startSeq, Stored: p.stored, Duplicates: p.duplicates, DeadLetters: p.deadLetters}
}

// Run consumes until ctx ends or storing fails. On ctx end it finishes the
// batch in hand (append, fsync, ack) and returns nil. A store failure
// returns the error with nothing after the failed message acked; the
// caller may Run again, which redelivers from the ack floor.
func (p *Pipeline) Run(ctx context.Context) error {
	cons, start, err := resetConsumer(ctx, p.js, p.opts.Consumer)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.startSeq = start
	p.mu.Unlock()
	p.log.Info("ingest_started", "consumer", p.opts.Consumer.Durable, "start_sequence", start)

	it, err := cons.Messages(jetstream.PullMaxMessages(2 * p.opts.BatchSize))
	if err != nil {
		return fmt.Errorf("consume %s: %w", p.opts.Consumer.Durable, err)
	}
	feed := make(chan jetstream.Msg, p.opts.BatchSize)
	done := make(chan struct{})
	var feeder sync.WaitGroup
	feeder.Add(1)
	go func() {
		defer feeder.Done()
		defer close(feed)
		for {
			m, err := it.Next()
			if err != nil {
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					return
				}
				p.log.Warn("ingest_fetch_error", "err", err)
				continue
			}
			select {
			case feed <- m:
			case <-done:
				return
			}
		}
	}()
	defer func() {
		close(done)
		it.Stop()
		feeder.Wait()
	}()

	batch := make([]jetstream.Msg, 0, p.opts.BatchSize)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-feed:
			if !ok {
				return nil
			}
			batch = append(batch, m)
		}
	drain:
		for len(batch) < p.opts.BatchSize {
			select {
			case m, ok := <-feed:
				if !ok {
					break drain
				}
				batch = append(batch, m)
			default:
				break drain
			}
		}
		// The batch in hand is finished even when ctx ends meanwhile:
		// stored records get their acks.
		if err := p.process(ctx, batch); err != nil {
			return err
		}
	}
}

// pending is one message on its way to the store.
type pending struct {
	msg    jetstream.Msg
	seq    uint64
	stream string
}

func (p *Pipeline) process(ctx context.Context, batch []jetstream.Msg) error {
	work := context.WithoutCancel(ctx)
	links := make([]trace.Link, 0, len(batch))
	for _, m := range batch {
		if l, ok := tracing.LinkFromHeaders(m.Headers()); ok {
			links = append(links, l)
		}
	}
	spanCtx, span := p.tr.Start(work, tracing.SpanIngestBatch, trace.WithLinks(links...),
		trace.WithAttributes(tracing.AttrRecords.Int(len(batch))))
	defer span.End()
	// With one producer message the batch span is its child, so the
	// trace reads straight from producer to fsync.
	if len(links) == 1 && len(batch) == 1 {
		span.End()
		parent := tracing.Extract(work, batch[0].Headers())
		spanCtx, span = p.tr.Start(parent, tracing.SpanIngestBatch, trace.WithAttributes(tracing.AttrRecords.Int(1)))
	}

	groups := make(map[string][]pending)
	var order []string
	for _, m := range batch {
		meta, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("message metadata: %w", err)
		}
		stream, err := StreamFromSubject(p.opts.SubjectPrefix, m.Subject())
		if err != nil {
			if err := p.deadLetter(spanCtx, m, meta.Sequence.Stream, InvalidStream, err.Error()); err != nil {
				return err
			}
			continue
		}
		if _, ok := groups[stream]; !ok {
			order = append(order, stream)
		}
		groups[stream] = append(groups[stream], pending{msg: m, seq: meta.Sequence.Stream, stream: stream})
	}

	type result struct {
		acks []jetstream.Msg
		err  error
	}
	results := make([]result, len(order))
	var wg sync.WaitGroup
	for i, stream := range order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acks, err := p.storeGroup(ctx, spanCtx, stream, groups[stream])
			results[i] = result{acks, err}
		}()
	}
	wg.Wait()

	var firstErr error
	for i, r := range results {
		for _, m := range r.acks {
			if err := p.ack(m); err != nil {
				// The record is durable; a lost ack only means a
				// redelivery, which is recognised by sequence.
				p.log.Warn("ingest_ack_failed", "stream", order[i], "err", err)
			}
		}
		if r.err != nil && firstErr == nil {
			firstErr = fmt.Errorf("stream %s: %w", order[i], r.err)
		}
	}
	if firstErr != nil {
		span.RecordError(firstErr)
	}
	return firstErr
}

// storeGroup stores one stream's messages of a batch in sequence order and
// returns the messages to ack: those stored, the redeliveries, and the
// dead-lettered ones are handled inside. On error, the returned messages
// are the ones stored before it; nothing after the failure is acked.
func (p *Pipeline) storeGroup(ctx, spanCtx context.Context, stream string, msgs []pending) ([]jetstream.Msg, error) {
	last, err := p.store.LastExtID(stream)
	if err != nil {
		return nil, err
	}
	var acks, toStore []jetstream.Msg
	recs := make([]segment.Record, 0, len(msgs))
	var size int64
	for _, pm := range msgs {
		if pm.seq <= last {
			p.count(&p.duplicates, 1)
			acks = append(acks, pm.msg)
			continue
		}
		payload := AppendEnvelope(nil, Envelope{Subject: pm.msg.Subject(), Header: pm.msg.Headers(), Body: pm.msg.Data()})
		if len(payload) > p.opts.MaxRecordBytes {
			reason := fmt.Sprintf("record of %d bytes exceeds ingest.max_record_bytes (%d)", len(payload), p.opts.MaxRecordBytes)
			if err := p.deadLetter(spanCtx, pm.msg, pm.seq, stream, reason); err != nil {
				return acks, err
			}
			continue
		}
		last = pm.seq
		recs = append(recs, segment.Record{Payload: payload, ExtID: pm.seq})
		toStore = append(toStore, pm.msg)
		size += int64(len(payload))
	}
	if len(recs) == 0 {
		return acks, nil
	}
	if err := p.appendWithAdmission(ctx, spanCtx, stream, recs, toStore); err != nil {
		return acks, err
	}
	p.inst.AddIngest(spanCtx, int64(len(recs)), size)
	p.count(&p.stored, uint64(len(recs)))
	return append(acks, toStore...), nil
}

// appendWithAdmission appends recs, waiting for Tier 0 admission when the
// budget is full. While it waits, the messages are kept alive with
// in-progress acks so JetStream does not redeliver them. A batch too big to
// admit at once goes in halves, in order, so a small budget still drains.
func (p *Pipeline) appendWithAdmission(ctx, spanCtx context.Context, stream string, recs []segment.Record, msgs []jetstream.Msg) error {
	for {
		err := p.store.AppendDurable(spanCtx, stream, recs)
		if err == nil {
			return nil
		}
		if !backpressure.Is(err, backpressure.Admission) {
			return err
		}
		p.inst.IncBackpressure(spanCtx, backpressure.Admission.String())
		if len(recs) > 1 {
			half := len(recs) / 2
			if err := p.appendWithAdmission(ctx, spanCtx, stream, recs[:half], msgs[:half]); err != nil {
				return err
			}
			recs, msgs = recs[half:], msgs[half:]
			continue
		}
		if err := p.waitAdmission(ctx, stream, int64(len(recs[0].Payload)), msgs); err != nil {
			return err
		}
	}
}

func (p *Pipeline) waitAdmission(ctx context.Context, stream string, n int64, msgs []jetstream.Msg) error {
	p.setBlocked(true)
	defer p.setBlocked(false)
	p.log.Warn("ingest_admission_backpressure", "stream", stream, "bytes", n)
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		t := time.NewTicker(max(p.opts.Consumer.AckWait/3, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-waitCtx.Done():
				return
			case <-t.C:
				for _, m := range msgs {
					m.InProgress()
				}
			}
		}
	}()
	if err := p.store.WaitForAdmission(waitCtx, n); err != nil {
		return fmt.Errorf("wait for admission: %w", err)
	}
	return nil
}

func (p *Pipeline) count(c *uint64, n uint64) {
	p.mu.Lock()
	*c += n
	p.mu.Unlock()
}

func (p *Pipeline) setBlocked(b bool) {
	p.mu.Lock()
	p.blocked = b
	p.mu.Unlock()
}

// Header names set on dead letters.
const (
	HeaderError           = "Aof-Error"
	HeaderOriginalSubject = "Aof-Original-Subject"
	HeaderOriginalSeq     = "Aof-Original-Sequence"
)

// deadLetter republishes m to the dead-letter subject with the reason, then
// terminates it. The republish is confirmed by JetStream before the
// original is terminated, and deduplicated by the original sequence, so a
// crash in between neither loses nor doubles it.
func (p *Pipeline) deadLetter(ctx context.Context, m jetstream.Msg, seq uint64, stream, reason string) error {
	out := nats.NewMsg(p.opts.DeadLetterPrefix + "." + stream)
	for k, v := range m.Headers() {
		out.Header[k] = append([]string(nil), v...)
	}
	out.Header.Set(HeaderError, reason)
	out.Header.Set(HeaderOriginalSubject, m.Subject())
	out.Header.Set(HeaderOriginalSeq, strconv.FormatUint(seq, 10))
	out.Header.Set(jetstream.MsgIDHeader, "deadletter-"+strconv.FormatUint(seq, 10))
	tracing.Inject(ctx, out.Header)
	out.Data = m.Data()
	if _, err := p.js.PublishMsg(ctx, out); err != nil {
		return fmt.Errorf("publish dead letter for sequence %d: %w", seq, err)
	}
	p.inst.IncDeadletter(ctx)
	p.count(&p.deadLetters, 1)
	p.log.Warn("ingest_dead_letter", "stream", stream, "sequence", seq, "subject", m.Subject(), "reason", reason)
	if err := m.TermWithReason(reason); err != nil {
		p.log.Warn("ingest_term_failed", "sequence", seq, "err", err)
	}
	return nil
}
