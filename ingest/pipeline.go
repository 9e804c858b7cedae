package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/bop-aof/aof/readapi"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/backpressure"
	"github.com/bop-aof/aof/tiers/segment"
	"github.com/bop-aof/aof/tiers/tier0"
	"github.com/bop-aof/aof/tracing"
)

// Store is what the pipeline needs of the tiered store.
type Store interface {
	// Append appends recs to stream without waiting for durability and
	// returns the offset after the last record. It does not keep the
	// payloads after it returns: the pipeline reuses their memory. When Tier 0 cannot admit
	// them it appends nothing and returns *backpressure.Error of kind
	// Admission.
	Append(ctx context.Context, stream string, recs []segment.Record) (next uint64, err error)
	// SyncTo returns once every record of stream below next is durable.
	SyncTo(ctx context.Context, stream string, next uint64) error
	// DedupeView tells which ext_ids stream already holds: those up to
	// the highest appended, except ranges a disaster recovery lost.
	DedupeView(stream string) (tiers.Dedupe, error)
	// WaitForAdmission blocks until n bytes could be admitted to Tier 0
	// or ctx ends.
	WaitForAdmission(ctx context.Context, n int64) error
	// Resume lets streams whose fsync failed take appends again; called
	// when the pipeline restarts from the ack floor.
	Resume() error
	// ResumeStream makes one stream writable again if it can, and returns
	// Flush or Rollover backpressure while it cannot; the pipeline calls
	// it for a held stream once nothing it appended to it is unsynced.
	ResumeStream(stream string) error
	// RecordLimit is the largest payload Append can ever take: a larger
	// record would fail on every redelivery, so it is dead-lettered.
	RecordLimit() tiers.RecordLimit
	// Streams names the streams the store holds, those on disk included.
	Streams() []string
}

// Options configure a Pipeline. Zero values take the defaults noted.
type Options struct {
	Consumer         ConsumerSettings
	SubjectPrefix    string // aof.ingest
	DeadLetterPrefix string // aof.deadletter
	BatchSize        int    // 2048: the most messages one group fsync covers
	MaxRecordBytes   int    // 1 MiB: the whole stored envelope
	MaxStreams       int    // 10000: a new stream beyond it, counting those on disk, is dead-lettered
	Logger           *slog.Logger
	Tracer           trace.Tracer
	// OnReplayStarted is called once the consumer was moved to the start
	// of the stream (Consumer.ReplayFromStart).
	OnReplayStarted func()
	// Instruments records ingest_messages, ingest_bytes, backpressure,
	// deadletters and ingest_lost_messages; nil records nothing.
	Instruments *tracing.Instruments
	// MayAck, when set, is asked before each ack of stored messages; when
	// it says no (the partition's lease may have expired) the messages are
	// left unacked for the partition's next owner. nil always acks.
	MayAck func() bool
	// OnBacklog, when set, is called after a batch is appended if more
	// messages wait in the ingest stream behind it (the last message's
	// pending count): the store's compression yields to ingest then
	// (tiers.Store.IngestBacklog).
	OnBacklog func()

	// Partitions is the ingest stream's partition count
	// (StreamSettings.Partitions); 0 consumes the unpartitioned stream
	// with one consumer. Above 0 the pipeline consumes partition
	// Partition only, with the durable <Consumer.Durable>-p<Partition>
	// filtered on <prefix>.<Partition>.*, and PartitionOf must give a
	// stream's partition as the stream's transform does (nats-server's
	// partition(Partitions, 1), cluster.PartitionOf).
	Partitions  int
	Partition   int
	PartitionOf func(stream string) int
	// LostCheckInterval is how often the pipeline looks for messages that
	// left the ingest stream before they were stored (ingest_lost_messages),
	// besides at every start; 30s.
	LostCheckInterval time.Duration
}

// PartitionDurable is the durable consumer name of partition p.
func PartitionDurable(durable string, p int) string {
	return durable + "-p" + strconv.Itoa(p)
}

// ErrDeliveryLost stops Run when the consumer's deliveries skip one (a
// reconnect, a slow-consumer drop): the caller runs the pipeline again,
// which restarts from the ack floor.
var ErrDeliveryLost = errors.New("a delivery was lost; restarting from the ack floor")

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
	// lastConsumerSeq is the consumer sequence of the last delivery seen
	// in this Run.
	lastConsumerSeq uint64
	// groups is appendBatch's grouping of a batch by stream, kept for
	// the next batch.
	groups streamGroups
	// streams holds the streams the store held at the start of this Run
	// and those admitted since, for MaxStreams; nil until counted.
	streams map[string]struct{}

	// lostThrough is the last sequence counted in ingest_lost_messages.
	lostThrough uint64
	// position is the stream sequence after the last message delivered
	// in this run (its start sequence before the first).
	position uint64

	// holds are the streams held after the store refused to write them.
	holds holds
	// resumeFirst and resumeMax bound the backoff of a held stream's
	// resume attempts (resumeFirstRetry, resumeMaxRetry; tests shorten
	// them).
	resumeFirst, resumeMax time.Duration

	mu          sync.Mutex
	blocked     bool // waiting for Tier 0 admission
	startSeq    uint64
	starts      int // consumer starts, for tests
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
		opts.BatchSize = 2048
	}
	if opts.MaxRecordBytes <= 0 {
		opts.MaxRecordBytes = 1 << 20
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = 10000
	}
	if opts.Partitions > 0 {
		if opts.PartitionOf == nil || opts.Partition < 0 || opts.Partition >= opts.Partitions {
			return nil, fmt.Errorf("ingest: partition %d of %d needs PartitionOf and 0 <= partition < partitions", opts.Partition, opts.Partitions)
		}
		opts.Consumer.Durable = PartitionDurable(opts.Consumer.Durable, opts.Partition)
	}
	if len(opts.Consumer.FilterSubjects) == 0 {
		opts.Consumer.FilterSubjects = []string{opts.SubjectPrefix + ".>"}
		if opts.Partitions > 0 {
			opts.Consumer.FilterSubjects = []string{PartitionFilter(opts.SubjectPrefix, opts.Partition)}
		}
	}
	if opts.LostCheckInterval <= 0 {
		opts.LostCheckInterval = 30 * time.Second
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
		ack:         func(m jetstream.Msg) error { return m.Ack() },
		holds:       holds{streams: map[string]*hold{}, syncing: map[string]int{}},
		groups:      streamGroups{bySubject: map[string]int{}, byStream: map[string]int{}},
		resumeFirst: resumeFirstRetry, resumeMax: resumeMaxRetry}, nil
}

