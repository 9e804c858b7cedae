// Package ingest consumes producers' messages from JetStream and stores each
// one exactly once, durably, before acknowledging it.
//
// # Pipeline
//
// One durable pull consumer on the stream AOF_INGEST (subjects
// aof.ingest.>), or one per partition (below), feeds a single batching
// loop:
//
//	fetch batch -> validate (stream name, size) -> dead-letter the bad ones
//	            -> group by stream, keep publish order
//	            -> admission + append + one fsync per stream
//	            -> ack the batch
//
// A message is acked only after its record is durable in Tier 0
// (invariant 1 of DESIGN.md). The record's ext_id is the message's
// JetStream stream sequence; a message whose sequence is not above the
// highest ext_id already stored for its stream is a redelivery and is acked
// without a second record.
//
// That rule is only sound if, per stream, messages reach the store in
// sequence order and none is skipped. The loop never goes on past a message
// of a stream it failed to store: a store error stops the pipeline, or, when
// it concerns one stream only, holds that stream (below). And because
// JetStream redelivers unacked messages only after their ack wait, while
// new ones flow at once, the pipeline moves its consumer back to the
// consumer's ack floor every time it starts, so that after a crash the
// unacked messages come back first and in order.
//
// # The consumer's position
//
// The consumer is never deleted: its ack floor is the only record of
// where the gateway got to. It is created once, directly at its start
// sequence, and at every start moved with ResetConsumerToSequence to its
// ack floor + 1 (or to ConsumerSettings.StartSequence, or 1 with
// ReplayFromStart, on a pipeline's first start). A reset to S drops the
// consumer's pending and redelivery state, delivers from S in sequence
// order (messages acked above the ack floor come again and are acked as
// duplicates), and sets its ack floor to S-1, forward or back. So a crash
// between any two steps of a start resumes from the right sequence: after
// the creation at S, or the reset to S, and before the first ack, the ack
// floor is S-1 and the next start resumes at S. JetStream refuses to
// reset a consumer created at a start sequence below it; such a start is
// clamped to it (ingest_start_clamped), since everything before it was
// archived or acked when the consumer was created. A created or reset
// consumer numbers its deliveries from 1, and a first delivery above 1
// (taken by a pull request left from before the reset) restarts the
// pipeline like a lost delivery.
//
// # Partitions
//
// With Options.Partitions P > 0, the ingest stream stores a producer's
// aof.ingest.<stream> as aof.ingest.<p>.<stream>, p = partition(P) of the
// stream name (EnsureIngestStream's subject transform). The pipeline of
// partition p uses the durable <consumer_name>-p<p> filtered on
// aof.ingest.<p>.*, and stores the producer's subject
// (aof.ingest.<stream>) in the envelope, so that a replay reproduces what
// the producer sent. A message published straight to a partition subject
// that is not its stream's partition is dead-lettered: stored, it would
// give the stream a second owner.
//
// Upgrade: a stream partitioned after it held messages keeps those under
// aof.ingest.<stream>. While it holds any (ingest_legacy_drain is logged
// at each start), every partition's consumer also filters on
// aof.ingest.*: the old messages have lower sequences, so each stream's
// come first and in order; a partition stores those of its own streams
// and acks the others' without storing them. The purge removes them once
// archived, and the next start drops the extra filter.
//
// # Archive, then purge
//
// AOF_INGEST is the write-ahead log of what Tier 2 does not hold yet: it
// discards new messages when full (producer backpressure), and a message
// leaves it when Purger.PurgeArchived removes it after its record was
// archived, except the ingest.keep newest archived ones of each stream.
// Messages that leave it otherwise are counted as lost (lost.go).
//
// # Held streams
//
// When the store refuses one stream with Flush or Rollover backpressure (a
// full disk under its segment or its manifest, a failed fsync), that stream
// is held: ingest_stream_held is logged, backpressure{kind} counted, and
// Status lists it in HeldStreams. Its messages of the failed batch are not
// acked, and every later message of it is naked with HeldRedeliveryDelay,
// neither stored nor acked, so that none is stored ahead of an older one
// (sequence dedupe would then drop the older one as a duplicate). The
// other streams' messages are stored and acked as usual. The consumer has
// no MaxDeliver, so no number of naks drops a message.
//
// About once a second, with a backoff up to a minute, the pipeline asks
// the store to resume each held stream (Store.ResumeStream), once nothing
// it appended to that stream is still waiting for its fsync. When the
// store says the stream is writable again, the pipeline finishes the
// batches in hand and moves its consumer back to the ack floor, as after
// ErrDeliveryLost but inside the same Run: the held messages come back
// first and in sequence order, and the other streams' messages since the
// ack floor are acked again as duplicates.
//
// Held messages are unacked, so they count against the consumer's
// max_ack_pending. Once it is full, JetStream delivers nothing more to the
// gateway, for any stream, until the held stream resumes: that is
// JetStream's own backpressure, and producers' messages wait in the
// ingest stream meanwhile (subject to its max age and max bytes). The ack
// floor stays at the first held message, so the restart after a resume
// redelivers everything since, which costs a dedupe check per message.
//
// # Dead letters
//
// A message the store must never hold goes to the dead-letter subject
// <deadletter prefix>.<stream> with its reason in the Aof-Error header, and
// is terminated: one whose subject names no valid stream, one larger than
// ingest.max_record_bytes or than the store can ever admit
// (Store.RecordLimit: the whole Tier 0 budget less the record header), and
// one that would create a stream beyond ingest.max_streams, counting the
// streams the store holds on disk. Each of these would otherwise fail on
// every redelivery, and the loop, which never goes past a message it failed
// to store, would store nothing behind it.
//
// # Envelope
//
// The payload stored for a message keeps everything needed to reproduce it:
//
//	version   u8   = 1
//	subj_len  u16
//	hdr_len   u32
//	subject   subj_len bytes
//	headers   hdr_len bytes, NATS wire form "NATS/1.0\r\nKey: Value\r\n...\r\n"
//	body      the rest
//
// Integrity is covered by the segment record's CRC-32C. Header keys are
// written in sorted order with their values in arrival order, so a replay
// reproduces subject, headers and body; the header block is canonical
// rather than the producer's original bytes because the NATS client does not
// expose those.
package ingest
