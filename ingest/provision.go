package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/config"
)

// StreamSettings are the JetStream settings of the ingest stream.
type StreamSettings struct {
	Name     string        // AOF_INGEST
	Subjects []string      // aof.ingest.>; the first gives the subject prefix
	MaxBytes int64         // 0 = unlimited
	MaxAge   time.Duration // 0 = unlimited
	Replicas int
	// Partitions, when above 0, has JetStream store a producer's
	// <prefix>.<stream> as <prefix>.<p>.<stream>, p = partition(Partitions)
	// of the stream token (see PartitionedSubject), so that each
	// partition's consumer filters on a literal token. 0 keeps the
	// unpartitioned layout. It is fixed once the stream has it.
	Partitions int
}

// EnsureIngestStream creates the ingest stream or updates the settings
// JetStream allows to change. It is idempotent.
//
// The stream always discards new messages when full: the gateway may not
// have stored its oldest ones yet, so a full stream refuses producers
// (JetStream's error is their backpressure) instead of dropping anything.
// Messages leave it only when the gateway purges them once archived
// (Purger), or when an operator set a max age (Pipeline counts those in
// ingest_lost_messages).
func EnsureIngestStream(ctx context.Context, js jetstream.JetStream, s StreamSettings) (jetstream.Stream, error) {
	cfg := jetstream.StreamConfig{
		Name:      s.Name,
		Subjects:  s.Subjects,
		Storage:   jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy,
		MaxBytes:  orUnlimited(s.MaxBytes),
		MaxAge:    s.MaxAge,
		Discard:   jetstream.DiscardNew,
		Replicas:  max(s.Replicas, 1),
		// Producers may set Nats-Msg-Id; the window makes their retries
		// idempotent as well. JetStream refuses a MaxAge shorter than it,
		// which config validation reports by key.
		Duplicates: config.IngestDuplicateWindow,
	}
	if s.Partitions > 0 && len(s.Subjects) > 0 {
		prefix := strings.TrimSuffix(s.Subjects[0], ".>")
		cfg.SubjectTransform = partitionTransform(prefix, s.Partitions)
		// Only <prefix>.<stream> is taken: a deeper subject, or one
		// naming a partition, would be stored where no partition's
		// consumer looks and stay in the stream for ever. Its producer
		// gets JetStream's "no stream" error at once instead.
		cfg.Subjects = []string{prefix + ".*"}
	}
	if err := checkPartitionsUnchanged(ctx, js, s.Name, cfg.SubjectTransform); err != nil {
		return nil, err
	}
	st, err := js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("provision stream %s: %w", s.Name, err)
	}
	return st, nil
}

// partitionTransform maps <prefix>.<stream> to <prefix>.<p>.<stream>.
func partitionTransform(prefix string, partitions int) *jetstream.SubjectTransformConfig {
	return &jetstream.SubjectTransformConfig{
		Source:      prefix + ".*",
		Destination: fmt.Sprintf("%s.{{partition(%d,1)}}.{{wildcard(1)}}", prefix, partitions),
	}
}

// checkPartitionsUnchanged refuses to change an existing stream's
// partitioning: messages stored under one layout would be filtered by
// consumers of another, and a stream would have two owners. Adding it to
// a stream that had none is the upgrade path: the messages stored before
// keep their unpartitioned subject and the pipeline drains them first
// (see the package doc, Partitions).
func checkPartitionsUnchanged(ctx context.Context, js jetstream.JetStream, name string, want *jetstream.SubjectTransformConfig) error {
	st, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up stream %s: %w", name, err)
	}
	have := st.CachedInfo().Config.SubjectTransform
	switch {
	case have == nil:
		return nil
	case want == nil:
		return fmt.Errorf("provision stream %s: it stores subjects partitioned (%s -> %s); removing the partitioning would hide its messages from the gateway (set the same partition count)", name, have.Source, have.Destination)
	case *have != *want:
		return fmt.Errorf("provision stream %s: its partitioning %s -> %s differs from %s -> %s; the partition count is fixed once provisioned", name, have.Source, have.Destination, want.Source, want.Destination)
	}
	return nil
}

// EnsureDeadLetterStream keeps dead letters durable: without a stream on
// the subject, a dead letter published while nobody listens would be lost.
func EnsureDeadLetterStream(ctx context.Context, js jetstream.JetStream, name, prefix string) error {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:     name,
		Subjects: []string{prefix + ".>"},
		Storage:  jetstream.FileStorage,
		// A termed message stays above the ack floor while an earlier one
		// is unacked, so a much later restart may dead-letter it again:
		// the dedupe window is long.
		Duplicates: 24 * time.Hour,
	})
	if err != nil {
		return fmt.Errorf("provision stream %s: %w", name, err)
	}
	return nil
}