// Status is a point-in-time view for /readyz and the control service.
type Status struct {
	AdmissionBlocked bool   `json:"admission_blocked"`
	StartSequence    uint64 `json:"start_sequence"`
	Stored           uint64 `json:"stored"`
	Duplicates       uint64 `json:"duplicates"`
	DeadLetters      uint64 `json:"dead_letters"`
	// HeldStreams are the streams whose store refuses writes for now
	// (a full disk): their messages wait in JetStream, unacked, while
	// the other streams go on.
	HeldStreams []HeldStream `json:"held_streams,omitempty"`
}

// Status reports what the pipeline is doing.
func (p *Pipeline) Status() Status {
	held := p.heldStreams()
	p.mu.Lock()
	defer p.mu.Unlock()
	return Status{AdmissionBlocked: p.blocked, StartSequence: p.startSeq, Stored: p.stored, Duplicates: p.duplicates, DeadLetters: p.deadLetters,
		HeldStreams: held}
}

// consumerStarts is how many times the pipeline positioned its consumer.
func (p *Pipeline) consumerStarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// Run consumes until ctx ends or storing fails. On ctx end it finishes the
// batch in hand (append, fsync, ack) and returns nil. A store failure
// returns the error with nothing after the failed message acked; the
// caller may Run again, which redelivers from the ack floor.
//
// A stream the store refuses with Flush or Rollover backpressure (its disk
// is full) does not stop Run: that stream is held (see hold) and the
// others go on. When the store resumes it, Run restarts delivery from the
// ack floor by itself.
func (p *Pipeline) Run(ctx context.Context) error {
	stale := 0
	for {
		err := p.consume(ctx)
		if errors.Is(err, errStalePull) && stale < maxStalePulls && ctx.Err() == nil {
			// A pull request of the consumer's previous run took the
			// first deliveries: once its unsubscribe has reached the
			// server, a new start delivers them again.
			stale++
			p.log.Info("ingest_restart_stale_pull", "err", err)
			if err := sleepCtx(ctx, resetSettle); err != nil {
				return nil
			}
			continue
		}
		var resumed *errResumed
		if !errors.As(err, &resumed) {
			return err
		}
		stale = 0
		p.endHolds(resumed.streams)
		if ctx.Err() != nil {
			return nil
		}
	}
}

// errStalePull is a first delivery above 1 after the consumer was
// positioned: the ones before it went to a pull request still pending
// from before (an iterator unsubscribes asynchronously after Stop). Run
// starts again, up to maxStalePulls times in a row, before it gives up
// with ErrDeliveryLost (then another process is pulling the consumer).
var errStalePull = fmt.Errorf("first delivery went to an earlier pull request: %w", ErrDeliveryLost)

const maxStalePulls = 5

// consume runs one consumer from the ack floor until ctx ends, storing
// fails, or held streams resumed (*errResumed).
//
// The loop of the package doc runs in two stages, so that batch k+1 is
// appended while batch k is fsynced. On this goroutine runBatches fetches
// a batch, and appendBatch checks, dead-letters, groups and appends it;
// the syncer (syncAndAck) fsyncs what was appended, then acks it. Appends
// stay in order, and a message is acked only after the fsync covering it.
func (p *Pipeline) consume(ctx context.Context) error {
	cons, err := p.restartAtAckFloor(ctx)
	if err != nil {
		return err
	}
	feed, stopFeed, err := p.startFeed(cons)
	if err != nil {
		return err
	}
	// Runs after runBatches has stopped the syncer: every batch in hand
	// is synced and acked before the deliveries stop.
	defer stopFeed()
	return p.runBatches(ctx, feed, p.startSyncStage())
}

// resumeAtStart lets the store take appends again before a consumer
// starts: a restart redelivers from the ack floor, so logs whose fsync
// failed may take appends again.
func (p *Pipeline) resumeAtStart() error {
	if err := p.store.Resume(); err != nil {
		return fmt.Errorf("resume store: %w", err)
	}
	// Nothing is in flight yet, so a held stream that is due goes on from
	// the ack floor with the others. One that is not due stays held: a
	// restart caused by another stream must not cut its backoff short,
	// or a flapping stream would be resumed (and fail, and restart
	// delivery from the ack floor again) at every restart.
	p.endHolds(p.resumeHeld())
	return nil
}

