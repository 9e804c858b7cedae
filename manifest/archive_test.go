package manifest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

// bucketUploader puts manifest objects into a tier2.Bucket, as the store
// does.
type bucketUploader struct{ b *memory.Bucket }

func (u bucketUploader) PutObject(ctx context.Context, key string, data []byte, _ map[string]string) (string, error) {
	res, err := tier2.UploadBytes(ctx, u.b, key, data, tier2.ObjectMeta{})
	return res.ETag, err
}

func (u bucketUploader) ListObjects(ctx context.Context, prefix string) ([]string, error) {
	objs, err := tier2.List(ctx, u.b, prefix)
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = o.Key
	}
	return keys, err
}

func (u bucketUploader) GetObject(ctx context.Context, key string) ([]byte, error) {
	var buf bytes.Buffer
	_, err := u.b.Get(ctx, key, &buf)
	return buf.Bytes(), err
}

func (u bucketUploader) DeleteObject(ctx context.Context, key string) error {
	return u.b.Delete(ctx, key)
}

func archiveOpts(b *memory.Bucket, epoch uint64) Options {
	return Options{Uploader: bucketUploader{b}, Epoch: epoch, ArchiveInterval: 20 * time.Millisecond,
		RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond}
}

// sealedSegment is the records of segment id holding ext_ids first..last
// and logical offsets from base, sealed; uploaded adds its UploadDone.
func sealedSegment(stream string, epoch, id, base, first, last uint64, uploaded bool) []Record {
	key := tier2.SegmentKeyAt(stream, epoch, id)
	next := base + last - first + 1
	recs := []Record{
		{Type: SegmentOpened, Segment: id, LogicalOffset: base, Payload: SegmentOpenedPayload{BaseOffset: base}},
		{Type: SegmentBounds, Segment: id, LogicalOffset: next, Payload: SegmentBoundsPayload{FirstExtID: first, LastExtID: last}},
		{Type: SealSegment, Segment: id, LogicalOffset: next, Payload: SealSegmentPayload{ExtID: last}},
		{Type: UploadStarted, Segment: id, LogicalOffset: next, Payload: UploadStartedPayload{Key: key}},
	}
	if uploaded {
		recs = append(recs, uploadDone(stream, epoch, id, next))
	}
	return recs
}

func uploadDone(stream string, epoch, id, next uint64) Record {
	return Record{Type: UploadDone, Segment: id, LogicalOffset: next,
		Payload: UploadDonePayload{Key: tier2.SegmentKeyAt(stream, epoch, id), ETag: "e"}}
}

