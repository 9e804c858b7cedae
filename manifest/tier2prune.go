package manifest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ObjectPruner is implemented by an Uploader that can also list, read and
// delete Tier 2 objects. With one, the Log deletes the manifest chunks and
// snapshots in Tier 2 that the newest uploaded snapshot makes unnecessary;
// without one the bucket keeps every manifest object.
type ObjectPruner interface {
	// ListObjects returns the keys under prefix.
	ListObjects(ctx context.Context, prefix string) ([]string, error)
	// GetObject returns the object's bytes; an object whose bytes fail
	// its checksum is an error wrapping ErrObjectCorrupt.
	GetObject(ctx context.Context, key string) ([]byte, error)
	// DeleteObject removes the object; a missing object is no error.
	DeleteObject(ctx context.Context, key string) error
}

// Tier 2 manifest retention.
//
// Recovery from Tier 2 (tiers.RecoverFromTier2) loads the newest snapshot
// that verifies and whose chunks follow it without a gap, then replays the
// chunks from its position. After a snapshot A is uploaded and complete
// (the chunk holding its position is uploaded too, or A starts a chunk),
// Tier 2 keeps:
//
//   - every snapshot from F on, where F is the newest snapshot older than A
//     in the bucket: F is the fallback if A fails to verify, and snapshots
//     newer than A may still wait for their chunk;
//   - every chunk from F's position on, which F and A need.
//
// Older snapshots and chunks are deleted. F must verify first (a corrupt F
// is no fallback): otherwise nothing is pruned until the next snapshot,
// whose fallback is A. With no snapshot older than A nothing is pruned.
// Deletions are logged (manifest_tier2_pruned) and counted
// (manifest_tier2_objects_pruned); they are not manifest records, which
// describe segments.

// ErrObjectCorrupt is wrapped by ObjectPruner.GetObject errors for an
// object that fails its checksum.
var ErrObjectCorrupt = errors.New("manifest: tier 2 object fails its checksum")

// pruneError is a failed prune, logged apart from upload failures.
type pruneError struct {
	anchor uint64
	err    error
}

func (e *pruneError) Error() string {
	return fmt.Sprintf("prune tier 2 manifest objects behind snapshot %d: %v", e.anchor, e.err)
}

func (e *pruneError) Unwrap() error { return e.err }

// Tier2PrunePlan returns the chunks and snapshots to delete from Tier 2
// given the chunk indexes and snapshot ids there (ascending) and the
// fallback snapshot: its id and the chunk of its position. It is the pure
// part of pruning, shared with tests.
func Tier2PrunePlan(chunks, snaps []uint64, fallbackID, fallbackChunk uint64) (dropChunks, dropSnaps []uint64) {
	for _, c := range chunks {
		if c < fallbackChunk {
			dropChunks = append(dropChunks, c)
		}
	}
	for _, id := range snaps {
		if id < fallbackID {
			dropSnaps = append(dropSnaps, id)
		}
	}
	return dropChunks, dropSnaps
}

// pruneTier2 prunes Tier 2 once per complete uploaded snapshot.
func (l *Log) pruneTier2(ctx context.Context) error {
	p, ok := l.opts.Uploader.(ObjectPruner)
	if !ok {
		return nil
	}
	l.mu.Lock()
	anchor, up, done, epoch := l.snap, l.snapUp, l.prunedAt, l.epoch
	complete := anchor.Position.Offset <= ChunkHeaderSize
	for _, c := range l.chunks {
		if c.hdr.Index == anchor.Position.Chunk && c.hdr.Uploaded() {
			complete = true
		}
	}
	l.mu.Unlock()
	if anchor.ID == 0 || !up || !complete || done == anchor.ID {
		return nil
	}
	if err := l.pruneBehind(ctx, p, epoch, anchor.ID); err != nil {
		return &pruneError{anchor: anchor.ID, err: err}
	}
	l.mu.Lock()
	l.prunedAt = anchor.ID
	l.mu.Unlock()
	return nil
}