// restartAtAckFloor moves the consumer to its ack floor (or to the start
// sequence it was given), so that the messages not acked yet come first
// and in sequence order (see the package doc), checks that no message
// left the stream before it was stored, and starts this run's counting
// afresh.
func (p *Pipeline) restartAtAckFloor(ctx context.Context) (jetstream.Consumer, error) {
	if err := p.resumeAtStart(); err != nil {
		return nil, err
	}
	settings, err := p.consumerSettings(ctx)
	if err != nil {
		return nil, err
	}
	pos, err := positionConsumer(ctx, p.js, settings)
	if err != nil {
		return nil, err
	}
	if pos.clamped > 0 {
		p.log.Warn("ingest_start_clamped", "consumer", settings.Durable, "wanted_sequence", pos.clamped, "start_sequence", pos.start,
			"detail", "the consumer was created at a later sequence and cannot deliver earlier messages; those before it were archived or acked when it was created")
	}
	replayed := settings.ReplayFromStart
	if replayed {
		if p.opts.OnReplayStarted != nil {
			p.opts.OnReplayStarted()
		}
	}
	// Once: the consumer's own ack floor carries the start across later
	// restarts.
	p.opts.Consumer.ReplayFromStart, p.opts.Consumer.StartSequence = false, 0
	p.mu.Lock()
	p.startSeq = pos.start
	p.starts++
	p.mu.Unlock()
	p.log.Info("ingest_started", "consumer", settings.Durable, "filter", strings.Join(settings.FilterSubjects, ","), "start_sequence", pos.start)
	p.lastConsumerSeq = 0 // the reset consumer numbers its deliveries from 1
	p.streams = nil       // counted again from the store
	p.position = pos.start
	if !replayed && settings.StartSequence != 1 {
		// A replay from the start, or a start at sequence 1 (a takeover
		// re-reads whatever the stream still holds), takes whatever the
		// stream holds: what it no longer holds was archived and purged,
		// by any owner. The running check counts what leaves from here.
		p.checkLost(ctx, lostFromAtStart(pos, settings.StartSequence > 0))
	}
	return pos.cons, nil
}

// consumerSettings are the consumer's settings for this start: a
// partition also drains the messages its stream stored before it was
// partitioned, for as long as the stream holds any. They come in sequence
// order with the partitioned ones, so each stream's are stored in order.
func (p *Pipeline) consumerSettings(ctx context.Context) (ConsumerSettings, error) {
	c := p.opts.Consumer
	if p.opts.Partitions == 0 {
		return c, nil
	}
	st, err := p.js.Stream(ctx, c.Stream)
	if err != nil {
		return c, fmt.Errorf("look up stream %s: %w", c.Stream, err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(legacyFilter(p.opts.SubjectPrefix)))
	if err != nil {
		return c, fmt.Errorf("stream %s subjects: %w", c.Stream, err)
	}
	if n := len(info.State.Subjects); n > 0 {
		var msgs uint64
		for _, k := range info.State.Subjects {
			msgs += k
		}
		p.log.Warn("ingest_legacy_drain", "stream", c.Stream, "subjects", n, "messages", msgs, "partition", p.opts.Partition,
			"detail", "the ingest stream holds messages stored before it was partitioned; this partition consumes its streams' ones first, in sequence order")
		c.FilterSubjects = append(slices.Clip(c.FilterSubjects), legacyFilter(p.opts.SubjectPrefix))
	}
	return c, nil
}

// startFeed pulls cons's deliveries into a channel from a goroutine of its
// own: the iterator's Next blocks, and the loop must see a failed fsync,
// the resume tick and ctx while it waits for a message. stop ends the pull
// and waits for the goroutine, which closes the channel when the
// consumer goes away.
func (p *Pipeline) startFeed(cons jetstream.Consumer) (feed <-chan jetstream.Msg, stop func(), err error) {
	it, err := cons.Messages(pullOptions(p.opts.BatchSize))
	if err != nil {
		return nil, nil, fmt.Errorf("consume %s: %w", p.opts.Consumer.Durable, err)
	}
	msgs := make(chan jetstream.Msg, p.opts.BatchSize)
	done := make(chan struct{})
	var feeder sync.WaitGroup
	feeder.Add(1)
	go func() {
		defer feeder.Done()
		defer close(msgs)
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
			case msgs <- m:
			case <-done:
				return
			}
		}
	}()
	stop = func() {
		close(done)
		it.Stop()
		feeder.Wait()
	}
	return msgs, stop, nil
}

// syncStage is the syncer goroutine and its channels: appended batches go
// in, in order, and the first failed fsync comes out.
type syncStage struct {
	batches chan *inflight
	failed  chan error
	done    chan struct{}
}

// startSyncStage starts the syncer. The first failed fsync stops
// appending at once: what was appended after it is cut by the store, and
// is redelivered after the restart.
func (p *Pipeline) startSyncStage() *syncStage {
	s := &syncStage{batches: make(chan *inflight, 4), failed: make(chan error, 1), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		p.syncAndAck(s.batches, s.failed)
	}()
	return s
}

// stop returns once every batch handed over is synced and acked (or, for
// held streams, naked), with the first failed fsync if there was one.
func (s *syncStage) stop() error {
	close(s.batches)
	<-s.done
	select {
	case err := <-s.failed:
		return err
	default:
		return nil
	}
}

