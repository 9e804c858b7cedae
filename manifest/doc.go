// Package manifest records every tier transition of the store in a
// checksummed, chunked, append-only log per stream, folds it into a
// per-segment index, snapshots that index, uploads chunks and snapshots to
// Tier 2 and publishes every committed record through a Publisher (NATS in
// the gateway; see manifest/natsmanifest). The package does not import NATS:
// the store works without a broker.
//
// All integers are little-endian. CRC64 is CRC-64/NVME (polynomial
// 0x9a6c9329ac4bc9b5, check value of "123456789" 0xae8b14860a799888).
//
// # Record (40-byte header + payload)
//
//	off size field
//	0   2    record_type    (ids 0-16 below; readers skip unknown ids)
//	2   2    flags          (bit 0 FlagTier1Copy on LocalEvicted)
//	4   4    payload_len    (at most MaxPayloadSize)
//	8   8    segment_id
//	16  8    logical_offset
//	24  8    timestamp_ms   (signed, Unix milliseconds)
//	32  8    payload_crc64  (CRC64 of the payload bytes)
//	40  n    payload
//
// Payloads (ids 0-15 are those of the original AOF2 manifest, 16 is this
// gateway's own; strings are raw bytes preceded by a u16 length):
//
//	0  SegmentOpened       base_offset u64, epoch u32
//	1  SealSegment         durable_bytes u64, segment_crc64 u64, ext_id u64,
//	                       coordinator_watermark u64, flush_failure u8 (0|1)
//	2  CompressionStarted  job_id u32
//	3  CompressionDone     compressed_bytes u64, dictionary_id u32
//	4  CompressionFailed   reason_code u32
//	5  UploadStarted       key_len u16, key
//	6  UploadDone          key_len u16, etag_len u16, key, etag
//	7  UploadFailed        key_len u16, reason_code u32, key
//	8  Tier2DeleteQueued   key_len u16, key
//	9  Tier2Deleted        key_len u16, key
//	10 HydrationStarted    source_tier u64
//	11 HydrationDone       resident_bytes u64
//	12 HydrationFailed     reason_code u32
//	13 LocalEvicted        reclaimed_bytes u64
//	14 SnapshotMarker      chunk_index u64, chunk_offset u64, snapshot_id u64
//	15 CustomEvent         schema_id u32, blob_len u16, blob
//	16 SegmentBounds       first_ext_id u64, last_ext_id u64,
//	                       first_append_ms i64, last_append_ms i64
//
// SegmentBounds is written with every seal, in the same commit as and just
// before SealSegment: the ext_id and append_ts_ms of the segment's first
// and last record (all zero for a segment without records), so a reader
// finds the segment for a time or a JetStream sequence from the index
// alone (SegmentForTime, SegmentForSeq). It is a record of its own rather
// than longer SealSegment payload so SealSegment stays byte for byte the
// original AOF2 record and a reader that does not know id 16 (an older
// gateway after a rollback, a NATS subscriber) skips it instead of
// refusing the chunk. A segment sealed without it (before it existed, or
// a seal recovery recorded again from the footer alone) has unknown
// bounds: SegmentForTime answers SeekUnknown and the reader scans.
//
// Reason codes: 0 transient, 1 codec (corrupt segment), 2 Tier 2 auth,
// 3 unavailable, 4 Tier 2 object missing.
//
// # Chunk file <dir>/<chunk_index:020>.mlog (AOF2MLOG version 1)
//
// A chunk starts with two 72-byte header slots (ChunkHeaderSize = 144);
// records follow back to back. Each header rewrite goes to the slot of its
// generation (generation % 2), so a torn header write leaves the previous
// generation readable; readers take the valid slot with the higher
// generation.
//
//	off size field
//	0   8    magic "AOF2MLOG"
//	8   2    version = 1
//	10  2    flags (bit 0 sealed, bit 1 uploaded)
//	12  4    generation
//	16  8    chunk_index
//	24  8    base_record   (stream-wide ordinal of the first record)
//	32  8    record_count  (committed records)
//	40  8    tail_offset   (file offset of the last committed record, 0 if none)
//	48  8    committed_len (committed record bytes after the header)
//	56  8    chunk_crc64   (CRC64 of exactly the committed record bytes)
//	64  8    header_crc64  (CRC64 of bytes 0-63 of this slot)
//
// Commit writes the records after the committed range, fsyncs, then
// rewrites a header slot and fsyncs again. A chunk's first commit writes the
// whole file under a temporary name and renames it into place, so a chunk
// file exists only once it holds a committed record. Bytes after the
// committed range are the torn tail of a commit that never returned; Open
// trims them. Anything wrong inside the committed range (chunk or record
// checksum, record count, tail offset) is an *IntegrityError and the stream
// is quarantined: no further writes, no guessing.
//
// A failed write or fsync during Commit is not a quarantine. The records
// of the failed commit stay pending, and the next Append or Commit retries
// them: after a failed fsync the page cache no longer tells what is on
// disk, so the retry first writes the committed header into the next
// generation's slot and fsyncs (a slot the failed attempt wrote can no
// longer be the newest), then truncates the chunk to its committed length
// and fsyncs, through a fresh file handle, and only then writes the
// pending records again. A chunk the failed attempt created is replaced by
// the atomic create. A crash at any point leaves the committed records
// plus at most a prefix of the pending ones, each once.
//
// A chunk rotates (gets the sealed flag, and the next record opens chunk
// index+1) when a record would overflow Options.ChunkCapacity or the chunk's
// first record is older than Options.RotationPeriod.
//
// # Snapshot <dir>/snapshot_<snapshot_id:020>.bin (AOF2SNAP version 4)
//
//	off size field
//	0   8    magic "AOF2SNAP"
//	8   4    version = 4 (3 is still read)
//	12  4    flags = 0
//	16  8    snapshot_id
//	24  8    chunk_index   \ position of the first record not folded into
//	32  8    chunk_offset  / the index
//	40  8    next_record   (stream-wide ordinal of that record)
//	48  4    index_len
//	52  n    index (below)
//	52+n 8   crc64 of every preceding byte
//
// Index encoding (version 3): version u16, stream (u16 length + bytes),
// records u64, unknown u64, custom u64, last_snapshot_id u64, segment_count
// u32, then per segment in ascending id order: segment u64, base_offset u64,
// epoch u32, last_logical_offset u64, last_timestamp_ms u64, opened_ms u64
// (absent in version 1), record_count u64, durable_bytes u64, crc64 u64,
// last_ext_id u64, first_ext_id u64, first_append_ms u64, last_append_ms
// u64 (these three absent in versions 1 and 2), compressed_bytes u64,
// dictionary_id u32, resident_bytes u64, hydration_source u64, last_failure
// u32, failures u32, reason u32, pending_jobs u8, state flags u8 (sealed,
// flush_failure, tier0, tier1, tier2, needs_recovery, deleted,
// bounds_known from bit 0), tier2_key and etag as u16 length + bytes.
// Snapshot version 4 carries index version 3; version 3 snapshots carry
// index versions 1 and 2, which readers still accept (their segments'
// bounds are unknown).
//
// A snapshot is written atomically and then announced by a SnapshotMarker
// record. Open loads the newest snapshot that verifies (skipping corrupt
// ones with a log line) and replays only the records after its position.
//
// # Publication cursor <dir>/publish.cursor
//
// chunk u64, offset u64, crc64 of those 16 bytes: the position of the next
// record to publish, rewritten atomically after each published batch. The
// local log is the outbox; a restart republishes at most the batch in
// flight, which subscribers deduplicate by (stream, chunk, offset).
//
// # Epoch file <dir>/epoch
//
// epoch u64, crc64 of those 8 bytes: the epoch the local copy is written
// under, rewritten atomically when it changes; absent for epoch 0.
//
// # Local retention and Tier 2
//
// Sealed chunks are uploaded as manifest/<stream>/<chunk_index>.mlog and
// snapshots as snapshots/<stream>/<snapshot_id>.bin (epoch 0; an owner at
// a higher epoch puts <epoch>/ after the stream, see Epochs), in the
// background with exponential backoff. A chunk file is deleted locally only when it is
// older than the chunk before the active one, wholly covered by the latest
// snapshot, confirmed uploaded (uploaded flag set after PutObject returned)
// and, with a Publisher, fully published.
//
// # Epochs: fenced keys and the chain in Tier 2
//
// Several gateways may write one bucket; a stream's owner holds it under
// an epoch that only grows (a lease in the cluster KV). Tier 2 keys carry
// the writer's epoch (Options.Epoch), so two owners never write the same
// key and a zombie owner cannot overwrite what the new owner references:
//
//	segments/<stream>/<epoch>/<segment_id>.zst
//	manifest/<stream>/<epoch>/<chunk_index>.mlog
//	snapshots/<stream>/<epoch>/<snapshot_id>.bin
//
// Epoch 0 is the layout before epochs, without the epoch part
// (segments/<stream>/<segment_id>.zst and so on): keys written before
// epochs read as epoch 0, and a Log with Epoch 0 writes exactly that
// layout. Readers of segments follow the key recorded in UploadStarted and
// UploadDone, never a key computed again, so history adopted from an
// older epoch stays readable at its own keys.
//
// Chunk indexes and snapshot ids continue across epochs: a new owner
// adopts the stream's manifest from Tier 2 up to a recorded position and
// goes on from there. A Log opened with an Epoch above 0, or moved to one
// by SetEpoch, first seals its active chunk and writes a snapshot at that
// chunk boundary, the epoch's anchor; the anchor is uploaded before any
// other object of the epoch. The chain of an epoch is its newest snapshot
// that verifies plus the epoch's chunks from that snapshot's chunk on,
// without a gap. A reader of Tier 2 alone (recover --from-tier2, fsck)
// takes, by ChooseTier2Chain:
//
//  1. the highest epoch with a usable snapshot (one that verifies and that
//     the epoch's chunks continue), then that epoch's chunks after it;
//  2. without any, the highest epoch whose chunks start at chunk 0 (a
//     stream that never snapshotted, as before epochs);
//  3. failing that, the highest epoch with chunks, whose replay then
//     reports the missing chunk.
//
// Objects of an older epoch that the chosen chain does not reference (a
// zombie's chunks, snapshots and segments written after the takeover) are
// ignored. A takeover itself adopts the chain of the archived-through
// record's epoch up to the record's position and nothing after it
// (ChooseTier2ChainUpTo; tiers.AdoptFromTier2). A writer still at that
// epoch (a zombie, a restarted node whose kept copy anchors at its local
// epoch, or the owner itself between a record and its crash) may have
// snapshotted past the position and pruned what led to it: when no chain
// of the epoch reaches the position (Tier2Chain.Reaches), the takeover
// adopts the epoch's newest usable chain (ChooseTier2ChainOf), whose
// records after the position are that epoch's own at the same offsets,
// and refuses one that archives less than the record. Until the new owner's anchor is in Tier 2 a reader still takes
// the older chain, which is why Archived does not advance in the new epoch
// before it. Tier 2 pruning (tier2prune.go) works within the Log's own
// epoch; older epochs' manifest objects stay until an operator removes
// them.
//
// # Archived position
//
// Archived reports how much of the stream a reader of Tier 2 alone would
// find: Position, the end of the chain's uploaded prefix (the anchor, or
// chunk 0 in epoch 0, then every chunk confirmed uploaded without a gap),
// and Through, the highest ext_id W such that every segment holding
// records through W has its UploadDone before Position. Segments count in
// id order: the first one not archived stops the count (the unsealed
// active segment always does), a deleted one and an abandoned one (not
// sealed, with a later segment opened after it) are passed. The owner may
// purge the ingest stream below W+1. ArchivedAdvanced is signalled when
// Archived moves.
//
// Chunks are otherwise uploaded only once sealed, so a chunk holding an
// UploadDone is sealed when that record is Options.ArchiveInterval old
// (default 1 s) and neither capacity nor RotationPeriod sealed it first:
// at most one chunk per interval is sealed for this, whatever the load.
package manifest