func signalled(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// The archived position moves only once the manifest chunk holding a
// segment's UploadDone is confirmed in Tier 2, and then covers exactly
// the ext_ids of the uploaded segments: not those of a sealed segment
// whose upload is not done.
func TestArchivedAdvancesOnlyOnceTheChunkWithTheUploadDoneIsInTier2(t *testing.T) {
	b := memory.New()
	var refused atomic.Int64
	b.FailPutsWhere(func(key string) error {
		if strings.HasPrefix(key, "manifest/") {
			refused.Add(1)
			return memory.ErrInjected
		}
		return nil
	})
	l := openLog(t, vfs.Default, t.TempDir(), archiveOpts(b, 0))
	defer l.Close()
	recs := sealedSegment("demo", 0, 1, 0, 11, 20, true)
	recs = append(recs, sealedSegment("demo", 0, 2, 10, 21, 30, false)...)
	recs = append(recs, Record{Type: SegmentOpened, Segment: 3, LogicalOffset: 20, Payload: SegmentOpenedPayload{BaseOffset: 20}})
	pos := appendCommit(t, l, recs...)

	eventually(t, "the chunk holding the UploadDone sealed and refused by Tier 2", func() bool {
		return refused.Load() >= 2 && l.Chunks()[0].Header.Sealed()
	})
	if a := l.Archived(); a.Through != 0 || a.Position.Chunk != 0 {
		t.Fatalf("archived %+v while the chunk with the UploadDone is not in Tier 2", a)
	}
	if signalled(l.ArchivedAdvanced()) {
		t.Fatal("ArchivedAdvanced signalled before anything was archived")
	}

	b.FailPutsWhere(nil)
	select {
	case <-l.ArchivedAdvanced():
	case <-time.After(10 * time.Second):
		t.Fatal("ArchivedAdvanced not signalled after the chunk was uploaded")
	}
	a := l.Archived()
	if a.Through != 20 || a.NextOffset != 10 {
		t.Fatalf("archived %+v, want through ext_id 20 (segment 1), next offset 10: segment 2 is not uploaded", a)
	}
	if !pos[4].Less(a.Position) {
		t.Fatalf("archived position %v does not cover the UploadDone at %v", a.Position, pos[4])
	}
	if _, ok := b.Bytes(ChunkKey("demo", 0)); !ok {
		t.Fatal("chunk 0 not in Tier 2 though Archived covers it")
	}

	appendCommit(t, l, uploadDone("demo", 0, 2, 20))
	eventually(t, "segment 2 archived", func() bool { return l.Archived().Through == 30 })
	if a := l.Archived(); a.NextOffset != 20 {
		t.Fatalf("archived %+v, want next offset 20", a)
	}
}

// A segment opened but never sealed, with a later segment after it, was
// abandoned (its records went with a failed owner or a lost disk): it does
// not hold Archived back. The unsealed newest segment does.
func TestArchivedPassesAnAbandonedSegmentButNotTheActiveOne(t *testing.T) {
	b := memory.New()
	l := openLog(t, vfs.Default, t.TempDir(), archiveOpts(b, 0))
	defer l.Close()
	recs := sealedSegment("demo", 0, 1, 0, 1, 5, true)
	recs = append(recs, Record{Type: SegmentOpened, Segment: 2, LogicalOffset: 5, Payload: SegmentOpenedPayload{BaseOffset: 5}})
	appendCommit(t, l, recs...)
	eventually(t, "segment 1 archived", func() bool { return l.Archived().Through == 5 })
	appendCommit(t, l, sealedSegment("demo", 0, 3, 5, 9, 12, true)...)
	eventually(t, "segment 3 archived past the abandoned segment 2", func() bool { return l.Archived().Through == 12 })
	appendCommit(t, l, Record{Type: SegmentOpened, Segment: 4, LogicalOffset: 9, Payload: SegmentOpenedPayload{BaseOffset: 9}},
		Record{Type: SegmentBounds, Segment: 4, Payload: SegmentBoundsPayload{FirstExtID: 13, LastExtID: 14}})
	time.Sleep(100 * time.Millisecond)
	if a := l.Archived(); a.Through != 12 || a.NextOffset != 9 {
		t.Fatalf("archived %+v with segment 4 still open, want through 12, next offset 9", a)
	}
}

// A chunk holding an UploadDone is sealed (and so uploaded) once that
// record is ArchiveInterval old; a chunk without one is left alone, and
// under a steady load the interval, not the record rate, bounds how many
// chunks this seals.
func TestArchiveIntervalSealsChunksHoldingAnUploadDoneAtMostOncePerInterval(t *testing.T) {
	b := memory.New()
	opts := archiveOpts(b, 0)
	opts.ArchiveInterval = 50 * time.Millisecond
	l := openLog(t, vfs.Default, t.TempDir(), opts)
	defer l.Close()
	custom := Record{Type: CustomEvent, Payload: CustomEventPayload{SchemaID: 1}}
	appendCommit(t, l, custom)
	time.Sleep(4 * opts.ArchiveInterval)
	if c := l.Chunks(); len(c) != 1 || c[0].Header.Sealed() {
		t.Fatalf("a chunk without an UploadDone was sealed: %+v", c)
	}

	appendCommit(t, l, sealedSegment("demo", 0, 1, 0, 1, 5, true)...)
	eventually(t, "the chunk with the UploadDone uploaded", func() bool {
		_, ok := b.Bytes(ChunkKey("demo", 0))
		return ok
	})

	const records = 300
	for i := range records {
		appendCommit(t, l, uploadDone("demo", 0, 1, 5), custom)
		if i%10 == 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if n := len(l.Chunks()); n < 2 || n > records/5 {
		t.Fatalf("%d chunks for %d UploadDone records under load, want a few (one per interval at most)", n, records)
	}
}

// A Log of epoch > 0 starts its epoch's chain with an anchor snapshot and
// writes every chunk and snapshot under its epoch; nothing goes to the
// layout without an epoch.
func TestLogOfAnEpochWritesItsChainUnderThatEpoch(t *testing.T) {
	b := memory.New()
	l := openLog(t, vfs.Default, t.TempDir(), archiveOpts(b, 4))
	defer l.Close()
	if l.Epoch() != 4 {
		t.Fatalf("Epoch() = %d", l.Epoch())
	}
	appendCommit(t, l, sealedSegment("demo", 4, 1, 0, 1, 5, true)...)
	eventually(t, "segment 1 archived under epoch 4", func() bool {
		a := l.Archived()
		return a.Through == 5 && a.Epoch == 4
	})
	keys := b.Keys()
	for _, k := range keys {
		pk, ok := tier2.ParseKey(k)
		if !ok || pk.Epoch != 4 {
			t.Fatalf("object %s is not under epoch 4 (all: %v)", k, keys)
		}
	}
	if _, ok := b.Bytes(SnapshotKeyAt("demo", 4, 1)); !ok {
		t.Fatalf("no anchor snapshot under epoch 4: %v", keys)
	}
}

// SetEpoch moves an open Log to a higher epoch: later uploads go under
// the new epoch, and Archived keeps the old epoch's state until the new
// epoch's anchor snapshot is in Tier 2 (before that, a reader of Tier 2
// follows the old chain, which does not hold the new chunks).
func TestSetEpochHoldsArchivedUntilTheNewEpochsAnchorIsInTier2(t *testing.T) {
	b := memory.New()
	l := openLog(t, vfs.Default, t.TempDir(), archiveOpts(b, 1))
	defer l.Close()
	appendCommit(t, l, sealedSegment("demo", 1, 1, 0, 1, 5, true)...)
	eventually(t, "segment 1 archived", func() bool { return l.Archived().Through == 5 })

	var refused atomic.Int64
	b.FailPutsWhere(func(key string) error {
		if strings.HasPrefix(key, "snapshots/demo/2/") {
			refused.Add(1)
			return memory.ErrInjected
		}
		return nil
	})
	if err := l.SetEpoch(2); err != nil {
		t.Fatal(err)
	}
	appendCommit(t, l, sealedSegment("demo", 2, 2, 5, 6, 9, true)...)
	eventually(t, "the chunk with segment 2's UploadDone sealed, the anchor refused", func() bool {
		c := l.Chunks()
		return refused.Load() >= 2 && c[len(c)-1].Header.Sealed()
	})
	if a := l.Archived(); a.Through != 5 || a.Epoch != 1 {
		t.Fatalf("archived %+v before epoch 2's anchor is in Tier 2, want epoch 1's through 5", a)
	}
	b.FailPutsWhere(nil)
	eventually(t, "segment 2 archived in epoch 2", func() bool {
		a := l.Archived()
		return a.Through == 9 && a.Epoch == 2
	})
	for _, e := range []uint64{1, 2} {
		if err := l.SetEpoch(e); err == nil {
			t.Fatalf("SetEpoch(%d) at epoch 2 succeeded; epochs only grow", e)
		}
	}
}

// After a disaster recovery the manifest still counts a segment lost from
// the bucket as uploaded, and the gateway stores its records again in a
// later segment, with ext_ids below those of the segments in between.
// Until that segment is archived, Archived stops below its first ext_id,
// though what was archived before an epoch change counted the lost one:
// an owner handing over must wait for the records stored again.
func TestRecordsStoredAgainHoldArchivedBackThoughAnEpochChangeCountedThem(t *testing.T) {
	b := memory.New()
	l := openLog(t, vfs.Default, t.TempDir(), archiveOpts(b, 1))
	defer l.Close()
	recs := sealedSegment("demo", 1, 1, 0, 1, 5, true)
	recs = append(recs, sealedSegment("demo", 1, 2, 5, 6, 9, true)...) // lost later
	recs = append(recs, sealedSegment("demo", 1, 3, 9, 10, 14, true)...)
	appendCommit(t, l, recs...)
	eventually(t, "segments 1 to 3 archived", func() bool { return l.Archived().Through == 14 })

	b.FailPutsWhere(func(key string) error {
		if strings.HasPrefix(key, "snapshots/demo/2/") {
			return memory.ErrInjected
		}
		return nil
	})
	if err := l.SetEpoch(2); err != nil {
		t.Fatal(err)
	}
	// Segment 4 stores segment 2's ext_ids again; sealed, not uploaded.
	appendCommit(t, l, sealedSegment("demo", 2, 4, 14, 6, 9, false)...)
	if a := l.Archived(); a.Through != 5 || a.Epoch != 1 {
		t.Fatalf("archived %+v before epoch 2's anchor is in Tier 2, want epoch 1's through 5", a)
	}
	b.FailPutsWhere(nil)
	eventually(t, "epoch 2's anchor in Tier 2", func() bool { return l.Archived().Epoch == 2 })
	if a := l.Archived(); a.Through != 5 {
		t.Fatalf("archived %+v while segment 4 is not uploaded, want through 5", a)
	}
	appendCommit(t, l, uploadDone("demo", 2, 4, 18))
	eventually(t, "segment 4 archived", func() bool { return l.Archived().Through == 14 })
}

// Fencing at the key level: two writers of epochs 1 and 2 that upload the
// same segment id and the same manifest chunk index write distinct
// objects, and each object keeps its own writer's bytes.
func TestWritersOfTwoEpochsNeverOverwriteEachOther(t *testing.T) {
	b := memory.New()
	ctx := context.Background()
	logs := map[uint64]*Log{}
	dirs := map[uint64]string{}
	for _, e := range []uint64{1, 2} {
		dirs[e] = t.TempDir()
		logs[e] = openLog(t, vfs.Default, dirs[e], archiveOpts(b, e))
		defer logs[e].Close()
		seg := []byte(fmt.Sprintf("segment 7 written by epoch %d", e))
		if _, err := tier2.UploadBytes(ctx, b, tier2.SegmentKeyAt("demo", e, 7), seg, tier2.ObjectMeta{}); err != nil {
			t.Fatal(err)
		}
		appendCommit(t, logs[e], sealedSegment("demo", e, 7, 0, 1, uint64(10*e), true)...)
	}
	for _, e := range []uint64{1, 2} {
		eventually(t, fmt.Sprintf("epoch %d's chunk 0 archived", e), func() bool { return logs[e].Archived().Through == 10*e })
	}
	for _, e := range []uint64{1, 2} {
		// The local header has since been marked uploaded; the records
		// are what the writer committed.
		got, ok := b.Bytes(ChunkKeyAt("demo", e, 0))
		want, err := vfs.ReadFile(vfs.Default, ChunkPath(dirs[e], 0))
		if err != nil || !ok || !bytes.Equal(got[ChunkHeaderSize:], want[ChunkHeaderSize:]) {
			t.Fatalf("epoch %d's chunk 0 in Tier 2 (present %v) is not its own (read err %v)", e, ok, err)
		}
		if other, _ := b.Bytes(ChunkKeyAt("demo", 3-e, 0)); bytes.Equal(got, other) {
			t.Fatal("the two epochs' chunk 0 objects are the same bytes")
		}
		seg, _ := b.Bytes(tier2.SegmentKeyAt("demo", e, 7))
		if string(seg) != fmt.Sprintf("segment 7 written by epoch %d", e) {
			t.Fatalf("epoch %d's segment 7 holds %q", e, seg)
		}
	}
}

// A reader of Tier 2 alone takes the highest epoch with a usable
// snapshot: a zombie's chunks under an older epoch are ignored; a corrupt
// or not yet continued snapshot of a newer epoch falls back; without any
// snapshot, the chain that starts at chunk 0.
func TestChooseTier2ChainTakesTheHighestEpochWithAUsableSnapshot(t *testing.T) {
	h := int64(ChunkHeaderSize)
	snap := func(id uint64, pos Position) []byte {
		s := Snapshot{ID: id, Position: pos, Index: NewIndex("demo")}
		return s.AppendBinary(nil)
	}
	type obj struct{ epoch, id uint64 }
	for _, tc := range []struct {
		name      string
		chunks    []obj
		snaps     map[obj][]byte // nil bytes: corrupt
		wantEpoch uint64
		wantSnap  uint64
		wantStale []obj
	}{
		{name: "layout before epochs, no snapshot",
			chunks: []obj{{0, 0}, {0, 1}, {0, 2}}, wantEpoch: 0},
		{name: "new owner's anchor wins over the zombie's extra chunks",
			chunks:    []obj{{1, 0}, {1, 1}, {1, 2}, {1, 3}, {2, 3}},
			snaps:     map[obj][]byte{{1, 1}: snap(1, Position{0, h}), {2, 2}: snap(2, Position{3, h})},
			wantEpoch: 2, wantSnap: 2},
		{name: "new epoch's anchor not yet uploaded",
			chunks:    []obj{{1, 0}, {1, 1}, {2, 2}},
			snaps:     map[obj][]byte{{1, 1}: snap(1, Position{0, h})},
			wantEpoch: 1, wantSnap: 1},
		{name: "corrupt newest snapshot falls back to the older epoch",
			chunks:    []obj{{1, 0}, {1, 1}, {2, 2}},
			snaps:     map[obj][]byte{{1, 1}: snap(1, Position{0, h}), {2, 2}: nil},
			wantEpoch: 1, wantSnap: 1},
		{name: "snapshot ahead of its epoch's chunks is stale",
			chunks: []obj{{1, 0}, {1, 1}, {2, 2}},
			snaps: map[obj][]byte{{1, 1}: snap(1, Position{0, h}), {2, 2}: snap(2, Position{2, h}),
				{2, 3}: snap(3, Position{4, h + 50})},
			wantEpoch: 2, wantSnap: 2, wantStale: []obj{{2, 3}}},
		{name: "no snapshot: the chain from chunk 0, not a stray newer chunk",
			chunks: []obj{{0, 0}, {0, 1}, {3, 7}}, wantEpoch: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o Tier2Objects
			for _, c := range tc.chunks {
				o.AddChunk(c.epoch, c.id)
			}
			for s := range tc.snaps {
				o.AddSnapshot(s.epoch, s.id)
			}
			load := func(epoch, id uint64) ([]byte, error) {
				data := tc.snaps[obj{epoch, id}]
				if data == nil {
					return nil, fmt.Errorf("%w: crc", ErrObjectCorrupt)
				}
				return data, nil
			}
			chain, skipped, err := ChooseTier2Chain(o, load)
			if err != nil {
				t.Fatal(err)
			}
			var gotSnap uint64
			if chain.Snapshot != nil {
				gotSnap = chain.Snapshot.ID
			}
			if chain.Epoch != tc.wantEpoch || gotSnap != tc.wantSnap {
				t.Fatalf("chain epoch %d snapshot %d, want epoch %d snapshot %d", chain.Epoch, gotSnap, tc.wantEpoch, tc.wantSnap)
			}
			for _, c := range chain.Chunks {
				found := false
				for _, w := range tc.chunks {
					found = found || w == obj{chain.Epoch, c}
				}
				if !found {
					t.Fatalf("chain chunk %d is not one of epoch %d's", c, chain.Epoch)
				}
			}
			var stale []obj
			for _, s := range skipped {
				if s.Stale {
					stale = append(stale, obj{s.Epoch, s.ID})
				}
			}
			if fmt.Sprint(stale) != fmt.Sprint(tc.wantStale) {
				t.Fatalf("stale snapshots %v, want %v", stale, tc.wantStale)
			}
		})
	}
	down := errors.New("503")
	var o Tier2Objects
	o.AddSnapshot(1, 1)
	if _, _, err := ChooseTier2Chain(o, func(uint64, uint64) ([]byte, error) { return nil, down }); !errors.Is(err, down) {
		t.Fatalf("a failed read: %v, want it returned", err)
	}
}

// A takeover adopts the recorded prefix of the old owner's chain and
// nothing after it: chunks from the recorded position on and a snapshot
// past it (a zombie's) are left out.
func TestChooseTier2ChainUpToLeavesOutWhatFollowsTheRecordedPosition(t *testing.T) {
	h := int64(ChunkHeaderSize)
	snaps := map[uint64]Snapshot{1: {ID: 1, Position: Position{0, h}}, 2: {ID: 2, Position: Position{4, h}}}
	var o Tier2Objects
	for c := uint64(0); c < 6; c++ {
		o.AddChunk(1, c)
	}
	o.AddChunk(2, 0) // another epoch's: never adopted for epoch 1
	for id := range snaps {
		o.AddSnapshot(1, id)
	}
	load := func(epoch, id uint64) ([]byte, error) {
		s := snaps[id]
		s.Index = NewIndex("demo")
		return s.AppendBinary(nil), nil
	}
	chain, skipped, err := ChooseTier2ChainUpTo(o, 1, Position{3, h}, load)
	if err != nil {
		t.Fatal(err)
	}
	if chain.Epoch != 1 || chain.Snapshot == nil || chain.Snapshot.ID != 1 || fmt.Sprint(chain.Chunks) != "[0 1 2]" {
		t.Fatalf("adopted epoch %d snapshot %+v chunks %v, want epoch 1, snapshot 1, chunks [0 1 2]", chain.Epoch, chain.Snapshot, chain.Chunks)
	}
	if len(skipped) != 1 || skipped[0].ID != 2 || skipped[0].Stale {
		t.Fatalf("skipped %+v, want snapshot 2 (after the position), not stale", skipped)
	}
}

// An anchor outnumbered by newer snapshots before it reached Tier 2 (its
// file removed locally) is written again at the tail, so the epoch's
// chain still starts with a snapshot and Archived moves on.
func TestAnchorLostBeforeUploadIsWrittenAgain(t *testing.T) {
	b := memory.New()
	var refused atomic.Int64
	b.FailPutsWhere(func(key string) error {
		if strings.HasPrefix(key, "snapshots/") {
			refused.Add(1)
			return memory.ErrInjected
		}
		return nil
	})
	l := openLog(t, vfs.Default, t.TempDir(), archiveOpts(b, 5))
	defer l.Close()
	eventually(t, "the anchor refused", func() bool { return refused.Load() > 0 })
	for range 2 {
		if _, err := l.Snapshot(); err != nil {
			t.Fatal(err)
		}
	}
	appendCommit(t, l, sealedSegment("demo", 5, 1, 0, 1, 4, true)...)
	b.FailPutsWhere(nil)
	eventually(t, "segment 1 archived under a new anchor", func() bool {
		a := l.Archived()
		return a.Through == 4 && a.Epoch == 5
	})
	if _, ok := b.Bytes(SnapshotKeyAt("demo", 5, 1)); ok {
		t.Fatal("the lost anchor was uploaded")
	}
}

// The local copy remembers its epoch: a reopen without one goes on under
// it, an older epoch is refused (a zombie must not add to a newer copy),
// a newer one moves it on. A manifest that never had one is at epoch 0.
func TestTheLocalCopyKeepsItsEpoch(t *testing.T) {
	b := memory.New()
	dir := t.TempDir()
	if _, ok, err := LocalEpoch(vfs.Default, dir); ok || err != nil {
		t.Fatalf("LocalEpoch of an empty dir: ok %v, %v", ok, err)
	}
	l := openLog(t, vfs.Default, dir, archiveOpts(b, 3))
	l.Close()
	if e, ok, err := LocalEpoch(vfs.Default, dir); e != 3 || !ok || err != nil {
		t.Fatalf("LocalEpoch = %d %v %v, want 3", e, ok, err)
	}
	l = openLog(t, vfs.Default, dir, archiveOpts(b, 0))
	if l.Epoch() != 3 {
		t.Fatalf("reopened without an epoch at %d, want the local copy's 3", l.Epoch())
	}
	l.Close()
	if _, err := Open(vfs.Default, dir, "demo", archiveOpts(b, 2)); !errors.Is(err, ErrEpochBehind) {
		t.Fatalf("open at epoch 2 over a copy at 3: %v, want ErrEpochBehind", err)
	}
	l = openLog(t, vfs.Default, dir, archiveOpts(b, 4))
	if err := l.SetEpoch(4); !errors.Is(err, ErrEpochBehind) {
		t.Fatalf("SetEpoch(4) at 4: %v, want ErrEpochBehind", err)
	}
	l.Close()
	if e, _, _ := LocalEpoch(vfs.Default, dir); e != 4 {
		t.Fatalf("LocalEpoch = %d after opening at 4", e)
	}
	plain := t.TempDir()
	l = openLog(t, vfs.Default, plain, Options{})
	l.Close()
	if _, ok, _ := LocalEpoch(vfs.Default, plain); ok {
		t.Fatal("a manifest opened at epoch 0 recorded an epoch")
	}
}

// A SetEpoch whose anchor cannot be written leaves the Log in the new
// epoch without an anchor, never with the old epoch's: nothing counts as
// archived in the new epoch until an anchor of it is in Tier 2.
func TestSetEpochWhoseAnchorFailsArchivesNothingUntilAnAnchorIsInTier2(t *testing.T) {
	b := memory.New()
	ffs := vfs.NewFaultFS(nil)
	l := openLog(t, ffs, t.TempDir(), archiveOpts(b, 1))
	defer l.Close()
	appendCommit(t, l, sealedSegment("demo", 1, 1, 0, 1, 5, true)...)
	eventually(t, "segment 1 archived", func() bool { return l.Archived().Through == 5 })
	ffs.Inject(vfs.Fault{Op: vfs.OpWrite, Times: 1, Err: vfs.ENOSPC,
		Match: func(n string) bool { return strings.Contains(n, snapshotPrefix) }})
	if err := l.SetEpoch(2); err == nil {
		t.Fatal("SetEpoch succeeded though its anchor could not be written")
	}
	appendCommit(t, l, sealedSegment("demo", 2, 2, 5, 6, 9, true)...)
	eventually(t, "segment 2 archived in epoch 2", func() bool {
		a := l.Archived()
		if a.Epoch != 2 {
			return false
		}
		for _, k := range b.Keys() {
			if strings.HasPrefix(k, "snapshots/demo/2/") {
				return a.Through == 9
			}
		}
		t.Fatalf("archived %+v in epoch 2 with no snapshot of epoch 2 in Tier 2", a)
		return false
	})
}

// A handover does not wait for the archive interval: ArchiveNow seals
// the chunk holding an UploadDone at once, and Archived advances as soon
// as Tier 2 has it.
func TestArchiveNowSealsTheChunkHoldingAnUploadDoneWithoutWaiting(t *testing.T) {
	b := memory.New()
	opts := archiveOpts(b, 0)
	opts.ArchiveInterval = time.Hour
	l := openLog(t, vfs.Default, t.TempDir(), opts)
	defer l.Close()
	if err := l.ArchiveNow(); err != nil {
		t.Fatalf("ArchiveNow with nothing to archive: %v", err)
	}
	appendCommit(t, l, sealedSegment("demo", 0, 1, 0, 11, 20, true)...)
	time.Sleep(50 * time.Millisecond)
	if a := l.Archived(); a.Through != 0 {
		t.Fatalf("archived %+v before ArchiveNow with an hour's interval", a)
	}
	if err := l.ArchiveNow(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "segment 1 archived", func() bool { return l.Archived().Through == 20 })
}
