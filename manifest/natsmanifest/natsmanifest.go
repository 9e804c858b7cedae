// Package natsmanifest carries manifest records over NATS JetStream: a
// manifest.Publisher that publishes each committed record, EnsureStream to
// declare the JetStream stream that keeps them, and Follow to rebuild a
// stream's manifest index from that stream (read-only followers, failover).
//
// Wire format: one message per record on subject <prefix>.<stream> (default
// prefix "aof.manifest") in JetStream stream AOF_MANIFEST. The body is the
// binary manifest record exactly as in the chunk file (header and payload,
// see package manifest). Headers:
//
//	Aof-Event    record type name, e.g. "SealSegment"
//	Aof-Stream   the store stream name
//	Aof-Segment  segment id, decimal
//	Nats-Msg-Id  <stream>/<chunk>/<offset>: the record's position in the
//	             local manifest, so a retried publish is deduplicated by
//	             JetStream within the stream's duplicate window, and by
//	             Follow beyond it (positions only grow).
package natsmanifest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/manifest"
)

// Defaults for names on the wire.
const (
	DefaultPrefix     = "aof.manifest"
	DefaultStreamName = "AOF_MANIFEST"
	// DefaultPublishTimeout bounds one publish when the caller's context has
	// no deadline; the Log retries after it.
	DefaultPublishTimeout = 5 * time.Second
)

// Header names.
const (
	HeaderEvent   = "Aof-Event"
	HeaderStream  = "Aof-Stream"
	HeaderSegment = "Aof-Segment"
)

// Subject is the subject the records of stream are published on.
func Subject(prefix, stream string) string { return prefix + "." + stream }

// MsgID is the Nats-Msg-Id of an event: <stream>/<chunk>/<offset>.
func MsgID(ev manifest.Event) string {
	return ev.Stream + "/" + strconv.FormatUint(ev.Chunk, 10) + "/" + strconv.FormatInt(ev.Offset, 10)
}

// ParseMsgID is the inverse of MsgID.
func ParseMsgID(id string) (stream string, pos manifest.Position, err error) {
	parts := strings.Split(id, "/")
	if len(parts) != 3 {
		return "", pos, fmt.Errorf("msg id %q: want <stream>/<chunk>/<offset>", id)
	}
	if pos.Chunk, err = strconv.ParseUint(parts[1], 10, 64); err != nil {
		return "", pos, fmt.Errorf("msg id %q: chunk: %w", id, err)
	}
	if pos.Offset, err = strconv.ParseInt(parts[2], 10, 64); err != nil {
		return "", pos, fmt.Errorf("msg id %q: offset: %w", id, err)
	}
	return parts[0], pos, nil
}

// StreamConfig describes the JetStream stream that keeps manifest events.
type StreamConfig struct {
	// Name defaults to DefaultStreamName.
	Name string
	// Prefix defaults to DefaultPrefix; the stream captures <Prefix>.>.
	Prefix string
	// Replicas defaults to 1.
	Replicas int
	// Storage defaults to file storage.
	Storage jetstream.StorageType
	// Duplicates is the deduplication window for Nats-Msg-Id; default 2 min.
	Duplicates time.Duration
	// MaxAge bounds retention; 0 keeps events forever (the default: a
	// follower rebuilds an index from the first event).
	MaxAge time.Duration
}

func (c StreamConfig) withDefaults() StreamConfig {
	if c.Name == "" {
		c.Name = DefaultStreamName
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.Duplicates <= 0 {
		c.Duplicates = 2 * time.Minute
	}
	return c
}

// EnsureStream creates the manifest stream, or updates it to cfg if it
// exists.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	cfg = cfg.withDefaults()
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        cfg.Name,
		Description: "bop AOF manifest events, one message per manifest record",
		Subjects:    []string{cfg.Prefix + ".>"},
		Storage:     cfg.Storage,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.Duplicates,
		MaxAge:      cfg.MaxAge,
	})
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
	}
	return s, nil
}

// Option configures a Publisher or Follow.
type Option func(*options)

type options struct {
	prefix     string
	streamName string
	timeout    time.Duration
	startTime  time.Time
}

// WithPrefix sets the subject prefix (default DefaultPrefix).
func WithPrefix(p string) Option { return func(o *options) { o.prefix = p } }

// WithStreamName sets the JetStream stream name Follow reads (default
// DefaultStreamName).
func WithStreamName(n string) Option { return func(o *options) { o.streamName = n } }