// pruneBehind prunes within the current epoch's objects only: older
// epochs' chains are left as they are (see "Epochs" in the package doc).
func (l *Log) pruneBehind(ctx context.Context, p ObjectPruner, epoch, anchor uint64) error {
	chunks, err := listNumbered(ctx, p, epochPrefix("manifest/", l.stream, epoch), chunkExt)
	if err != nil {
		return err
	}
	snaps, err := listNumbered(ctx, p, epochPrefix("snapshots/", l.stream, epoch), snapshotExt)
	if err != nil {
		return err
	}
	var fallback uint64
	found := false
	for _, id := range snaps {
		found = found || id == anchor
		if id < anchor {
			fallback = id
		}
	}
	if !found || fallback == 0 {
		return nil // the anchor is not listed, or nothing older: keep all
	}
	fs, err := l.readSnapshot(ctx, p, epoch, fallback)
	if err != nil {
		if errors.Is(err, ErrSnapshot) || errors.Is(err, ErrObjectCorrupt) {
			l.log.Warn("manifest_tier2_prune_skipped", "snapshot", anchor, "fallback", fallback,
				"note", "the fallback snapshot does not verify; pruning waits for the next snapshot", "err", err)
			return nil
		}
		return err
	}
	dropChunks, dropSnaps := Tier2PrunePlan(chunks, snaps, fs.ID, fs.Position.Chunk)
	deleted := 0
	defer func() {
		if deleted > 0 {
			l.opts.Instruments.AddManifestTier2Pruned(context.Background(), int64(deleted))
		}
	}()
	// Every object deleted is older than what F and A need, so a prune
	// cut short at any point leaves a bucket that still recovers.
	for _, id := range dropSnaps {
		if err := p.DeleteObject(ctx, SnapshotKeyAt(l.stream, epoch, id)); err != nil {
			return fmt.Errorf("delete snapshot %d: %w", id, err)
		}
		deleted++
	}
	for _, c := range dropChunks {
		if err := p.DeleteObject(ctx, ChunkKeyAt(l.stream, epoch, c)); err != nil {
			return fmt.Errorf("delete chunk %d: %w", c, err)
		}
		deleted++
	}
	if deleted > 0 {
		l.log.Info("manifest_tier2_pruned", "snapshot", anchor, "fallback_snapshot", fs.ID,
			"kept_from_chunk", fs.Position.Chunk, "chunks_deleted", len(dropChunks), "snapshots_deleted", len(dropSnaps),
			"chunks_kept", len(chunks)-len(dropChunks), "snapshots_kept", len(snaps)-len(dropSnaps))
	}
	return nil
}

// readSnapshot downloads and verifies snapshot id. It is the object in
// Tier 2 that recovery falls back to, so that object is checked, not the
// local file it was uploaded from.
func (l *Log) readSnapshot(ctx context.Context, p ObjectPruner, epoch, id uint64) (*Snapshot, error) {
	data, err := p.GetObject(ctx, SnapshotKeyAt(l.stream, epoch, id))
	if err != nil {
		return nil, fmt.Errorf("read snapshot %d: %w", id, err)
	}
	s, err := DecodeSnapshot(data)
	if err != nil {
		return nil, err
	}
	if s.ID != id {
		return nil, fmt.Errorf("%w: id %d in object of snapshot %d", ErrSnapshot, s.ID, id)
	}
	return s, nil
}

// listNumbered lists <prefix><n><ext> keys as ascending n.
func listNumbered(ctx context.Context, p ObjectPruner, prefix, ext string) ([]uint64, error) {
	keys, err := p.ListObjects(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	var out []uint64
	for _, k := range keys {
		num, ok := strings.CutSuffix(strings.TrimPrefix(k, prefix), ext)
		if !ok || strings.Contains(num, "/") {
			continue
		}
		if n, err := strconv.ParseUint(num, 10, 64); err == nil {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}