// runBatches is the appending stage: it takes each batch from feed,
// appends it and hands it to the syncer, until ctx ends, an fsync or an
// append fails, held streams resumed, or the consumer goes away. Every
// way out stops the syncer first, so nothing appended is left unsynced.
func (p *Pipeline) runBatches(ctx context.Context, feed <-chan jetstream.Msg, syncs *syncStage) error {
	// Held streams are offered to the store for a resume about once a
	// second, whether messages flow or not: with the consumer's
	// max_ack_pending filled by held messages, none may flow.
	resumeTick := time.NewTicker(min(p.resumeFirst, time.Second))
	defer resumeTick.Stop()
	lostTick := time.NewTicker(p.opts.LostCheckInterval)
	defer lostTick.Stop()
	// appendBatch keeps no reference to the batch slice (acks are copied
	// into the inflight), so one buffer serves every batch.
	batchBuf := make([]jetstream.Msg, 0, p.opts.BatchSize)
	for {
		select {
		case <-ctx.Done():
			return syncs.stop()
		case err := <-syncs.failed:
			syncs.failed <- err // for stop to return
			return syncs.stop()
		case <-lostTick.C:
			p.checkLostRunning(ctx)
		case <-resumeTick.C:
			if resumed := p.resumeHeld(); len(resumed) > 0 {
				// Everything appended is synced and acked before the
				// restart, so the resumed streams' held messages come
				// back from the ack floor in order.
				if err := syncs.stop(); err != nil {
					return err
				}
				return &errResumed{streams: resumed}
			}
		case m, ok := <-feed:
			if !ok {
				// The consumer went away (deleted, connection closed):
				// not a shutdown, so the caller restarts the pipeline.
				return errors.Join(errors.New("ingest: consumer iterator closed"), syncs.stop())
			}
			// A batch is what arrived while the previous one was being
			// stored: large when busy, one fsync for many messages, and
			// no wait when idle.
			batch := appendReady(append(batchBuf[:0], m), feed, p.opts.BatchSize)
			if err := p.storeBatch(ctx, batch, syncs); err != nil {
				return errors.Join(err, syncs.stop())
			}
		}
	}
}

// appendReady appends to buf what c holds already, without waiting, until
// buf holds limit items.
func appendReady[T any](buf []T, c <-chan T, limit int) []T {
	for len(buf) < limit {
		select {
		case v, ok := <-c:
			if !ok {
				return buf
			}
			buf = append(buf, v)
		default:
			return buf
		}
	}
	return buf
}

// storeBatch appends batch and hands it to the syncer. The batch is
// finished even when ctx ends meanwhile, and handed over even when an
// append failed: what the store took gets its fsync and its acks.
func (p *Pipeline) storeBatch(ctx context.Context, batch []jetstream.Msg, syncs *syncStage) error {
	fl, err := p.appendBatch(ctx, batch)
	if p.opts.OnBacklog != nil && backlogBehind(batch[len(batch)-1]) {
		p.opts.OnBacklog()
	}
	clear(batch) // drop the messages for the collector
	if fl != nil {
		p.startSyncing(fl)
		syncs.batches <- fl
	}
	return err
}

// backlogBehind says whether the ingest stream held messages for the
// consumer, not yet delivered, when m was delivered.
func backlogBehind(m jetstream.Msg) bool {
	md, err := m.Metadata()
	return err == nil && md.NumPending > 0
}

// inflight is a batch appended but not yet durable: per stream the offset
// to sync to, then the messages to ack.
type inflight struct {
	span  trace.Span
	ctx   context.Context
	syncs map[string]uint64
	acks  []streamAcks
}

// streamAcks are messages of one stream to ack once it is synced.
type streamAcks struct {
	stream string
	msgs   []jetstream.Msg
}

// syncAndAck is the syncer: it makes appended batches durable, then acks
// their messages. When it falls behind, every batch waiting for it shares
// one fsync per stream (group commit across batches). A stream whose sync
// the store refuses with Flush or Rollover backpressure is held and its
// messages are naked; the others are acked. Any other failure goes to
// failed at once; nothing after it is acked.
func (p *Pipeline) syncAndAck(in <-chan *inflight, failedc chan<- error) {
	var failed error
	for fl := range in {
		group := appendReady([]*inflight{fl}, in, math.MaxInt)
		var refused map[string]error
		if failed == nil {
			if refused, failed = p.syncGroup(group); failed != nil {
				failedc <- failed
			}
		}
		for stream, err := range refused {
			p.holdStream(group[0].ctx, stream, err)
		}
		for _, fl := range group {
			p.finishSynced(fl, refused, failed)
		}
	}
}

// finishSynced settles fl's messages after the sync of its group: acked
// when their stream is durable, naked when the store refused the stream
// (it is held), and left alone after a failed sync, for the restart to
// redeliver them from the ack floor.
func (p *Pipeline) finishSynced(fl *inflight, refused map[string]error, failed error) {
	if failed != nil {
		fl.span.RecordError(failed)
	} else {
		for _, sa := range fl.acks {
			if refused[sa.stream] != nil {
				p.nakHeld(sa.msgs)
				continue
			}
			p.ackDurable(sa.msgs)
		}
	}
	fl.span.End()
	p.doneSyncing(fl)
}

// ackDurable acks messages whose records are durable, unless
// Options.MayAck says this gateway may no longer ack them.
func (p *Pipeline) ackDurable(msgs []jetstream.Msg) {
	if p.opts.MayAck != nil && !p.opts.MayAck() {
		// Another gateway may own the partition by now: an ack on the
		// consumer it pulls would take a message it has pending off its
		// redeliveries. The records are durable here; the new owner
		// stores them again from the ingest stream.
		p.log.Warn("ingest_ack_withheld", "messages", len(msgs), "reason", "the partition's lease may have expired")
		return
	}
	if len(msgs) > 0 && p.opts.Instruments != nil {
		// A redelivery (after a restart, a takeover, a held stream) would
		// count the time since its first store: first deliveries only.
		if md, err := msgs[0].Metadata(); err == nil && md.NumDelivered == 1 {
			defer func() {
				p.opts.Instruments.ObserveIngestAck(context.Background(), max(time.Since(md.Timestamp), 0))
			}()
		}
	}
	for _, m := range msgs {
		if err := p.ack(m); err != nil {
			// The record is durable; a lost ack only means a
			// redelivery, which is recognised by sequence.
			p.log.Warn("ingest_ack_failed", "subject", m.Subject(), "err", err)
		}
	}
}

