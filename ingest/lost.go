package ingest

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Lost messages
//
// A message can leave the ingest stream before the gateway stored it only
// by the stream's max age (with discard new, its size limits refuse
// producers instead), or by an operator deleting or purging it. Either way
// it is gone, and JetStream says nothing: a consumer steps over the
// missing sequences, and moves its ack floor over them. So the pipeline
// looks itself, at every start and every LostCheckInterval: every
// sequence below the stream's first sequence is gone, and those from the
// first one the consumer had not handled are counted in
// ingest_lost_messages and logged as ingest_lost_messages (an error).
//
// Where the consumer had got to: at a start, the lower of its ack floor
// and its delivered sequence before the reset (JetStream moves the ack
// floor over removed messages by itself, but not the delivered
// sequence); at a start at a given sequence, that sequence (everything
// before it is archived); while running, the sequence after the last
// message delivered to the pipeline. A replay from the start, and a start
// at sequence 1 (a takeover, which re-reads whatever the stream holds),
// check nothing at the start: what the stream no longer holds there was
// archived and purged, by this owner or an earlier one.
//
// On a partitioned stream without a max age nothing is counted: nothing
// but a purge removes a message there, and the other partitions' owners
// purge what they archived, which moves the first sequence past this
// partition's position without any loss.
//
// The count is a number of sequences, not of messages known to be lost,
// and can be off:
//   - too high: a message delivered and being stored when it left (at a
//     start: or acked above the ack floor, as with a held stream) is
//     counted though stored; on a partitioned stream with a max age, the
//     range counts the
//     other partitions' messages too (their owners count them as well);
//     a loss counted while running can be counted again at the next start
//     if the consumer had not delivered past it.
//   - too low: a message deleted from the middle of the stream (above its
//     first sequence) is not seen; nor a held stream's message (naked,
//     waiting for its redelivery) that leaves; nor, at a start, messages
//     delivered but
//     unacked when the gateway stopped if JetStream had moved the ack floor
//     over them (it does once the first sequence is 50 or more beyond it).

// lostFromAtStart is the first sequence the consumer had not handled when
// the pipeline started it at pos.
func lostFromAtStart(pos consumerPosition, explicit bool) uint64 {
	if pos.prior == nil || explicit {
		return pos.start
	}
	return min(pos.prior.AckFloor.Stream, pos.prior.Delivered.Stream) + 1
}

// checkLost counts and logs the messages from sequence from up to the
// stream's first sequence, those not counted already.
func (p *Pipeline) checkLost(ctx context.Context, from uint64) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := p.js.Stream(ctx, p.opts.Consumer.Stream)
	if err == nil {
		var info *jetstream.StreamInfo
		if info, err = st.Info(ctx); err == nil {
			p.countLost(ctx, from, info)
			return
		}
	}
	p.log.Warn("ingest_lost_check_failed", "stream", p.opts.Consumer.Stream, "err", err)
}

// countLost counts the sequences in [from, first) not counted yet.
func (p *Pipeline) countLost(ctx context.Context, from uint64, info *jetstream.StreamInfo) {
	first := info.State.FirstSeq
	if p.opts.Partitions > 0 && info.Config.MaxAge == 0 {
		// Without a max age nothing but a purge removes a message, and
		// the other partitions' owners purge what they archived: a range
		// below the first sequence says nothing about this partition.
		return
	}
	from = max(from, p.lostThrough+1)
	if first <= from {
		return
	}
	n := first - from
	p.lostThrough = first - 1
	p.inst.AddLostMessages(ctx, int64(n))
	p.log.Error("ingest_lost_messages", "stream", p.opts.Consumer.Stream, "filter", p.opts.Consumer.FilterSubjects,
		"partition", p.partitionLabel(), "first_sequence", from, "last_sequence", first-1, "messages", n,
		"detail", "these messages left the ingest stream (max age, or deleted) before the gateway stored them; raise ingest.stream_max_age or the Tier 0 budget")
}

// checkLostRunning is the periodic check, from the sequence after the
// last message delivered to the pipeline. Not from the consumer's state:
// once JetStream has terminated the delivered messages that left the
// stream, it moves the consumer's ack floor and delivered sequence over
// the removed ones it never delivered.
func (p *Pipeline) checkLostRunning(ctx context.Context) {
	p.checkLost(ctx, p.position)
}

func (p *Pipeline) partitionLabel() int {
	if p.opts.Partitions == 0 {
		return -1
	}
	return p.opts.Partition
}
