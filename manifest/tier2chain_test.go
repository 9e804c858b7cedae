package manifest

import "testing"

// A chain pruned behind a snapshot past the record's position leaves
// ChooseTier2ChainUpTo nothing that reaches the position: Reaches says
// so, and ChooseTier2ChainOf finds the epoch's newer chain, which does.
func TestTier2ChainReachesTellsAPrunedChainFromOneThatCoversThePosition(t *testing.T) {
	h := int64(ChunkHeaderSize)
	snaps := map[uint64][]byte{}
	snap := func(id uint64, pos Position) {
		s := Snapshot{ID: id, Position: pos, Index: NewIndex("demo")}
		snaps[id] = s.AppendBinary(nil)
	}
	load := func(_, id uint64) ([]byte, error) { return snaps[id], nil }
	upTo := Position{Chunk: 3, Offset: h}

	// The writer of epoch 1 snapshotted at chunk 6 and pruned every chunk
	// and snapshot the record's position needed.
	var o Tier2Objects
	for _, c := range []uint64{5, 6, 7} {
		o.AddChunk(1, c)
	}
	snap(9, Position{Chunk: 5, Offset: h})
	snap(10, Position{Chunk: 6, Offset: h})
	o.AddSnapshot(1, 9)
	o.AddSnapshot(1, 10)
	o.AddChunk(2, 8) // another epoch's: not the record's chain

	cut, _, err := ChooseTier2ChainUpTo(o, 1, upTo, load)
	if err != nil {
		t.Fatal(err)
	}
	if cut.Reaches(upTo) {
		t.Fatalf("chain %+v of a pruned epoch reaches %v", cut, upTo)
	}
	newer, _, err := ChooseTier2ChainOf(o, 1, load)
	if err != nil {
		t.Fatal(err)
	}
	if newer.Epoch != 1 || newer.Snapshot == nil || newer.Snapshot.ID != 10 || !newer.Reaches(upTo) {
		t.Fatalf("newest chain of epoch 1: %+v, want snapshot 10 reaching %v", newer, upTo)
	}

	for _, tc := range []struct {
		name   string
		chain  Tier2Chain
		reach  bool
		target Position
	}{
		{"from chunk 0 without a gap", Tier2Chain{Chunks: []uint64{0, 1, 2}}, true, upTo},
		{"from chunk 0 with a gap", Tier2Chain{Chunks: []uint64{0, 2}}, false, upTo},
		{"not from chunk 0", Tier2Chain{Chunks: []uint64{1, 2}}, false, upTo},
		{"snapshot then chunks to the position", Tier2Chain{Snapshot: &Snapshot{Position: Position{1, h + 10}}, Chunks: []uint64{1, 2}}, true, upTo},
		{"snapshot, its own chunk missing", Tier2Chain{Snapshot: &Snapshot{Position: Position{1, h + 10}}, Chunks: []uint64{2}}, false, upTo},
		{"into the position's chunk", Tier2Chain{Chunks: []uint64{0, 1, 2}}, false, Position{3, h + 10}},
		{"empty stream", Tier2Chain{}, true, Position{0, h}},
	} {
		if got := tc.chain.Reaches(tc.target); got != tc.reach {
			t.Errorf("%s: reaches %v = %v, want %v", tc.name, tc.target, got, tc.reach)
		}
	}
}
