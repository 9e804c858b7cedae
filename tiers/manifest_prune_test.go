package tiers

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

// bucketNumbers lists the numbered objects <prefix><n><ext>, ascending.
func bucketNumbers(c tier2.Bucket, prefix, ext string) ([]uint64, error) {
	objs, err := tier2.List(context.Background(), c, prefix)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, o := range objs {
		num, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, prefix), ext)
		if n, err := strconv.ParseUint(num, 10, 64); ok && err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// corruptMemoryObject damages a byte in the middle of an object and keeps
// its metadata, so reading it fails its crc64.
func corruptMemoryObject(t *testing.T, b *memory.Bucket, key string) {
	t.Helper()
	data, _ := b.Bytes(key)
	if !b.Corrupt(key, int64(len(data)/2)) {
		t.Fatalf("corrupt %s: no such object", key)
	}
}

// syncBuffer is a log sink tests read while the store writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// snapshotRounds appends 40 records from offset from, seals and snapshots
// stream, rounds times. Each
// snapshot's marker lands after the rotation period, so it seals the chunk
// holding the snapshot's position and the snapshot becomes complete in
// Tier 2. It waits after each round until Tier 2 holds exactly the newest
// two snapshots (one after the first round).
func snapshotRounds(t *testing.T, s *Store, c tier2.Bucket, stream string, from, rounds int) uint64 {
	t.Helper()
	var id uint64
	for round := 0; round < rounds; round++ {
		appendN(t, s, stream, from+round*40, 40)
		if _, err := s.Seal(testCtx(t), stream, false); err != nil {
			t.Fatal(err)
		}
		waitUploaded(t, s, stream)
		time.Sleep(pruneRotation + 10*time.Millisecond)
		var err error
		if id, err = s.Snapshot(stream); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprint([]uint64{id})
		if id > 1 {
			want = fmt.Sprint([]uint64{id - 1, id})
		}
		waitFor(t, "tier 2 snapshots "+want, func() bool {
			snaps, err := bucketNumbers(c, "snapshots/"+stream+"/", ".bin")
			return err == nil && fmt.Sprint(snaps) == want
		})
	}
	return id
}

// pruneRotation is the manifest.rotation_period of pruneStore: long
// enough that two snapshots taken back to back share an open chunk.
const pruneRotation = 200 * time.Millisecond

// pruneStore opens a store whose manifest rotates chunks every
// pruneRotation, and only then: sealing a chunk for the archive interval
// (tested on its own) would cut chunks at times a loaded machine makes
// unpredictable.
func pruneStore(t *testing.T, root string, c tier2.Bucket, log *syncBuffer) *Store {
	return openStore(t, Options{Root: root, SegmentTargetBytes: 4 << 10, Tier2: c,
		ManifestRotationPeriod: pruneRotation, ManifestArchiveInterval: -1,
		Logger: slog.New(slog.NewTextHandler(log, nil))})
}

