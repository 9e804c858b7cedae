package manifest

import (
	"errors"
	"fmt"
	"slices"
)

// Tier2Objects is what Tier 2 holds of one stream's manifest, per epoch:
// chunk indexes and snapshot ids.
type Tier2Objects struct {
	Chunks    map[uint64][]uint64
	Snapshots map[uint64][]uint64
}

// AddChunk records chunk index of epoch.
func (o *Tier2Objects) AddChunk(epoch, index uint64) {
	if o.Chunks == nil {
		o.Chunks = map[uint64][]uint64{}
	}
	o.Chunks[epoch] = append(o.Chunks[epoch], index)
}

// AddSnapshot records snapshot id of epoch.
func (o *Tier2Objects) AddSnapshot(epoch, id uint64) {
	if o.Snapshots == nil {
		o.Snapshots = map[uint64][]uint64{}
	}
	o.Snapshots[epoch] = append(o.Snapshots[epoch], id)
}

// Tier2Chain is the manifest history a reader of Tier 2 alone replays:
// Snapshot (nil: none, replay from chunk 0) then Chunks, all of Epoch.
type Tier2Chain struct {
	Epoch    uint64
	Snapshot *Snapshot
	// SnapshotData is the snapshot object's bytes.
	SnapshotData []byte
	// Chunks are the epoch's chunk indexes, ascending; the replay reads
	// those from the snapshot's chunk on (Open keeps older ones unread).
	Chunks []uint64
}

// SkippedSnapshot is a snapshot ChooseTier2Chain passed over, newest
// first.
type SkippedSnapshot struct {
	Epoch, ID uint64
	Reason    string
	Err       error
	// Position is the snapshot's position, when it decoded.
	Position Position
	// Stale is set for a snapshot that verifies but lies after every
	// chunk of its epoch: the chunk holding its position will never come
	// (the node that wrote it is gone).
	Stale bool
}

// ChooseTier2Chain picks the chain a reader of Tier 2 alone replays
// (the rule in "Epochs" in the package doc):
//
//  1. the highest epoch with a usable snapshot, using its newest one: a
//     snapshot that verifies and that the epoch's chunks continue
//     without a gap (SnapshotReplayable);
//  2. without one, the highest epoch whose chunks start at chunk 0,
//     replayed from there (the layout of a stream that never snapshotted);
//  3. failing that, the highest epoch with chunks: replaying it reports
//     the missing chunks rather than losing them in silence.
//
// load returns a snapshot object's bytes; an error wrapping
// ErrObjectCorrupt skips that snapshot, any other aborts.
func ChooseTier2Chain(o Tier2Objects, load func(epoch, id uint64) ([]byte, error)) (Tier2Chain, []SkippedSnapshot, error) {
	return chooseChain(o, load, nil)
}

// ChooseTier2ChainUpTo picks the chain of epoch that ends at upTo, the
// position of an archived-through record (Archived.Position, a chunk
// boundary): a takeover adopts exactly that prefix. Chunks from upTo on
// and snapshots past it are left out: whatever a zombie of that epoch
// wrote after the record is not adopted. Without a usable snapshot the
// chain starts at chunk 0, as ChooseTier2Chain's rule 2.
func ChooseTier2ChainUpTo(o Tier2Objects, epoch uint64, upTo Position, load func(epoch, id uint64) ([]byte, error)) (Tier2Chain, []SkippedSnapshot, error) {
	var cut Tier2Objects
	for _, c := range o.Chunks[epoch] {
		if c < upTo.Chunk || c == upTo.Chunk && upTo.Offset > ChunkHeaderSize {
			cut.AddChunk(epoch, c)
		}
	}
	for _, id := range o.Snapshots[epoch] {
		cut.AddSnapshot(epoch, id)
	}
	chain, skipped, err := chooseChain(cut, load, &upTo)
	chain.Epoch = epoch
	return chain, skipped, err
}

// ChooseTier2ChainOf picks the newest usable chain of epoch alone, by
// ChooseTier2Chain's rule. A takeover falls back to it when no chain of
// epoch reaches the record's position any more: a writer still at that
// epoch (a zombie, or a restarted node whose kept copy opened at its
// local epoch) snapshotted past the position and pruned what led to it.
// The records it archived after the position are that epoch's own, in
// the same order and at the same offsets, so its newer chain covers the
// record.
func ChooseTier2ChainOf(o Tier2Objects, epoch uint64, load func(epoch, id uint64) ([]byte, error)) (Tier2Chain, []SkippedSnapshot, error) {
	var only Tier2Objects
	for _, c := range o.Chunks[epoch] {
		only.AddChunk(epoch, c)
	}
	for _, id := range o.Snapshots[epoch] {
		only.AddSnapshot(epoch, id)
	}
	chain, skipped, err := chooseChain(only, load, nil)
	chain.Epoch = epoch
	return chain, skipped, err
}