// WithTimeout bounds one publish, or one wait for the next message in
// Follow, when the context has no deadline.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithStartTime makes Tail start at the first event JetStream stored at or
// after t instead of the stream's first event (a watcher that only cares
// about what happens from now on). Follow ignores it: an index is only
// right when folded from the first record.
func WithStartTime(t time.Time) Option { return func(o *options) { o.startTime = t } }

func newOptions(opts []Option) options {
	o := options{prefix: DefaultPrefix, streamName: DefaultStreamName, timeout: DefaultPublishTimeout}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Publisher publishes manifest events to JetStream. It implements
// manifest.Publisher and is safe for concurrent use.
type Publisher struct {
	js   jetstream.JetStream
	opts options
}

var _ manifest.Publisher = (*Publisher)(nil)

// NewPublisher returns a Publisher on js.
func NewPublisher(js jetstream.JetStream, opts ...Option) *Publisher {
	return &Publisher{js: js, opts: newOptions(opts)}
}

// Publish sends ev and returns once JetStream acknowledged it (stored, or
// recognised as a duplicate).
func (p *Publisher) Publish(ctx context.Context, ev manifest.Event) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.opts.timeout)
		defer cancel()
	}
	msg := nats.NewMsg(Subject(p.opts.prefix, ev.Stream))
	msg.Data = ev.Raw
	msg.Header.Set(HeaderEvent, ev.Record.Type.String())
	msg.Header.Set(HeaderStream, ev.Stream)
	msg.Header.Set(HeaderSegment, strconv.FormatUint(ev.Record.Segment, 10))
	msg.Header.Set(jetstream.MsgIDHeader, MsgID(ev))
	if _, err := p.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish manifest event %s: %w", MsgID(ev), err)
	}
	return nil
}

// Follow rebuilds the manifest index of stream from JetStream: it reads the
// stream's subject from the first message with an ordered consumer and
// returns once it has applied every message present when it started.
// Messages whose position is not after the last one applied (republished
// beyond the duplicate window) are skipped.
func Follow(ctx context.Context, js jetstream.JetStream, stream string, opts ...Option) (*manifest.Index, error) {
	idx := manifest.NewIndex(stream)
	o := newOptions(opts)
	o.startTime = time.Time{}
	err := follow(ctx, js, stream, o, true, func(ev manifest.Event) error {
		idx.Apply(ev.Record)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return idx, nil
}

// Tail calls fn with every manifest event of stream, from the first (or
// from WithStartTime), until ctx is done or fn fails; duplicates are skipped
// as in Follow.
func Tail(ctx context.Context, js jetstream.JetStream, stream string, fn func(manifest.Event) error, opts ...Option) error {
	return follow(ctx, js, stream, newOptions(opts), false, fn)
}

func follow(ctx context.Context, js jetstream.JetStream, stream string, o options, stopAtEnd bool, fn func(manifest.Event) error) error {
	subject := Subject(o.prefix, stream)
	s, err := js.Stream(ctx, o.streamName)
	if err != nil {
		return fmt.Errorf("follow %s: stream %s: %w", subject, o.streamName, err)
	}
	var last uint64
	if stopAtEnd {
		m, err := s.GetLastMsgForSubject(ctx, subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("follow %s: last message: %w", subject, err)
		}
		last = m.Sequence
	}
	cc := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}}
	if !o.startTime.IsZero() {
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &o.startTime
	}
	cons, err := s.OrderedConsumer(ctx, cc)
	if err != nil {
		return fmt.Errorf("follow %s: consumer: %w", subject, err)
	}
	var applied manifest.Position
	var any bool
	for {
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("follow %s: next: %w", subject, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("follow %s: metadata: %w", subject, err)
		}
		_, pos, err := ParseMsgID(msg.Headers().Get(jetstream.MsgIDHeader))
		if err != nil {
			return fmt.Errorf("follow %s: seq %d: %w", subject, md.Sequence.Stream, err)
		}
		if !any || applied.Less(pos) {
			rec, n, err := manifest.DecodeRecord(msg.Data())
			if err == nil && n != len(msg.Data()) {
				err = fmt.Errorf("%d trailing bytes", len(msg.Data())-n)
			}
			if err != nil {
				return fmt.Errorf("follow %s: seq %d (%s): %w", subject, md.Sequence.Stream, pos, err)
			}
			ev := manifest.Event{Stream: stream, Chunk: pos.Chunk, Offset: pos.Offset, Record: rec, Raw: msg.Data()}
			if err := fn(ev); err != nil {
				return err
			}
			applied, any = pos, true
		}
		if stopAtEnd && md.Sequence.Stream >= last {
			return nil
		}
	}
}
