// Package readservice serves the read API (package readapi, described for
// every language in docs/reading.md) over a store: every gateway
// subscribes to <prefix>.* in the queue group readapi.QueueGroup, so one
// of them answers each request, and the subjects are apart from
// aof.admin.> so that NATS permissions can grant reading without
// administration.
//
// Flow control is the batch: a request names at most max_msgs records and
// max_bytes of bodies (capped by readapi.MaxMaxMsgs and
// readapi.MaxMaxBytes), the service publishes that much to the reply
// subject and an end-of-batch message, and the reader asks for more when
// it has taken them. A slow reader therefore never has more than one
// batch in flight, and nothing is dropped on its behalf.
//
// A start by sequence or by time is resolved without scanning: the
// manifest's per-segment bounds pick the segment and a binary search
// inside it finds the record (seek.go).
//
// With several gateways (Options.Router), the owner of a stream answers
// from its own store; any other gateway answers the archived history from
// its replica (Options.Replica, tiers.Replica), up to the archived record
// and with the end-of-batch reason readapi.ReasonArchived, and forwards
// the rest to the owner (docs/reading.md, "Reads from any gateway").
//
// Not in this slice: replay or export to another subject, and read-ahead
// of the next batch.
package readservice
