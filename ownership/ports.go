package ownership

import (
	"context"
	"errors"
)

// ErrFenced is what Records.Update returns when the record moved since
// it was read: another owner wrote it, so this one must stop.
var ErrFenced = errors.New("ownership: fenced: the archived record was written by another owner")

// Record is a stream's archived-through record in the cluster bucket.
type Record struct {
	// Epoch is the epoch of the owner that wrote the record last: a
	// takeover writes its own before it does anything else.
	Epoch uint64
	// Through is the highest JetStream sequence whose record is archived:
	// its segment and the manifest chunk recording the upload are both
	// confirmed in Tier 2. AOF_INGEST may drop the stream's messages up
	// to it.
	Through uint64
	// NextOffset is the logical offset after the last archived record.
	NextOffset uint64
	// Manifest is where the archived manifest ends in Tier 2.
	Manifest ManifestPosition
}

// ManifestPosition is the end of the archived manifest of a stream: the
// epoch whose chain holds it, and the chunk and byte offset in it.
type ManifestPosition struct {
	Epoch  uint64
	Chunk  uint64
	Offset int64
}

// Archived is what a store has archived of one stream.
type Archived struct {
	Through    uint64
	NextOffset uint64
	Manifest   ManifestPosition
}

// Records reads and writes archived-through records.
type Records interface {
	// Get returns the record of stream and its revision; 0 when absent.
	Get(ctx context.Context, stream string) (Record, uint64, error)
	// Update writes r if the record is still at rev (0: absent), and
	// returns ErrFenced (wrapped) if it is not.
	Update(ctx context.Context, stream string, rev uint64, r Record) (uint64, error)
	// List returns every stream that has a record.
	List(ctx context.Context) ([]string, error)
}

// Store is what the partitions need of the tiered store.
type Store interface {
	// Streams names the streams the store holds.
	Streams() []string
	// LocalEpoch is the epoch the local copy of stream was written under,
	// and false when there is no local copy.
	LocalEpoch(stream string) (uint64, bool)
	// Adopt replaces the local copy of stream with what Tier 2 holds
	// through r, and continues it under epoch.
	Adopt(ctx context.Context, stream string, r Record, epoch uint64) error
	// SetEpoch makes stream's later Tier 2 writes carry epoch.
	SetEpoch(stream string, epoch uint64) error
	// Archived returns what Tier 2 holds of stream.
	Archived(stream string) (Archived, error)
	// ArchiveNow hurries the manifest record of stream's latest upload
	// to Tier 2, for a handover.
	ArchiveNow(stream string) error
	// LastExtID is the highest JetStream sequence stream holds.
	LastExtID(stream string) (uint64, error)
	// NextOffset is the offset stream's next record gets.
	NextOffset(stream string) (uint64, error)
	// Seal seals stream's active segment, if it holds records.
	Seal(ctx context.Context, stream string, force bool) (uint64, error)
}

// Ingest feeds partitions from AOF_INGEST.
type Ingest interface {
	// Run stores the partition's messages until ctx ends, starting at
	// the first message AOF_INGEST still holds for it. It acks only while
	// mayAck says the lease is still held: acks go to the consumer the
	// next owner pulls.
	Run(ctx context.Context, partition int, mayAck func() bool) error
	// Purge drops stream's messages up to through from AOF_INGEST.
	Purge(ctx context.Context, stream string, through uint64) error
}

// Lease is the part of a partition lease the partition needs.
type Lease interface {
	Partition() int
	Epoch() uint64
	// Valid reports whether the lease is still held by this gateway as
	// far as its own clock can tell: false from the moment its last
	// renewal might have expired on the server.
	Valid() bool
}
