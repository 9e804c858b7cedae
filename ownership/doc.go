// Package ownership runs the partitions of the ingest stream that this
// gateway holds leases for: it takes a partition over, feeds its streams
// from JetStream, advances each stream's archived-through record once
// Tier 2 holds its records, purges what is archived from AOF_INGEST, and
// hands the partition over on shutdown.
//
// The engines do the distributed work; this package only orders the
// steps. Leases and records live in the JetStream KV bucket (package
// cluster), segments and manifest chunks in Tier 2 under the owner's
// epoch (package tiers), messages in AOF_INGEST until they are archived
// (package ingest).
//
// # One partition, at epoch e
//
//	takeover   for every stream of the partition:
//	             fence:  write its archived record unchanged but for the
//	                     epoch, at the revision read (a zombie's next write
//	                     fails from now on; losing the race means the
//	                     zombie wrote first: read again and adopt that)
//	             adopt:  keep the local copy only if it was written under
//	                     the record's epoch; otherwise rebuild the stream
//	                     from Tier 2 through the record
//	             purge:  below the record's sequence + 1 (heals a crash
//	                     between record and purge)
//	run        the partition's pipeline, its consumer reset to the first
//	           message still in AOF_INGEST (sequence dedupe skips what the
//	           stream holds); meanwhile, for every stream whose store
//	           archived further: write the record at its revision, then
//	           purge below it
//	handover   stop the pipeline, seal every stream, wait until Tier 2
//	           holds everything stored, write the records, purge, and let
//	           the caller release the lease
//
// A failed record write (ErrFenced) means another owner exists: the
// partition stops at once, with no further record write or purge. Every
// record write and purge is also checked against the lease's own
// deadline first (Lease.Valid), so a gateway resumed after a pause past
// its lease stops before it writes.
//
// The proof sketch of each race (zombie upload, zombie purge, two takers
// of one expired lease, a crash between archive and purge or between
// purge and record) is in docs/architecture.md, "Ownership and failover".
package ownership