// syncGroup syncs every stream of group to the furthest offset any batch
// of it appended, streams in parallel. It returns the streams the store
// refused to sync with backpressure that holds them, and any other
// failure.
func (p *Pipeline) syncGroup(group []*inflight) (map[string]error, error) {
	targets := map[string]uint64{}
	ctxs := map[string]context.Context{}
	for _, fl := range group {
		for stream, next := range fl.syncs {
			if next >= targets[stream] {
				targets[stream], ctxs[stream] = next, fl.ctx
			}
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed error
	var refused map[string]error
	for stream, next := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			began := time.Now()
			err := p.store.SyncTo(ctxs[stream], stream, next)
			if err == nil {
				p.opts.Instruments.ObserveIngestFsync(ctxs[stream], time.Since(began))
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if holdable(err) {
				if refused == nil {
					refused = map[string]error{}
				}
				refused[stream] = err
				return
			}
			failed = errors.Join(failed, fmt.Errorf("stream %s: %w", stream, err))
		}()
	}
	wg.Wait()
	return refused, failed
}

// PullBufferBytes bounds the bytes of messages the consumer buffers ahead
// of the pipeline, whatever the batch size and message size.
const PullBufferBytes = 64 << 20

// pullOptions is how the pipeline pulls: up to two batches buffered ahead,
// within PullBufferBytes. Benchmarks give their baseline the same.
func pullOptions(batch int) jetstream.PullMessagesOpt {
	return jetstream.PullMaxMessagesWithBytesLimit(2*batch, PullBufferBytes)
}

// delivery is one message on its way to the store.
type delivery struct {
	msg    jetstream.Msg
	seq    uint64 // its stream sequence, the record's ext_id
	stream string
}

// appendBatch checks one batch, dead-letters the messages the store must
// never hold, groups the others by stream and appends each group,
// returning the batch for the syncer. On error the returned inflight holds
// what was appended before the failure, which is still synced and acked.
func (p *Pipeline) appendBatch(ctx context.Context, batch []jetstream.Msg) (*inflight, error) {
	spanCtx, span := p.startBatchSpan(ctx, batch)
	fl := &inflight{span: span, ctx: spanCtx, syncs: map[string]uint64{}}
	defer p.groups.reset()
	if err := p.groupByStream(spanCtx, batch, &p.groups); err != nil {
		return fl, err
	}
	return fl, p.appendGroups(ctx, fl, &p.groups)
}

// startBatchSpan starts a batch's span, linked to the producers' spans
// the messages carry. It does not end with ctx: a batch in hand is
// finished after a shutdown.
func (p *Pipeline) startBatchSpan(ctx context.Context, batch []jetstream.Msg) (context.Context, trace.Span) {
	work := context.WithoutCancel(ctx)
	var links []trace.Link // most batches carry no trace context
	for _, m := range batch {
		if h := m.Headers(); len(h) > 0 {
			if l, ok := tracing.LinkFromHeaders(h); ok {
				links = append(links, l)
			}
		}
	}
	if len(links) == 1 && len(batch) == 1 {
		// With one producer message the batch span is its child, so the
		// trace reads straight from producer to fsync.
		return p.tr.Start(tracing.Extract(work, batch[0].Headers()), tracing.SpanIngestBatch,
			trace.WithAttributes(tracing.AttrRecords.Int(1)))
	}
	return p.tr.Start(work, tracing.SpanIngestBatch, trace.WithLinks(links...),
		trace.WithAttributes(tracing.AttrRecords.Int(len(batch))))
}

// streamGroups is a batch's messages to store, by stream. It lives on the
// Pipeline and is reset after each batch, so its slices and maps serve
// every batch; only the appending goroutine touches it.
type streamGroups struct {
	streams []string // each stream once, in the order of its first message
	// subjects[i] is the subject the producer published streams[i]'s
	// messages to, <prefix>.<stream>, whichever subject stored them.
	subjects []string
	msgs     [][]delivery // msgs[i] are streams[i]'s, in delivery order
	// A batch holds few distinct subjects: each is mapped to its stream's
	// group once, with one map lookup per message after that.
	bySubject map[string]int
	byStream  map[string]int
}

// add starts the group of a stream new to the batch and returns its index.
func (g *streamGroups) add(stream, subject string) int {
	i := len(g.streams)
	g.streams = append(g.streams, stream)
	g.subjects = append(g.subjects, subject)
	if len(g.msgs) < cap(g.msgs) {
		g.msgs = g.msgs[:i+1] // an earlier batch's slice, empty
	} else {
		g.msgs = append(g.msgs, nil)
	}
	g.byStream[stream] = i
	return i
}

// reset empties g for the next batch and lets go of the messages, so that
// the collector can have them.
func (g *streamGroups) reset() {
	for i := range g.msgs {
		clear(g.msgs[i])
		g.msgs[i] = g.msgs[i][:0]
	}
	g.msgs = g.msgs[:0]
	clear(g.streams) // streams are substrings of the messages' subjects
	g.streams = g.streams[:0]
	clear(g.subjects)
	g.subjects = g.subjects[:0]
	clear(g.bySubject)
	clear(g.byStream)
}

// groupByStream splits batch into g by stream, keeping delivery order,
// which within a stream is sequence order: sequence dedupe relies on it.
// Messages the store must never hold are dead-lettered instead. It stops
// at a lost delivery or a failed dead letter, since no message may be
// stored ahead of an earlier one of its stream.
func (p *Pipeline) groupByStream(spanCtx context.Context, batch []jetstream.Msg, g *streamGroups) error {
	for _, m := range batch {
		seq, err := p.sequenceInOrder(m)
		if err != nil {
			return err
		}
		subject := m.Subject()
		i, known := g.bySubject[subject]
		if !known {
			if i, known, err = p.admitSubject(spanCtx, m, seq, g); err != nil {
				return err
			}
			if !known {
				continue // dead-lettered
			}
		}
		g.msgs[i] = append(g.msgs[i], delivery{msg: m, seq: seq, stream: g.streams[i]})
	}
	return nil
}

// sequenceInOrder returns m's stream sequence, or ErrDeliveryLost when m
// is not the delivery after the previous one. Deliveries to this consumer
// are numbered: a gap means one was lost (reconnect, a second puller).
// Its redelivery would arrive after newer messages and be taken for a
// duplicate, so the pipeline starts over from the ack floor instead.
func (p *Pipeline) sequenceInOrder(m jetstream.Msg) (uint64, error) {
	seq, cseq, err := deliverySequences(m)
	if err != nil {
		return 0, fmt.Errorf("message metadata: %w", err)
	}
	// A created or reset consumer numbers its deliveries from 1: a first
	// delivery above 1 means earlier ones went to a pull request still
	// pending from before the reset, and would come back only after their
	// ack wait, behind newer messages.
	if p.lastConsumerSeq == 0 && cseq != 1 {
		return 0, fmt.Errorf("ingest: first delivery %d: %w", cseq, errStalePull)
	}
	if cseq != p.lastConsumerSeq+1 {
		return 0, fmt.Errorf("ingest: delivery %d after %d: %w", cseq, p.lastConsumerSeq, ErrDeliveryLost)
	}
	p.lastConsumerSeq = cseq
	p.position = max(p.position, seq+1)
	return seq, nil
}

// admitSubject maps the subject of m, the batch's first message on it, to
// its stream's group in g, adding the group for a stream new to the batch.
// A subject that names no valid stream, and a new stream beyond
// ingest.max_streams, have m dead-lettered instead (ok false), and are
// not mapped: each such message gets its own reason.
func (p *Pipeline) admitSubject(spanCtx context.Context, m jetstream.Msg, seq uint64, g *streamGroups) (group int, ok bool, err error) {
	subject := m.Subject()
	ss, err := parseStoredSubject(p.opts.SubjectPrefix, subject, p.opts.Partitions)
	if err != nil {
		orig := subject
		if ss.producer != "" {
			orig = ss.producer
		}
		return 0, false, p.deadLetter(spanCtx, m, seq, InvalidStream, orig, err.Error())
	}
	if p.opts.Partitions > 0 {
		owner := p.opts.PartitionOf(ss.stream)
		switch {
		case ss.legacy && owner != p.opts.Partition:
			// Stored before the stream was partitioned, and another
			// partition's: its own consumer stores it.
			if err := p.ack(m); err != nil {
				p.log.Warn("ingest_ack_failed", "subject", subject, "err", err)
			}
			return 0, false, nil
		case !ss.legacy && owner != ss.partition:
			// Published to a partition subject directly, past the
			// stream's transform: storing it here would give the stream
			// a second owner.
			return 0, false, p.deadLetter(spanCtx, m, seq, ss.stream, subject,
				fmt.Sprintf("subject %s names partition %d, but stream %s belongs to partition %d; publish to %s", subject, ss.partition, ss.stream, owner, ss.producer))
		}
	}
	group, known := g.byStream[ss.stream]
	if !known {
		if reason := p.newStreamRefusal(ss.stream); reason != "" {
			return 0, false, p.deadLetter(spanCtx, m, seq, ss.stream, ss.producer, reason)
		}
		group = g.add(ss.stream, ss.producer)
	}
	g.bySubject[subject] = group
	return group, true, nil
}

// appendGroups appends each stream's group, streams in parallel since each
// has its own segments and fsync, and records in fl what to sync and ack
// per stream. A held stream's messages are naked instead. It returns the
// first failure; the other streams' appends stand and are synced.
func (p *Pipeline) appendGroups(ctx context.Context, fl *inflight, g *streamGroups) error {
	type result struct {
		acks []jetstream.Msg
		next uint64
		err  error
	}
	results := make([]result, len(g.streams))
	var wg sync.WaitGroup
	for i, stream := range g.streams {
		if p.isHeld(stream) {
			// Stored now, a message would overtake the held ones.
			p.nakHeld(msgsOf(g.msgs[i]))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			acks, next, err := p.appendGroup(ctx, fl.ctx, stream, g.subjects[i], g.msgs[i])
			results[i] = result{acks, next, err}
		}()
	}
	wg.Wait()

	var firstErr error
	for i, r := range results {
		stream := g.streams[i]
		if len(r.acks) > 0 {
			fl.acks = append(fl.acks, streamAcks{stream: stream, msgs: r.acks})
		}
		if r.next > 0 {
			fl.syncs[stream] = r.next
		}
		if r.err != nil && firstErr == nil {
			firstErr = fmt.Errorf("stream %s: %w", stream, r.err)
		}
	}
	return firstErr
}

func msgsOf(ds []delivery) []jetstream.Msg {
	msgs := make([]jetstream.Msg, len(ds))
	for i, d := range ds {
		msgs[i] = d.msg
	}
	return msgs
}

// newStreamRefusal is why messages for stream are not stored, or "": a
// stream the store does not hold yet is admitted up to MaxStreams.
func (p *Pipeline) newStreamRefusal(stream string) string {
	if p.streams == nil {
		names := p.store.Streams()
		p.streams = make(map[string]struct{}, len(names))
		for _, n := range names {
			p.streams[n] = struct{}{}
		}
	}
	if _, ok := p.streams[stream]; ok {
		return ""
	}
	if len(p.streams) >= p.opts.MaxStreams {
		return fmt.Sprintf("stream %s is new and the store already holds ingest.max_streams (%d) streams; raise it to accept more", stream, p.opts.MaxStreams)
	}
	p.streams[stream] = struct{}{}
	return ""
}

// appendGroup appends one stream's messages of a batch in sequence order.
// It returns the messages to ack once the stream is synced to next: those
// appended and the redeliveries of already appended ones. On error the
// messages returned are the ones appended before it; nothing after the
// failure is acked. When the store refuses the stream with backpressure
// that holds it, the stream is held, the messages not appended and the
// redeliveries are naked, and no error is returned.
//
// subject is the one the producer published to, which the envelope keeps
// whatever subject the ingest stream stored the message under.
func (p *Pipeline) appendGroup(ctx, spanCtx context.Context, stream, subject string, msgs []delivery) ([]jetstream.Msg, uint64, error) {
	// What the stream holds already: redeliveries are acked, not stored.
	dedupe, err := p.store.DedupeView(stream)
	if err != nil {
		return nil, 0, err
	}
	var acks []jetstream.Msg
	recs := make([]segment.Record, 0, len(msgs))
	arenaSize := 0
	for _, d := range msgs {
		arenaSize += envelopeFixed + len(subject) + len(d.msg.Data()) + 64
	}
	// Envelopes of a group share one buffer, reused across batches: the
	// store copies the records before Append returns.
	arenaBuf := getArena(arenaSize)
	arena := (*arenaBuf)[:0]
	defer func() {
		*arenaBuf = arena
		putArena(arenaBuf)
	}()
	toStore := make([]jetstream.Msg, 0, len(msgs))
	limit := p.store.RecordLimit()
	maxPayload := p.maxPayload()
	var size int64
	for _, d := range msgs {
		if dedupe.Stored(d.seq) {
			p.count(&p.duplicates, 1)
			acks = append(acks, d.msg)
			continue
		}
		mark := len(arena)
		arena = AppendEnvelope(arena, Envelope{Subject: subject, Header: d.msg.Headers(), Body: d.msg.Data()})
		payload := arena[mark:len(arena):len(arena)]
		reason := p.sizeRefusal(len(payload), limit)
		if reason == "" {
			reason = readBackRefusal(d.msg, stream, subject, maxPayload)
		}
		if reason != "" {
			arena = arena[:mark]
			if err := p.deadLetter(spanCtx, d.msg, d.seq, stream, subject, reason); err != nil {
				return acks, 0, err
			}
			continue
		}
		dedupe.Add(d.seq)
		recs = append(recs, segment.Record{Payload: payload, ExtID: d.seq})
		toStore = append(toStore, d.msg)
		size += int64(len(payload))
	}
	if len(recs) == 0 {
		// Redeliveries only: their originals may still be syncing in the
		// previous batch, so sync to the end of what is appended.
		if len(acks) == 0 {
			return nil, 0, nil
		}
		next, err := p.store.Append(spanCtx, stream, nil)
		return acks, next, err
	}
	next, stored, err := p.appendWithAdmission(ctx, spanCtx, stream, recs, toStore)
	if stored > 0 {
		p.inst.AddIngest(spanCtx, int64(stored), size)
		p.count(&p.stored, uint64(stored))
	}
	if holdable(err) {
		p.holdStream(spanCtx, stream, err)
		// A redelivery's original may be among the records just
		// refused: only what was appended is acked, after its sync.
		p.nakHeld(acks)
		p.nakHeld(toStore[stored:])
		return toStore[:stored], next, nil
	}
	acks = append(acks, toStore[:stored]...)
	return acks, next, err
}

// sizeRefusal is why a record of size bytes is never to be stored, or "".
// Besides ingest.max_record_bytes, the store's own limit applies: a
// record over the whole Tier 0 budget would be refused on every
// redelivery and block every message behind it.
func (p *Pipeline) sizeRefusal(size int, limit tiers.RecordLimit) string {
	if size > p.opts.MaxRecordBytes {
		return fmt.Sprintf("record of %d bytes exceeds ingest.max_record_bytes (%d)", size, p.opts.MaxRecordBytes)
	}
	if int64(size) > limit.MaxPayload {
		return fmt.Sprintf("record of %d bytes exceeds the %d bytes the store can ever admit (%s)", size, limit.MaxPayload, limit.Limit)
	}
	return ""
}

// readBackRefusal is why m, once stored, could never be read, or "": the
// read API answers each record as one NATS message, the record's body and
// headers plus its own, and NATS refuses a message over the server's
// max_payload. Stored, such a record would stop every Read and Follow at
// its offset for good (413, not retryable). The bound is taken with the
// ingest connection's max_payload: the read service is on the same servers.
func readBackRefusal(m jetstream.Msg, stream, subject string, limit int64) string {
	if limit <= 0 {
		return ""
	}
	size := int64(len(m.Data())) + answerHeaderBytes(m.Headers()) + int64(readapi.RecordHeaderOverhead(subject, stream))
	if size > limit {
		return fmt.Sprintf("read answer of up to %d bytes (record body, headers and the read API's headers) exceeds the NATS server's max_payload (%d): the record could never be read", size, limit)
	}
	return ""
}

// answerHeaderBytes bounds what a record's own headers take in its read
// answer: each line "Key: value\r\n", a key renamed Aof-Original-<key>
// when readapi.RenamedInAnswer says so. The header block's framing is in
// readapi.RecordHeaderOverhead.
func answerHeaderBytes(h nats.Header) int64 {
	var n int64
	for k, vs := range h {
		kl := len(k)
		if readapi.RenamedInAnswer(k) {
			kl += len(readapi.OriginalHeaderPrefix)
		}
		for _, v := range vs {
			n += int64(kl + len(v) + len(": \r\n"))
		}
	}
	return n
}

// appendWithAdmission appends recs, waiting for Tier 0 admission when the
// budget is full. While it waits, the messages are kept alive with
// in-progress acks so JetStream does not redeliver them. A batch too big to
// admit at once goes in halves, in order, so a small budget still drains.
// It returns the sync target and how many records were appended.
func (p *Pipeline) appendWithAdmission(ctx, spanCtx context.Context, stream string, recs []segment.Record, msgs []jetstream.Msg) (uint64, int, error) {
	var next uint64
	done := 0
	for len(recs) > 0 {
		n, err := p.store.Append(spanCtx, stream, recs)
		if err == nil {
			return n, done + len(recs), nil
		}
		// A group larger than the whole Tier 0 budget can never be
		// admitted at once: it goes in halves like one that does not fit
		// now. A single record that large was dead-lettered by
		// appendGroup unless the budget was lowered since: the error
		// stops the pipeline, and its restart dead-letters the record.
		tooLarge := errors.Is(err, tier0.ErrTooLarge) && len(recs) > 1
		if !backpressure.Is(err, backpressure.Admission) && !tooLarge {
			return next, done, err
		}
		if !tooLarge {
			p.inst.IncBackpressure(spanCtx, backpressure.Admission.String())
		}
		if len(recs) > 1 {
			half := len(recs) / 2
			n, k, err := p.appendWithAdmission(ctx, spanCtx, stream, recs[:half], msgs[:half])
			if k > 0 {
				next = n
			}
			done += k
			if err != nil {
				return next, done, err
			}
			recs, msgs = recs[half:], msgs[half:]
			continue
		}
		if err := p.waitAdmission(ctx, stream, int64(segment.RecordHeaderSize+len(recs[0].Payload)), msgs); err != nil {
			return next, done, err
		}
	}
	return next, done, nil
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
	// HeaderTruncated, when present, gives the original body length of a
	// dead letter whose body was cut to fit the server's payload limit.
	HeaderTruncated       = "Aof-Truncated"
	HeaderError           = "Aof-Error"
	HeaderOriginalSubject = "Aof-Original-Subject"
	HeaderOriginalSeq     = "Aof-Original-Sequence"
)

// maxPayload is the server's payload limit, 0 when unknown.
func (p *Pipeline) maxPayload() int64 {
	if p.js == nil {
		return 0
	}
	if nc := p.js.Conn(); nc != nil {
		return nc.MaxPayload()
	}
	return 0
}

// headerBytes is about what h takes on the wire.
func headerBytes(h nats.Header) int64 {
	n := int64(len("NATS/1.0\r\n\r\n"))
	for k, vs := range h {
		for _, v := range vs {
			n += int64(len(k) + len(v) + 4)
		}
	}
	return n
}

// deadLetter republishes m to the dead-letter subject with the reason, then
// terminates it. The republish is confirmed by JetStream before the
// original is terminated, and deduplicated by the original sequence, so a
// crash in between neither loses nor doubles it.
// RepublishedHeaderName is the name under which a producer's header k
// travels when a stored message is published again (a dead letter, a
// replay). The producer's Nats-* headers (expected stream, expected last
// sequence, rollup, TTL...) were meant for the ingest stream; applied to
// another publish they would refuse it or purge what it publishes into.
// They are kept as Aof-Original-<name>; other headers keep their name.
func RepublishedHeaderName(k string) string {
	if len(k) >= 5 && strings.EqualFold(k[:5], "nats-") {
		return readapi.OriginalHeaderPrefix + k
	}
	return k
}

// subject is the producer's subject when known, else the stored one.
func (p *Pipeline) deadLetter(ctx context.Context, m jetstream.Msg, seq uint64, stream, subject, reason string) error {
	out := nats.NewMsg(p.opts.DeadLetterPrefix + "." + stream)
	for k, v := range m.Headers() {
		out.Header[RepublishedHeaderName(k)] = append([]string(nil), v...)
	}
	out.Header.Set(HeaderError, reason)
	out.Header.Set(HeaderOriginalSubject, subject)
	out.Header.Set(HeaderOriginalSeq, strconv.FormatUint(seq, 10))
	out.Header.Set(jetstream.MsgIDHeader, "deadletter-"+strconv.FormatUint(seq, 10))
	tracing.Inject(ctx, out.Header)
	out.Data = m.Data()
	// The dead letter must fit the server's payload limit, which the
	// original, plus the headers added here, may not: keep what fits and
	// say so.
	if limit := p.maxPayload(); limit > 0 {
		room := limit - int64(len(out.Subject)) - headerBytes(out.Header) - 256
		if int64(len(out.Data)) > room && room > 0 {
			out.Header.Set(HeaderTruncated, strconv.Itoa(len(out.Data)))
			out.Data = out.Data[:room]
		}
	}
	if _, err := p.js.PublishMsg(ctx, out); err != nil {
		return fmt.Errorf("publish dead letter for sequence %d: %w", seq, err)
	}
	p.inst.IncDeadletter(ctx)
	p.count(&p.deadLetters, 1)
	p.log.Warn("ingest_dead_letter", "stream", stream, "sequence", seq, "subject", subject, "stored_subject", m.Subject(), "reason", reason)
	if err := m.TermWithReason(reason); err != nil {
		p.log.Warn("ingest_term_failed", "sequence", seq, "err", err)
	}
	return nil
}

// arenas recycles the buffers that hold a group's envelopes, which are
// as large as the group's messages: allocating them per batch costs the
// zeroing of every byte and keeps the collector busy.
var arenas sync.Pool

// maxPooledArena bounds the buffers kept for reuse.
const maxPooledArena = 64 << 20

func getArena(size int) *[]byte {
	if b, ok := arenas.Get().(*[]byte); ok {
		if cap(*b) >= size {
			return b
		}
		*b = make([]byte, 0, size)
		return b
	}
	b := make([]byte, 0, size)
	return &b
}

func putArena(b *[]byte) {
	if cap(*b) <= maxPooledArena {
		arenas.Put(b)
	}
}
