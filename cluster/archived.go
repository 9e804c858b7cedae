package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrFenced is wrapped by UpdateArchived when archived.<stream> is not at
// the revision the caller read: another owner has written it since, so the
// caller is a zombie and must stop the partition.
var ErrFenced = errors.New("fenced: archived-through record changed by another owner")

// Archived is a stream's archived-through record: everything up to Through
// is in Tier 2 (segment object and the manifest chunk recording it), so the
// owner may purge AOF_INGEST up to it and a new owner resumes after it.
type Archived struct {
	Epoch   uint64 // epoch of the owner that wrote the record
	Through uint64 // last archived JetStream sequence (the record's ext_id)
	Offset  uint64 // next logical offset after Through
	// Manifest is where the manifest stands after the last archived record.
	Manifest  ManifestPosition
	UpdatedAt time.Time
}

// ManifestPosition names a manifest chunk and a byte offset in it, in the
// chain of Tier 2 objects of one epoch: the writer's epoch, or an earlier
// one while the writer's own chain has no anchor in Tier 2 yet.
type ManifestPosition struct {
	Epoch  uint64 `json:"epoch"`
	Chunk  uint64 `json:"chunk"`
	Offset uint64 `json:"offset"`
}

// archivedDoc is the value of archived.<stream>.
type archivedDoc struct {
	V         int              `json:"v"`
	Epoch     uint64           `json:"epoch"`
	Through   uint64           `json:"through"`
	Offset    uint64           `json:"offset"`
	Manifest  ManifestPosition `json:"manifest"`
	UpdatedAt time.Time        `json:"updated_at"`
}

func (d archivedDoc) archived() Archived {
	return Archived{Epoch: d.Epoch, Through: d.Through, Offset: d.Offset, Manifest: d.Manifest, UpdatedAt: d.UpdatedAt}
}

// GetArchived reads stream's record and its revision. A stream never
// archived reads as the zero Archived at revision 0.
func (b *Bucket) GetArchived(ctx context.Context, stream string) (Archived, uint64, error) {
	e, err := b.kv.Get(ctx, archivedKey(stream))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Archived{}, 0, nil
	}
	if err != nil {
		return Archived{}, 0, fmt.Errorf("read %s: %w", archivedKey(stream), err)
	}
	var doc archivedDoc
	if err := decode(e.Key(), e.Value(), &doc, &doc.V); err != nil {
		return Archived{}, 0, err
	}
	return doc.archived(), e.Revision(), nil
}

// UpdateArchived writes stream's record if it is still at rev (0: if it
// does not exist) and returns the new revision. Any other revision means
// another owner wrote it: the error wraps ErrFenced. A zero UpdatedAt is
// set to now.
func (b *Bucket) UpdateArchived(ctx context.Context, stream string, rev uint64, a Archived) (uint64, error) {
	if a.UpdatedAt.IsZero() {
		a.UpdatedAt = time.Now()
	}
	doc := archivedDoc{V: docVersion, Epoch: a.Epoch, Through: a.Through, Offset: a.Offset, Manifest: a.Manifest, UpdatedAt: a.UpdatedAt.UTC()}
	key := archivedKey(stream)
	var err error
	var next uint64
	if rev == 0 {
		next, err = b.kv.Create(ctx, key, encode(doc))
	} else {
		next, err = b.kv.Update(ctx, key, encode(doc), rev)
	}
	if isWrongLastSeq(err) {
		return 0, fmt.Errorf("update %s at revision %d: %w: %w", key, rev, ErrFenced, err)
	}
	if err != nil {
		return 0, fmt.Errorf("update %s at revision %d: %w", key, rev, err)
	}
	return next, nil
}

// ListArchived returns every stream's record.
func (b *Bucket) ListArchived(ctx context.Context) (map[string]Archived, error) {
	out := map[string]Archived{}
	err := b.each(ctx, "archived.*", func(e jetstream.KeyValueEntry) error {
		var doc archivedDoc
		if err := decode(e.Key(), e.Value(), &doc, &doc.V); err != nil {
			return err
		}
		out[strings.TrimPrefix(e.Key(), "archived.")] = doc.archived()
		return nil
	})
	return out, err
}

// each calls fn with the current value of every live key matching filter.
func (b *Bucket) each(ctx context.Context, filter string, fn func(jetstream.KeyValueEntry) error) error {
	w, err := b.kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("list %s: %w", filter, err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("list %s: watcher closed", filter)
			}
			if e == nil { // every current value has been delivered
				return nil
			}
			if err := fn(e); err != nil {
				return err
			}
		}
	}
}