func orUnlimited(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// ConsumerSettings are the settings of the gateway's durable pull consumer.
type ConsumerSettings struct {
	Stream  string
	Durable string
	// FilterSubjects select the messages of the consumer; more than one
	// when a partition also drains messages stored before the stream was
	// partitioned. Empty means every message of the stream.
	FilterSubjects []string
	AckWait        time.Duration
	MaxAckPending  int
	// ReplayFromStart starts the consumer at the first message of the
	// stream instead of its ack floor: after a data root was rebuilt from
	// Tier 2, messages acknowledged but never uploaded come back, and
	// sequence dedupe skips those Tier 2 already holds. Applies to the
	// first start of a Pipeline only.
	ReplayFromStart bool
	// StartSequence, when above 0, starts the consumer at that stream
	// sequence instead of its ack floor: a gateway that takes over a
	// partition passes the first sequence not archived in Tier 2. The
	// consumer is moved there with a reset, which also sets its ack floor
	// to StartSequence-1, forward or back, so that every later restart
	// (and a crash before the first ack) resumes at StartSequence or
	// beyond, never before. Applies to the first start of a Pipeline only.
	// With ReplayFromStart as well, the lower start wins.
	StartSequence uint64
}

// consumerPosition is where positionConsumer left the consumer.
type consumerPosition struct {
	cons  jetstream.Consumer
	start uint64 // the first stream sequence it delivers from
	// prior is the consumer's state before it was moved, nil when it was
	// created: where it had got to, for the lost-message check.
	prior *jetstream.ConsumerInfo
	// clamped is the start wanted when it was below the consumer's own
	// start sequence, which JetStream refuses to reset below; 0 otherwise.
	clamped uint64
}

// positionConsumer makes the durable consumer deliver from its ack floor,
// or from c.StartSequence (or the stream's start with ReplayFromStart),
// so that every message not acked yet comes first and in sequence order,
// before any newer one. See the package doc for why the pipeline needs
// that.
//
// The consumer is never deleted: its ack floor is the only record of where
// the gateway got to, so each step leaves a consumer that a restart resumes
// from the right sequence. It is created if absent, directly at its start
// sequence (one atomic step, whose ack floor is then start-1); otherwise
// its settings are updated and it is moved with ResetConsumerToSequence,
// which drops its pending and redelivery state and sets its ack floor to
// the sequence before the one given.
func positionConsumer(ctx context.Context, js jetstream.JetStream, c ConsumerSettings) (consumerPosition, error) {
	cfg, err := consumerConfig(ctx, js, c)
	if err != nil {
		return consumerPosition{}, err
	}
	want := c.StartSequence
	if c.ReplayFromStart {
		want = 1
	}
	old, err := js.Consumer(ctx, c.Stream, c.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return createConsumerAt(ctx, js, c, cfg, want)
	}
	if err != nil {
		return consumerPosition{}, fmt.Errorf("look up consumer %s: %w", c.Durable, err)
	}
	prior, err := old.Info(ctx)
	if err != nil {
		return consumerPosition{}, fmt.Errorf("consumer %s info: %w", c.Durable, err)
	}
	// Deliver policy and start sequence cannot change on a consumer.
	cfg.DeliverPolicy, cfg.OptStartSeq = prior.Config.DeliverPolicy, prior.Config.OptStartSeq
	if !sameSettings(prior.Config, cfg) {
		if _, err := js.UpdateConsumer(ctx, c.Stream, cfg); err != nil {
			return consumerPosition{}, fmt.Errorf("update consumer %s: %w", c.Durable, err)
		}
	}
	pos := consumerPosition{prior: prior, start: prior.AckFloor.Stream + 1}
	if want > 0 {
		pos.start = want
	}
	if floor := prior.Config.OptStartSeq; prior.Config.DeliverPolicy == jetstream.DeliverByStartSequencePolicy && pos.start < floor {
		// JetStream refuses to reset a consumer below the start sequence
		// it was created at. Nothing below it was this consumer's to
		// deliver: it was created there because every message before was
		// already archived (or acked by the consumer it replaced).
		pos.clamped, pos.start = pos.start, floor
	}
	if err := resetConsumerTo(ctx, js, c.Stream, c.Durable, pos.start); err != nil {
		return consumerPosition{}, err
	}
	if pos.cons, err = js.Consumer(ctx, c.Stream, c.Durable); err != nil {
		return consumerPosition{}, fmt.Errorf("look up consumer %s: %w", c.Durable, err)
	}
	return pos, nil
}

// resetAttempts bounds the resets resetConsumerTo tries; resetSettle is
// how long, in resetChecks looks, the state after a reset to sequence 1
// must hold before it is trusted: longer than a state write of the
// consumer's store takes.
const (
	resetAttempts = 20
	resetChecks   = 4
	resetSettle   = 50 * time.Millisecond
)

// resetConsumerTo resets the consumer to seq and checks that its state
// says so (ack floor and delivered at seq-1), resetting again until it
// does.
//
// Why check: in nats-server 2.15.2 a reset to sequence 1 leaves a
// file-backed consumer's stored state empty, and an empty state is read
// back from the consumer's state file. When its flusher was writing the
// old state at the time of the reset (the reset's own write is then
// skipped), the old ack floor comes back, at once or a few milliseconds
// later. The consumer then delivers from 1, but reports and persists the
// old ack floor, and the next start would resume above the messages the
// reset was meant to deliver again. A reset once the flusher is done
// writes the empty state; the first delivery then makes the state
// non-empty for good. A reset to a later sequence stores seq-1 and is
// not affected.
func resetConsumerTo(ctx context.Context, js jetstream.JetStream, stream, durable string, seq uint64) error {
	for attempt := 1; ; attempt++ {
		resp, err := js.ResetConsumerToSequence(ctx, stream, durable, seq)
		if err != nil {
			return fmt.Errorf("reset consumer %s to sequence %d: %w", durable, seq, err)
		}
		info := resp.ConsumerInfo
		ok := info == nil || resetHeld(info, seq)
		for check := 0; ok && seq == 1 && check < resetChecks; check++ {
			if err := sleepCtx(ctx, resetSettle); err != nil {
				return err
			}
			cons, err := js.Consumer(ctx, stream, durable)
			if err != nil {
				return fmt.Errorf("look up consumer %s: %w", durable, err)
			}
			if info, err = cons.Info(ctx); err != nil {
				return fmt.Errorf("consumer %s info: %w", durable, err)
			}
			// Deliveries may have begun: the ack floor may not move
			// above 0 before the first message is acked. The delivered
			// counts are not checked: the server may report the old
			// ones for a while although it delivers from 1 (seen with
			// nats-server 2.15.2 under load).
			ok = info.AckFloor.Stream == 0
		}
		if ok {
			return nil
		}
		if attempt == resetAttempts {
			return fmt.Errorf("reset consumer %s to sequence %d: it still reports ack floor %d, delivered %d after %d resets",
				durable, seq, info.AckFloor.Stream, info.Delivered.Stream, attempt)
		}
		if err := sleepCtx(ctx, resetSettle); err != nil {
			return err
		}
	}
}

func resetHeld(info *jetstream.ConsumerInfo, seq uint64) bool {
	return info.AckFloor.Stream == seq-1 && info.Delivered.Stream == seq-1
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// createConsumerAt creates the consumer delivering from start (1 or 0:
// from the stream's first message).
func createConsumerAt(ctx context.Context, js jetstream.JetStream, c ConsumerSettings, cfg jetstream.ConsumerConfig, start uint64) (consumerPosition, error) {
	if start > 1 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = start
	}
	cons, err := js.CreateConsumer(ctx, c.Stream, cfg)
	if err != nil {
		return consumerPosition{}, fmt.Errorf("create consumer %s: %w", c.Durable, err)
	}
	return consumerPosition{cons: cons, start: max(start, 1)}, nil
}

// consumerConfig is the consumer's configuration from c, deliver policy
// aside.
func consumerConfig(ctx context.Context, js jetstream.JetStream, c ConsumerSettings) (jetstream.ConsumerConfig, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:       c.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxAckPending: c.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// Redeliveries are never a reason to give up on a message: the
		// gateway must store every one.
		MaxDeliver: -1,
	}
	switch len(c.FilterSubjects) {
	case 0:
	case 1:
		cfg.FilterSubject = c.FilterSubjects[0]
		whole, err := filterSelectsWholeStream(ctx, js, c.Stream, cfg.FilterSubject)
		if err != nil {
			return cfg, err
		}
		if whole {
			// The server checks a filter against every message it
			// delivers; one that selects everything only costs it CPU.
			cfg.FilterSubject = ""
		}
	default:
		cfg.FilterSubjects = c.FilterSubjects
	}
	return cfg, nil
}