// After many snapshots Tier 2 holds a bounded set of manifest objects: the
// newest snapshot, the one before it (the fallback) and the chunks from
// the fallback's position on, without a gap. Older chunks and snapshots are
// deleted, and each prune is logged.
func TestTier2ManifestObjectsArePrunedBehindSnapshots(t *testing.T) {
	c := memory.New()
	var log syncBuffer
	s := pruneStore(t, t.TempDir(), c, &log)
	defer s.Close()
	const stream = "pruned"
	newest := snapshotRounds(t, s, c, stream, 0, 8)

	var fallback bytes.Buffer
	if _, err := c.Get(testCtx(t), manifest.SnapshotKey(stream, newest-1), &fallback); err != nil {
		t.Fatal(err)
	}
	fs, err := manifest.DecodeSnapshot(fallback.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var chunks []uint64
	waitFor(t, "the chunks before the fallback snapshot's position deleted", func() bool {
		chunks, err = bucketNumbers(c, "manifest/"+stream+"/", ".mlog")
		return err == nil && len(chunks) > 0 && chunks[0] == fs.Position.Chunk
	})
	for i, ch := range chunks {
		if ch != fs.Position.Chunk+uint64(i) {
			t.Fatalf("tier 2 chunks %v: a gap after the fallback's chunk %d", chunks, fs.Position.Chunk)
		}
	}
	written := chunks[len(chunks)-1] + 1
	if written < 8 || uint64(len(chunks)) > written/2 {
		t.Fatalf("tier 2 keeps %d of %d manifest chunks (%v), want a bounded tail", len(chunks), written, chunks)
	}
	if n := strings.Count(log.String(), "msg=manifest_tier2_pruned"); n < 6 {
		t.Fatalf("%d manifest_tier2_pruned log events for 8 snapshots, want one per prune", n)
	}
}

// Disaster recovery from a pruned bucket rebuilds the same segment index
// as the live manifest had: from the newest snapshot; from the fallback
// snapshot plus the chunks after it when the newest snapshot object is
// corrupt; and from the one before when the newest snapshot was uploaded
// before the chunk holding its position was sealed (that chunk never
// reached Tier 2).
func TestDisasterRecoveryAfterTier2PruningRebuildsTheSameIndex(t *testing.T) {
	for _, damage := range []string{"none", "newest_snapshot_corrupt", "newest_snapshot_ahead_of_chunks"} {
		t.Run(damage, func(t *testing.T) { recoverPrunedBucket(t, damage) })
	}
}

func recoverPrunedBucket(t *testing.T, damage string) {
	c := memory.New()
	var log syncBuffer
	s := pruneStore(t, t.TempDir(), c, &log)
	const stream = "rebuilt"
	newest := snapshotRounds(t, s, c, stream, 0, 6)
	if damage == "newest_snapshot_ahead_of_chunks" {
		// The first marker seals the old chunk and opens a new one; the
		// second snapshot's position lies in that open chunk, which no
		// rotation seals before the disaster.
		for range 2 {
			var err error
			if newest, err = s.Snapshot(stream); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "the newest snapshot in tier 2", func() bool {
			snaps, err := bucketNumbers(c, "snapshots/"+stream+"/", ".bin")
			return err == nil && len(snaps) > 0 && snaps[len(snaps)-1] == newest
		})
	}
	idx, err := s.ManifestIndex(stream)
	if err != nil {
		t.Fatal(err)
	}
	want := idx.Segments()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if chunks, _ := bucketNumbers(c, "manifest/"+stream+"/", ".mlog"); len(chunks) == 0 || chunks[0] == 0 {
		t.Fatalf("tier 2 chunks %v: nothing was pruned", chunks)
	}
	if damage == "newest_snapshot_corrupt" {
		corruptMemoryObject(t, c, manifest.SnapshotKey(stream, newest))
	}

	root := t.TempDir()
	var rlog syncBuffer
	rep, err := RecoverFromTier2(testCtx(t), RecoverOptions{Root: root, Tier2: c,
		Logger: slog.New(slog.NewTextHandler(&rlog, nil))})
	if err != nil {
		t.Fatalf("recover from a pruned bucket: %v", err)
	}
	if len(rep.Streams) != 1 || len(rep.Streams[0].NotInTier2) != 0 || len(rep.Streams[0].Holes) != 0 {
		t.Fatalf("recovery report: %+v, want nothing lost", rep)
	}
	man, err := manifest.Open(vfs.Default, filepath.Join(root, "manifest", stream), stream, manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := man.Index().Segments()
	man.Close()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("recovered index differs from the live one:\n got %+v\nwant %+v", got, want)
	}
	if skipped := strings.Contains(rlog.String(), "msg=stream_recovery_snapshot_skipped"); skipped != (damage != "none") {
		t.Fatalf("snapshot skipped by the recovery: %v, want %v\n%s", skipped, damage != "none", rlog.String())
	}
	if damage == "newest_snapshot_ahead_of_chunks" {
		if _, err := c.Attributes(testCtx(t), manifest.SnapshotKey(stream, newest)); tier2.Reason(err) != tier2.ReasonMissing {
			t.Fatalf("snapshot %d, ahead of every chunk in tier 2, left in the bucket: %v", newest, err)
		}
	}
}

// A snapshot is replayable from Tier 2 when the chunks there continue it
// without a gap, holding the chunk of its position unless it starts one.
func TestSnapshotReplayableFromTier2Chunks(t *testing.T) {
	h := int64(manifest.ChunkHeaderSize)
	for _, tc := range []struct {
		name   string
		pos    manifest.Position
		chunks []uint64
		want   bool
	}{
		{"chunks continue it", manifest.Position{Chunk: 4, Offset: h + 90}, []uint64{2, 3, 4, 5}, true},
		{"its chunk never uploaded", manifest.Position{Chunk: 6, Offset: h + 90}, []uint64{2, 3, 4, 5}, false},
		{"starts a chunk not yet written", manifest.Position{Chunk: 6, Offset: h}, []uint64{4, 5}, true},
		{"gap after it", manifest.Position{Chunk: 4, Offset: h + 10}, []uint64{4, 6}, false},
		{"its chunk pruned", manifest.Position{Chunk: 3, Offset: h + 10}, []uint64{4, 5}, false},
	} {
		if got := snapshotReplayable(tc.pos, tc.chunks); got != tc.want {
			t.Errorf("%s: snapshotReplayable(%v, %v) = %v, want %v", tc.name, tc.pos, tc.chunks, got, tc.want)
		}
	}
}

// A fallback snapshot that does not verify in Tier 2 is no fallback: the
// prune behind the next snapshot keeps everything (the older snapshot
// stays the usable one) and says so, and the one after prunes again, with
// a good fallback.
func TestTier2PruneWaitsWhenTheFallbackSnapshotIsCorrupt(t *testing.T) {
	c := memory.New()
	var log syncBuffer
	s := pruneStore(t, t.TempDir(), c, &log)
	defer s.Close()
	const stream = "rot"
	newest := snapshotRounds(t, s, c, stream, 0, 3)
	corruptMemoryObject(t, c, manifest.SnapshotKey(stream, newest))

	appendN(t, s, stream, 120, 40)
	time.Sleep(pruneRotation + 10*time.Millisecond)
	next, err := s.Snapshot(stream)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the prune skipped", func() bool {
		return strings.Contains(log.String(), "msg=manifest_tier2_prune_skipped")
	})
	snaps, err := bucketNumbers(c, "snapshots/"+stream+"/", ".bin")
	if want := fmt.Sprint([]uint64{newest - 1, newest, next}); err != nil || fmt.Sprint(snaps) != want {
		t.Fatalf("tier 2 snapshots after a prune behind a corrupt fallback: %v %v, want %s", snaps, err, want)
	}
	snapshotRounds(t, s, c, stream, 160, 1)
}
