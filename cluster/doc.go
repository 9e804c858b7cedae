// Package cluster decides which gateway owns which partition of streams,
// with nothing but a JetStream KV bucket (DESIGN.md, "Ownership, failover
// and scale-out"). No consensus code of its own: every decision is a
// Create, or an Update at an expected revision, that the NATS server
// (R3 on a cluster) accepts for exactly one writer.
//
// # Partitions
//
// A stream belongs to partition PartitionOf(stream, P): FNV-1a 32 of the
// name modulo P, the very function of nats-server's subject transform
// partition(P, 1). PartitionSubjectTransform makes the ingest stream store
// <prefix>.<stream> as <prefix>.<p>.<stream>.
//
// # Bucket and keys
//
// Bucket AOF_CLUSTER (EnsureBucket; history 1, per-key TTLs on). Values are
// JSON documents with a version field "v" (1); a reader refuses a version
// it does not know. JetStream checksums stored messages, so a value is
// either what its writer sent or unreadable, never silently altered.
//
//	lease.<p>          TTL  {v, node, epoch, acquired_at, renewed_at}
//	epoch.<p>          -    {v, epoch, node, updated_at}
//	node.<id>          TTL  {v, node, started_at, owned: [p...]}
//	archived.<stream>  -    {v, epoch, through, offset, manifest: {chunk, offset}, updated_at}
//
// Partitions are decimal; node ids and stream names are single tokens of
// [A-Za-z0-9_-] (config.ValidStreamName), valid KV key tokens unescaped.
// TTLs are whole seconds: the server truncates a message TTL to seconds,
// so the Manager truncates cluster.lease_ttl first.
//
// # Lease protocol, per partition
//
//  1. Acquire: Create lease.<p> with the TTL (succeeds only if the key is
//     absent, deleted or expired), then raise epoch.<p> by one at its
//     revision (Create for the first), then write the epoch into the lease
//     at the Create's revision, with the TTL again.
//  2. Renew every TTL/3: write the lease at its last revision with the
//     TTL. Each write restarts the server's expiry.
//  3. Release: delete the lease at its revision, after the handler
//     returned; a standby's Create succeeds at once.
//
// The owner counts its lease valid until the time it *sent* its last
// successful lease write, plus the TTL, minus a margin (TTL/10, at least
// 100ms), on its monotonic clock. The server stores that write later and
// expires the key one TTL after storing it, so the owner's view ends before
// the server's: a standby's Create can succeed only after the owner has
// stopped. The margin covers clock rate differences and a new stream
// leader judging the stored timestamp by its own clock. A renewal refused
// for its revision ends ownership at once; a renewal that fails otherwise
// (timeout, no leader) is retried until the validity ends, then ownership
// ends. Ending ownership cancels the handler's context.
//
// # Races
//
//   - Two takers of one expired lease: the server accepts one Create (or
//     one update at the marker's revision); the other gets "key exists".
//   - A taker that stalls between its Create and its epoch write: its
//     Create expires, another takes the lease and bumps the epoch; the
//     stalled taker's epoch bump or its lease write is at a stale revision
//     and fails, so it never starts.
//   - Epochs: whoever completes step 1 bumped epoch.<p> after the previous
//     owner's lease vanished, which was after that owner's own bump; so
//     epochs strictly increase across owners although lease keys expire.
//     A failed taker may burn an epoch number; numbers are unique, not dense.
//   - A lost renewal reply: the renewal may have been stored. The next one
//     then fails on its revision; if the key still holds this term's node
//     and epoch (no other term has that epoch), the term adopts the key's
//     revision and renews. The validity deadline moves only on a
//     renewal whose success this node saw.
//   - A zombie (an owner paused past its lease, then resumed): its handler
//     context is cancelled by its own deadline, Valid reports the loss
//     before that goroutine runs, and its next renewal fails on the
//     revision. What it still sends in between is fenced: Tier 2 object
//     keys carry its older epoch, and UpdateArchived fails with ErrFenced
//     because the new owner rewrote archived.<stream> when it took over.
//
// # Archived-through records
//
// archived.<stream> says up to which JetStream sequence (the record's
// ext_id) the stream is in Tier 2. UpdateArchived writes it at the revision
// the caller read (Create at revision 0); any other revision means another
// owner exists and the error wraps ErrFenced: the caller stops the
// partition. A new owner rewrites each record unchanged under its epoch
// before anything else, which fences every earlier owner.
package cluster
