package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/config"
)

// StreamSettings are the JetStream settings of the ingest stream.
type StreamSettings struct {
	Name     string        // AOF_INGEST
	Subjects []string      // aof.ingest.>
	MaxBytes int64         // 0 = unlimited
	MaxAge   time.Duration // 0 = unlimited
	// DiscardNew makes a full stream refuse publishes (producers see
	// JetStream's error) instead of dropping the oldest messages, which
	// the gateway may not have stored yet.
	DiscardNew bool
	Replicas   int
}

// EnsureIngestStream creates the ingest stream or updates the settings
// JetStream allows to change. It is idempotent.
func EnsureIngestStream(ctx context.Context, js jetstream.JetStream, s StreamSettings) (jetstream.Stream, error) {
	cfg := jetstream.StreamConfig{
		Name:      s.Name,
		Subjects:  s.Subjects,
		Storage:   jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy,
		MaxBytes:  orUnlimited(s.MaxBytes),
		MaxAge:    s.MaxAge,
		Discard:   jetstream.DiscardOld,
		Replicas:  max(s.Replicas, 1),
		// Producers may set Nats-Msg-Id; the window makes their retries
		// idempotent as well. JetStream refuses a MaxAge shorter than it,
		// which config validation reports by key.
		Duplicates: config.IngestDuplicateWindow,
	}
	if s.DiscardNew {
		cfg.Discard = jetstream.DiscardNew
	}
	st, err := js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("provision stream %s: %w", s.Name, err)
	}
	return st, nil
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
	Stream        string
	Durable       string
	FilterSubject string
	AckWait       time.Duration
	MaxAckPending int
	// ReplayFromStart recreates the consumer at the first message of the
	// stream instead of its ack floor: after a data root was rebuilt from
	// Tier 2, messages acknowledged but never uploaded come back, and
	// sequence dedupe skips those Tier 2 already holds.
	ReplayFromStart bool
}

// resetConsumer recreates the durable consumer so that delivery restarts at
// its ack floor: every message not yet acked comes again, in sequence order,
// before any newer one. See the package doc for why the pipeline needs that.
func resetConsumer(ctx context.Context, js jetstream.JetStream, c ConsumerSettings) (jetstream.Consumer, uint64, error) {
	start := uint64(1)
	old, err := js.Consumer(ctx, c.Stream, c.Durable)
	switch {
	case err == nil:
		info, err := old.Info(ctx)
		if err != nil {
			return nil, 0, fmt.Errorf("consumer %s info: %w", c.Durable, err)
		}
		start = info.AckFloor.Stream + 1
		if err := js.DeleteConsumer(ctx, c.Stream, c.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, 0, fmt.Errorf("delete consumer %s: %w", c.Durable, err)
		}
	case errors.Is(err, jetstream.ErrConsumerNotFound):
	default:
		return nil, 0, fmt.Errorf("look up consumer %s: %w", c.Durable, err)
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       c.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxAckPending: c.MaxAckPending,
		FilterSubject: c.FilterSubject,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// Redeliveries are never a reason to give up on a message: the
		// gateway must store every one.
		MaxDeliver: -1,
	}
	if c.FilterSubject != "" {
		whole, err := filterSelectsWholeStream(ctx, js, c.Stream, c.FilterSubject)
		if err != nil {
			return nil, 0, err
		}
		if whole {
			// The server checks a filter against every message it
			// delivers; one that selects everything only costs it CPU.
			cfg.FilterSubject = ""
		}
	}
	if c.ReplayFromStart {
		start = 1
	}
	if start > 1 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = start
	}
	cons, err := js.CreateConsumer(ctx, c.Stream, cfg)
	if err != nil {
		return nil, 0, fmt.Errorf("create consumer %s: %w", c.Durable, err)
	}
	return cons, start, nil
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