// Reaches reports whether replaying the chain covers every manifest
// record before p: its snapshot lies at or after p, or the chunks run
// without a gap from the snapshot's position (no snapshot: chunk 0) to
// p. ChooseTier2ChainUpTo returns what is left of a pruned chain without
// an error; a takeover must not adopt that as the record's state.
func (c Tier2Chain) Reaches(p Position) bool {
	from := Position{Offset: ChunkHeaderSize}
	if c.Snapshot != nil {
		from = c.Snapshot.Position
	}
	if !from.Less(p) {
		return true
	}
	last := p.Chunk
	if p.Offset <= ChunkHeaderSize {
		if last == 0 {
			return true
		}
		last-- // p starts chunk p.Chunk: nothing of it is needed
	}
	for i := from.Chunk; i <= last; i++ {
		if !slices.Contains(c.Chunks, i) {
			return false
		}
	}
	return true
}

func chooseChain(o Tier2Objects, load func(epoch, id uint64) ([]byte, error), upTo *Position) (Tier2Chain, []SkippedSnapshot, error) {
	var skipped []SkippedSnapshot
	for _, e := range descendingKeys(o.Snapshots) {
		chunks := sorted(o.Chunks[e])
		snaps := sorted(o.Snapshots[e])
		for i := len(snaps) - 1; i >= 0; i-- {
			id := snaps[i]
			data, err := load(e, id)
			if err != nil && !errors.Is(err, ErrObjectCorrupt) {
				return Tier2Chain{}, skipped, fmt.Errorf("read snapshot %d of epoch %d: %w", id, e, err)
			}
			var s *Snapshot
			if err == nil {
				if s, err = DecodeSnapshot(data); err == nil && s.ID != id {
					err = fmt.Errorf("%w: id %d in object of snapshot %d", ErrSnapshot, s.ID, id)
				}
			}
			if err != nil {
				skipped = append(skipped, SkippedSnapshot{Epoch: e, ID: id, Reason: "does not verify", Err: err})
				continue
			}
			if upTo != nil && upTo.Less(s.Position) {
				skipped = append(skipped, SkippedSnapshot{Epoch: e, ID: id, Position: s.Position,
					Reason: "after the adopted position " + upTo.String()})
				continue
			}
			if !SnapshotReplayable(s.Position, chunks) {
				stale := len(chunks) == 0 || chunks[len(chunks)-1] < s.Position.Chunk
				skipped = append(skipped, SkippedSnapshot{Epoch: e, ID: id, Position: s.Position, Stale: stale,
					Reason: "the chunks after its position are not in Tier 2"})
				continue
			}
			return Tier2Chain{Epoch: e, Snapshot: s, SnapshotData: data, Chunks: chunks}, skipped, nil
		}
	}
	epochs := descendingKeys(o.Chunks)
	for _, e := range epochs {
		if chunks := sorted(o.Chunks[e]); chunks[0] == 0 {
			return Tier2Chain{Epoch: e, Chunks: chunks}, skipped, nil
		}
	}
	if len(epochs) > 0 {
		return Tier2Chain{Epoch: epochs[0], Chunks: sorted(o.Chunks[epochs[0]])}, skipped, nil
	}
	return Tier2Chain{}, skipped, nil
}

// SnapshotReplayable reports whether chunks (ascending) continue a
// snapshot at pos: they run from pos.Chunk without a gap, and hold
// pos.Chunk itself unless pos is that chunk's start.
func SnapshotReplayable(pos Position, chunks []uint64) bool {
	next := pos.Chunk
	for _, c := range chunks {
		if c < pos.Chunk {
			continue
		}
		if c != next {
			return false
		}
		next++
	}
	return next > pos.Chunk || pos.Offset <= ChunkHeaderSize
}

func descendingKeys(m map[uint64][]uint64) []uint64 {
	var out []uint64
	for k, v := range m {
		if len(v) > 0 {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	slices.Reverse(out)
	return out
}

func sorted(v []uint64) []uint64 {
	out := slices.Clone(v)
	slices.Sort(out)
	return slices.Compact(out)
}
