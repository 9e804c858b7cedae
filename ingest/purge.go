package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// PurgerOptions configure a Purger.
type PurgerOptions struct {
	Stream        string // AOF_INGEST
	SubjectPrefix string // aof.ingest
	// Partitions and PartitionOf are the pipeline's (Options): with
	// partitions, a stream's messages are stored under
	// <prefix>.<PartitionOf(stream)>.<stream>, and those stored before the
	// stream was partitioned under <prefix>.<stream>.
	Partitions  int
	PartitionOf func(stream string) int
	// Keep is how many of the newest archived messages of each stream stay
	// in the ingest stream for other consumers (ingest.keep); 0 keeps none.
	Keep   int
	Logger *slog.Logger
}

// Purger removes messages from the ingest stream once their records are
// archived in Tier 2: the ingest stream is the write-ahead log of the
// records not archived yet (DESIGN.md, "Ownership, failover and
// scale-out"). Only the owner of a stream's partition calls it, after the
// archived-through record was updated. Safe for concurrent use.
type Purger struct {
	js   jetstream.JetStream
	opts PurgerOptions
	log  *slog.Logger
}

// NewPurger returns a purger of opts.Stream.
func NewPurger(js jetstream.JetStream, opts PurgerOptions) (*Purger, error) {
	if opts.SubjectPrefix == "" {
		opts.SubjectPrefix = "aof.ingest"
	}
	if opts.Partitions > 0 && opts.PartitionOf == nil {
		return nil, errors.New("ingest: a purger of a partitioned stream needs PartitionOf")
	}
	if opts.Keep < 0 {
		return nil, fmt.Errorf("ingest: keep %d is negative", opts.Keep)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Purger{js: js, opts: opts, log: opts.Logger}, nil
}

// subjects are the stored subjects of stream's messages.
func (pu *Purger) subjects(stream string) []string {
	legacy := pu.opts.SubjectPrefix + "." + stream
	if pu.opts.Partitions == 0 {
		return []string{legacy}
	}
	return []string{fmt.Sprintf("%s.%d.%s", pu.opts.SubjectPrefix, pu.opts.PartitionOf(stream), stream), legacy}
}

// PurgeArchived removes stream's messages of sequence through and below
// from the ingest stream, except the Keep newest of them. The caller
// guarantees that every record of stream up to ext_id through is
// archived. It never removes a message above through, and calling it
// again, or with a lower through, removes nothing more.
//
// JetStream's purge takes either a sequence or a number to keep, not
// both, and keeping n counts the messages above through too. So with Keep
// the purger first finds the Keep-th newest message at or below through
// and purges below it; finding it reads the stream's messages at or below
// through (headers only) from its oldest, so its cost grows with the
// archived messages the stream still holds, that is with Keep.
func (pu *Purger) PurgeArchived(ctx context.Context, stream string, through uint64) error {
	if _, err := StreamFromSubject(pu.opts.SubjectPrefix, pu.opts.SubjectPrefix+"."+stream); err != nil {
		return fmt.Errorf("purge archived: %w", err)
	}
	st, err := pu.js.Stream(ctx, pu.opts.Stream)
	if err != nil {
		return fmt.Errorf("purge archived of %s: look up stream %s: %w", stream, pu.opts.Stream, err)
	}
	subjects := pu.subjects(stream)
	below := through + 1
	if pu.opts.Keep > 0 {
		if below, err = pu.keepFrom(ctx, st, subjects, through); err != nil {
			return fmt.Errorf("purge archived of %s: %w", stream, err)
		}
	}
	if below <= 1 {
		return nil
	}
	for _, subject := range subjects {
		// A purge by subject and sequence removes that subject's messages
		// below the sequence, and nothing else.
		if err := st.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(below)); err != nil {
			return fmt.Errorf("purge archived of %s below %d: %w", stream, below, err)
		}
	}
	pu.log.Debug("ingest_purged", "stream", stream, "below_sequence", below)
	return nil
}

// keepFrom is the sequence of the Keep-th newest message of subjects at or
// below through, the lowest to keep; 0 when there are no more than Keep.
func (pu *Purger) keepFrom(ctx context.Context, st jetstream.Stream, subjects []string, through uint64) (uint64, error) {
	var total uint64
	for _, subject := range subjects {
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
		if err != nil {
			return 0, err
		}
		total += info.State.Subjects[subject]
	}
	if total <= uint64(pu.opts.Keep) {
		return 0, nil // all archived ones are kept, whatever through is
	}
	cons, err := pu.js.OrderedConsumer(ctx, pu.opts.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects, HeadersOnly: true, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return 0, fmt.Errorf("ordered consumer: %w", err)
	}
	// ring holds the sequences of the Keep newest messages read so far.
	ring := make([]uint64, pu.opts.Keep)
	var seen uint64
	for left := total; left > 0; {
		batch, err := cons.Fetch(int(min(left, 1000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return 0, fmt.Errorf("read %v: %w", subjects, err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return 0, err
			}
			if md.Sequence.Stream > through {
				left = 0
				break
			}
			ring[seen%uint64(len(ring))] = md.Sequence.Stream
			seen++
			left--
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return 0, fmt.Errorf("read %v: %w", subjects, err)
		}
		if got == 0 {
			break // fewer than counted: purged meanwhile
		}
	}
	if seen <= uint64(len(ring)) {
		return 0, nil
	}
	return ring[seen%uint64(len(ring))], nil // the oldest of the Keep newest
}
