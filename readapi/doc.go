// Package readapi is the wire protocol of the gateway's read API: what a
// reader sends on aof.read.<stream> and what the gateway answers. It
// holds only the protocol's own types and constants, so that any client
// (aofclient, or a NATS client in another language following
// docs/reading.md) and the server (readservice) share one definition, and
// a storage refactor never changes what crosses NATS.
//
// # Request
//
// A request is a NATS request to <prefix>.<stream> (prefix
// read.subject_prefix, default "aof.read") with a reply subject, the
// header Aof-Api-Version: 1 (absent means 1) and a JSON body, a Request.
// An empty body reads from offset 0 with the default bounds.
//
// # Answer
//
// The gateway publishes a batch of messages to the reply subject, in
// offset order:
//
//   - one message per record: the original body, the original headers,
//     and HeaderSubject (the subject the record was published on),
//     HeaderStream, HeaderOffset, HeaderSeq (the JetStream sequence the
//     record had in the ingest stream) and HeaderTime (append time,
//     RFC 3339 with nanoseconds, UTC);
//   - while a follow request waits at the tail, heartbeats: HeaderStatus
//     StatusHeartbeat, empty body;
//   - last, exactly one control message: HeaderStatus StatusEndOfBatch with
//     an EndOfBatch body, or an error status (4xx/5xx) with an Error
//     body. Either says the batch is over.
//
// A message is a control message exactly when it carries HeaderStatus.
// A batch is bounded by max_msgs and max_bytes, so the reader's buffer
// never holds more than one batch: to read on, it sends a new request
// starting at EndOfBatch.NextOffset (the pattern of JetStream's direct
// batch get).
//
// # Packs
//
// A request with Request.Pack gets its records in packs (pack.go):
// messages with HeaderPack, each a checksummed block of many records,
// written by PackWriter and read by DecodePack. The heartbeats and the
// final message are unchanged. A follow request in packs stays open at
// the tail, sending each record as it comes, until its bounds or its
// expiry. A gateway that predates packs ignores the field.
//
// # Versioning
//
// Changing a JSON field name or type, a header name or the meaning of a
// status is a protocol change: it needs a new APIVersion.
// TestWireJSONIsStable pins the JSON.
package readapi