// sameSettings reports whether have already has want's settings, so that
// a start does not update the consumer for nothing.
func sameSettings(have, want jetstream.ConsumerConfig) bool {
	return have.AckWait == want.AckWait && have.MaxAckPending == want.MaxAckPending &&
		have.FilterSubject == want.FilterSubject && slices.Equal(have.FilterSubjects, want.FilterSubjects) &&
		have.MaxDeliver == want.MaxDeliver
}

// filterSelectsWholeStream reports whether filter selects every message
// stream holds and can ever hold: the stream's only subject is filter, it
// has no sources or mirror, and every subject it stores messages under
// matches filter (messages kept from an earlier subject prefix would
// otherwise reach the pipeline and be dead-lettered).
func filterSelectsWholeStream(ctx context.Context, js jetstream.JetStream, stream, filter string) (bool, error) {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return false, fmt.Errorf("look up stream %s: %w", stream, err)
	}
	cfg := st.CachedInfo().Config
	if len(cfg.Subjects) != 1 || cfg.Subjects[0] != filter || len(cfg.Sources) > 0 || cfg.Mirror != nil {
		return false, nil
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		return false, fmt.Errorf("stream %s subjects: %w", stream, err)
	}
	for subject := range info.State.Subjects {
		if !subjectMatches(filter, subject) {
			return false, nil
		}
	}
	return true, nil
}

// subjectMatches reports whether a NATS subject matches filter, whose
// tokens may be "*" (one token) or a final ">" (one or more).
func subjectMatches(filter, subject string) bool {
	f, t := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, tok := range f {
		switch {
		case tok == ">":
			return len(t) > i
		case i >= len(t):
			return false
		case tok != "*" && tok != t[i]:
			return false
		}
	}
	return len(f) == len(t)
}
