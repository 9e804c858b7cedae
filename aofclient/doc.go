// Package aofclient reads streams of the bop AOF gateway over NATS: it
// speaks the read API (package readapi, docs/reading.md) from any
// *nats.Conn that may publish on aof.read.> and subscribe to its inbox.
//
// Get reads one record; Read iterates over a stream from any start up to
// its end at the time of reading (or an end offset); Follow iterates
// forever, waiting at the tail for new records, across seal, upload and
// eviction (the gateway reads every tier). Both ask for bounded batches,
// so a slow loop body holds at most one batch in memory, and both resume
// from the last record they yielded when a gateway restarts, fails over
// to another one, or answers a retryable status: the iterator neither
// skips nor repeats a record.
package aofclient
