// Package ingest consumes producers' messages from JetStream and stores each
// one exactly once, durably, before acknowledging it.
//
// # Pipeline
//
// One durable pull consumer on the stream AOF_INGEST (subjects
// aof.ingest.>) feeds a single batching loop:
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
// sequence order and none is skipped. The loop never naks and never goes on
// past a message it failed to store: a store error stops the pipeline. And
// because JetStream redelivers unacked messages only after their ack wait,
// while new ones flow at once, the pipeline recreates its consumer at the
// consumer's ack floor every time it starts, so that after a crash the
// unacked messages come back first and in order.
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
