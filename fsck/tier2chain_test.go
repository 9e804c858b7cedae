package fsck

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

type bucketUploader struct{ b tier2.Bucket }

func (u bucketUploader) PutObject(ctx context.Context, key string, data []byte, _ map[string]string) (string, error) {
	res, err := tier2.UploadBytes(ctx, u.b, key, data, tier2.ObjectMeta{})
	return res.ETag, err
}

// writeEpochChain writes a manifest of stream in dir under epoch, with
// chunks sealed records records at a time, and waits until Tier 2 holds
// every sealed chunk and the epoch's anchor snapshot.
func writeEpochChain(t *testing.T, dir string, b *memory.Bucket, epoch uint64, chunks int) {
	t.Helper()
	l, err := manifest.Open(vfs.Default, dir, "demo", manifest.Options{Uploader: bucketUploader{b}, Epoch: epoch,
		ChunkCapacity: 400, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond, ArchiveInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; l.Tail().Chunk < uint64(chunks); i++ {
		if _, err := l.Append(manifest.Record{Type: manifest.CustomEvent, Payload: manifest.CustomEventPayload{SchemaID: uint32(i)}}); err != nil {
			t.Fatal(err)
		}
		if err := l.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		up := true
		for _, c := range l.Chunks() {
			up = up && (!c.Header.Sealed() || c.Header.Uploaded())
		}
		_, anchored := b.Bytes(manifest.SnapshotKeyAt("demo", epoch, 1))
		if up && anchored {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("manifest chunks not uploaded")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func kindCounts(rep Report) map[string]int {
	out := map[string]int{}
	for _, p := range rep.Problems {
		out[p.Kind]++
	}
	return out
}

// fsck checks the manifest chain a recovery from Tier 2 would replay:
// the new owner's (epoch 2) over the old owner's, whose extra chunks are
// ignored; a chunk missing from that chain, or a corrupt anchor, is
// reported, with the fall back to the older epoch a recovery would take.
func TestCheckFollowsTheHighestEpochsManifestChainInTier2(t *testing.T) {
	b := memory.New()
	root := t.TempDir()
	writeEpochChain(t, t.TempDir(), b, 1, 5)
	writeEpochChain(t, filepath.Join(root, "manifest", "demo"), b, 2, 3)
	if err := vfs.Default.MkdirAll(filepath.Join(root, "tier0", "demo"), 0o755); err != nil {
		t.Fatal(err)
	}

	rep, err := Check(testCtx(t), CheckOptions{Root: root, Tier2: b})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 || rep.Streams[0].Tier2Epoch != 2 || rep.Streams[0].Tier2ManifestChunks == 0 {
		t.Fatalf("check of two epochs' chains: %+v", rep)
	}

	data, _ := b.Bytes(manifest.ChunkKeyAt("demo", 2, 1))
	if err := b.Delete(testCtx(t), manifest.ChunkKeyAt("demo", 2, 1)); err != nil {
		t.Fatal(err)
	}
	rep, err = Check(testCtx(t), CheckOptions{Root: root, Tier2: b})
	if err != nil {
		t.Fatal(err)
	}
	if kindCounts(rep)[KindTier2Chain] != 1 || rep.Streams[0].Tier2Epoch != 1 {
		t.Fatalf("a chunk missing from epoch 2's chain: epoch %d, %+v; want epoch 1 and one %s problem",
			rep.Streams[0].Tier2Epoch, rep.Problems, KindTier2Chain)
	}
	if _, err := tier2.UploadBytes(testCtx(t), b, manifest.ChunkKeyAt("demo", 2, 1), data, tier2.ObjectMeta{}); err != nil {
		t.Fatal(err)
	}

	b.Corrupt(manifest.ChunkKeyAt("demo", 2, 1), 200)
	rep, err = Check(testCtx(t), CheckOptions{Root: root, Tier2: b})
	if err != nil {
		t.Fatal(err)
	}
	if p := kinds(rep)[KindTier2Chain]; len(rep.Problems) != 1 || p.Chunk == nil || *p.Chunk != 1 || rep.Streams[0].Tier2Epoch != 2 {
		t.Fatalf("a corrupt chunk in epoch 2's chain: epoch %d, %+v; want one %s problem for chunk 1",
			rep.Streams[0].Tier2Epoch, rep.Problems, KindTier2Chain)
	}
	// Replace: an Upload would be skipped, the corrupt object's metadata
	// still naming the good bytes' crc64.
	if _, err := b.Replace(testCtx(t), manifest.ChunkKeyAt("demo", 2, 1), bytes.NewReader(data), int64(len(data)), tier2.ObjectMeta{}); err != nil {
		t.Fatal(err)
	}

	for _, id := range []uint64{1, 2} {
		if key := manifest.SnapshotKeyAt("demo", 2, id); !b.Corrupt(key, 20) && id == 1 {
			t.Fatalf("no snapshot %s to corrupt", key)
		}
	}
	rep, err = Check(testCtx(t), CheckOptions{Root: root, Tier2: b})
	if err != nil {
		t.Fatal(err)
	}
	if k := kindCounts(rep); k[KindTier2Snapshot] == 0 || len(rep.Problems) != k[KindTier2Snapshot] {
		t.Fatalf("problems %+v, want only the corrupt snapshots", rep.Problems)
	}
	if rep.Streams[0].Tier2Epoch != 1 || kindCounts(rep)[KindTier2Snapshot] == 0 || kindCounts(rep)[KindTier2Chain] != 0 {
		t.Fatalf("epoch 2's snapshots corrupt: epoch %d, problems %+v; want epoch 1's chain and a %s problem",
			rep.Streams[0].Tier2Epoch, rep.Problems, KindTier2Snapshot)
	}
	if !bytes.Contains([]byte(rep.Problems[0].File), []byte("snapshots/demo/2/")) {
		t.Fatalf("problem names %s, want epoch 2's snapshot", rep.Problems[0].File)
	}
}
