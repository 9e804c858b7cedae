// Package tiers is the tiered append-only store: one Log per stream, each a
// sequence of segments that move from Tier 0 (hot segment files) to Tier 1
// (seekable zstd files on local disk) to Tier 2 (S3-compatible objects), and
// back through hydration when a reader needs them.
//
// A Store owns the logs of one data root:
//
//	<root>/tier0/<stream>/<segment_id:020>.seg
//	<root>/tier0/<stream>/current.sealed
//	<root>/tier1/<stream>/<segment_id:020>.zst
//	<root>/manifest/<stream>/...
//	<root>/LOCK   (flock of the one Store that has the root open; see LockRoot)
//
// Every tier transition is a manifest record committed before the
// transition is reported done, so a restart replays the manifest and
// reconciles it with the files present: a transition interrupted by a crash
// is either redone or undone, never half-visible.
//
// A Replica (replica.go) keeps read-only copies of streams another
// gateway owns, each adopted from Tier 2 through the stream's archived
// record into a store of its own under <data_root>/replica, which never
// writes to Tier 2.
//
// The store is a library: it never imports NATS. Backpressure is returned as
// *backpressure.Error values.
package tiers
