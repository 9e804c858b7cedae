package tiers

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/bop-aof/aof/tiers/tier1"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

type gatedBucket struct {
	*memory.Bucket
	mu      sync.Mutex
	armed   bool
	entered chan struct{}
	release chan struct{}
}

func (g *gatedBucket) Replace(ctx context.Context, key string, r io.ReadSeeker, size int64, meta tier2.ObjectMeta) (tier2.UploadResult, error) {
	g.mu.Lock()
	hold := g.armed
	g.armed = false
	g.mu.Unlock()
	if hold {
		close(g.entered)
		<-g.release
	}
	return g.Bucket.Replace(ctx, key, r, size, meta)
}

// Retire of a segment whose repair re-upload is in flight (the upload
// is held in Tier 2): the retirement waits for the upload, then deletes
// the segment everywhere. Never may the upload land after the deletion
// and record UploadDone after Tier2Deleted, which brings the retired
// segment back at the next boot.
func TestRetireDuringAReuploadStaysRetired(t *testing.T) {
	ctx := testCtx(t)
	g := &gatedBucket{Bucket: memory.New(), entered: make(chan struct{}), release: make(chan struct{})}
	root := t.TempDir()
	s := openStore(t, Options{Root: root, SegmentTargetBytes: 4 << 10, Tier2: g})
	const stream = "rt"
	id := sealUploaded(t, s, stream)
	sealUploaded(t, s, stream)
	key := tier2.SegmentKey(stream, id)
	g.Bucket.Corrupt(key, 100)
	g.mu.Lock()
	g.armed = true
	g.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- s.Reupload(ctx, stream, id) }()
	<-g.entered
	retired := make(chan error, 1)
	go func() { retired <- s.Retire(ctx, stream, id) }()
	select {
	case err := <-retired:
		t.Fatalf("Retire returned while the re-upload was in flight: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatalf("Reupload: %v", err)
	}
	if err := <-retired; err != nil {
		t.Fatalf("Retire: %v", err)
	}
	if _, err := s.Snapshot(stream); err != nil {
		t.Fatal(err)
	}
	idx, _ := s.ManifestIndex(stream)
	ms, _ := idx.Get(id)
	ex, _ := g.Bucket.Exists(ctx, key)
	t.Logf("manifest after: Deleted=%v InTier0=%v InTier1=%v InTier2=%v; object exists=%v", ms.Deleted, ms.InTier0, ms.InTier1, ms.InTier2, ex)
	s.Close()
	s2 := openStore(t, Options{Root: root, SegmentTargetBytes: 4 << 10, Tier2: g})
	defer s2.Close()
	for _, st := range s2.Segments(stream) {
		if st.Segment == id {
			t.Errorf("retired segment %d is back after restart: %+v", id, st)
		}
	}
	if !ms.Deleted || ex {
		t.Errorf("retired segment resurrected: manifest Deleted=%v InTier2=%v, object exists=%v", ms.Deleted, ms.InTier2, ex)
	}
}

// An upload of a segment and the dropping of its copies (Retire,
// EvictLocal) never run together: either side is refused, with an error
// that says to try later, while the other holds its mark.
func TestUploadsAndDropsOfASegmentExcludeEachOther(t *testing.T) {
	k := tier1.Key{Stream: "m", Segment: 1}
	m := newUploadMarks()
	if err := m.beginUpload(k); err != nil {
		t.Fatal(err)
	}
	if err := m.beginUpload(k); err != nil {
		t.Fatalf("a second upload (Reupload's own runUpload): %v", err)
	}
	if err := m.beginDrop(k, true); !errors.Is(err, errRetireLater) {
		t.Fatalf("drop during an upload: %v, want errRetireLater", err)
	}
	m.endUpload(k)
	if err := m.beginDrop(k, false); !errors.Is(err, errRetireLater) {
		t.Fatalf("drop while one upload is still in flight: %v, want errRetireLater", err)
	}
	m.endUpload(k)
	if err := m.beginDrop(k, false); err != nil {
		t.Fatalf("drop once the uploads ended: %v", err)
	}
	if err := m.beginUpload(k); !errors.Is(err, errSegmentDropping) {
		t.Fatalf("upload during EvictLocal: %v, want errSegmentDropping", err)
	}
	if err := m.beginDrop(k, true); !errors.Is(err, errRetireLater) {
		t.Fatalf("retire during EvictLocal: %v, want errRetireLater", err)
	}
	if m.isRetiring(k) {
		t.Fatal("EvictLocal's mark lets Tier 1 eviction skip its Tier 2 check")
	}
	m.endDrop(k)
	if err := m.beginUpload(k); err != nil {
		t.Fatalf("upload once the drop ended: %v", err)
	}
}
