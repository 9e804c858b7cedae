package tiers

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/tier1"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

// manifestSyncGate is a file system that, once armed, holds one fsync of
// a stream's manifest until released: the window in which an eviction
// has passed its checks but has not recorded its LocalEvicted yet.
type manifestSyncGate struct {
	vfs.FS
	stream  string
	mu      sync.Mutex
	armed   bool
	skip    int // fsyncs let through before the held one
	entered chan struct{}
	release chan struct{}
}

func newManifestSyncGate(stream string) *manifestSyncGate {
	return &manifestSyncGate{FS: vfs.Default, stream: stream, entered: make(chan struct{}), release: make(chan struct{})}
}

// arm holds the manifest fsync that follows skip others.
func (g *manifestSyncGate) arm(skip int) {
	g.mu.Lock()
	g.armed, g.skip = true, skip
	g.mu.Unlock()
}

func (g *manifestSyncGate) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	f, err := g.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return gatedFile{f, g}, nil
}

type gatedFile struct {
	vfs.File
	g *manifestSyncGate
}

func (f gatedFile) Sync() error {
	if strings.Contains(f.Name(), "/manifest/"+f.g.stream+"/") && f.g.take() {
		close(f.g.entered)
		<-f.g.release
	}
	return f.File.Sync()
}

func (g *manifestSyncGate) take() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.armed {
		return false
	}
	if g.skip > 0 {
		g.skip--
		return false
	}
	g.armed = false
	return true
}

// sealUploaded writes one segment to stream, seals it and waits for its
// upload.
func sealUploaded(t *testing.T, s *Store, stream string) uint64 {
	t.Helper()
	appendN(t, s, stream, 0, 50)
	id, err := s.Seal(testCtx(t), stream, false)
	if err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, s, stream)
	return id
}

// requireManifestCountsACopy commits what the manifest holds pending and
// checks that its fold still places segment id in some tier: a fold with
// no tier is a segment the next boot deletes.
func requireManifestCountsACopy(t *testing.T, s *Store, stream string, id uint64) {
	t.Helper()
	if _, err := s.Snapshot(stream); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	idx, err := s.ManifestIndex(stream)
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := idx.Get(id)
	if ms.Deleted || !(ms.InTier0 || ms.InTier1 || ms.InTier2) {
		t.Fatalf("manifest folds segment %d to no tier (InTier0=%v InTier1=%v InTier2=%v Deleted=%v): the next boot drops its last good copy",
			id, ms.InTier0, ms.InTier1, ms.InTier2, ms.Deleted)
	}
}

// A Reupload whose UploadStarted record is taken but not committed (the
// manifest disk is full) leaves that record pending: it commits with the
// next manifest write and makes the manifest stop vouching for the
// damaged object. The segment must count as out of Tier 2 from the start,
// so no eviction drops its local copies, and the repair must still
// complete in the background.
func TestReuploadWhoseStartRecordFailsKeepsEveryLocalCopy(t *testing.T) {
	ctx := testCtx(t)
	b := memory.New()
	ffs := vfs.NewFaultFS(nil)
	s := openStore(t, Options{Root: t.TempDir(), FS: ffs, SegmentTargetBytes: 4 << 10, Tier2: b})
	defer s.Close()
	const stream = "rr"
	id := sealUploaded(t, s, stream)
	key := tier2.SegmentKey(stream, id)
	good, err := os.ReadFile(s.bg.cache.Path(tier1.Key{Stream: stream, Segment: id}))
	if err != nil {
		t.Fatal(err)
	}
	if !b.Corrupt(key, 100) {
		t.Fatal("no object to damage")
	}
	ffs.Inject(vfs.Fault{Op: vfs.OpSync, Times: 1, Err: vfs.ENOSPC, Match: manifestOf(stream)})
	if err := s.Reupload(ctx, stream, id); err == nil {
		t.Fatal("Reupload succeeded although its UploadStarted commit failed")
	}
	// Either the repair already completed in the background, or the
	// segment still counts as out of Tier 2 and keeps its local copies.
	if err := s.EvictLocal(ctx, stream, id); err == nil {
		if obj, _ := b.Bytes(key); !bytes.Equal(obj, good) {
			t.Fatal("EvictLocal dropped the local copies while Tier 2 holds the damaged object")
		}
	}
	requireManifestCountsACopy(t, s, stream, id)
	waitFor(t, "the queued repair to confirm the object", func() bool {
		return segmentStatus(t, s, stream, id).InTier2
	})
	if obj, _ := b.Bytes(key); !bytes.Equal(obj, good) {
		t.Fatal("the repaired object differs from the good local copy")
	}
}

// A Reupload whose UploadStarted record the manifest refuses outright (an
// earlier commit failed and the retry fails too) leaves the manifest
// vouching for the damaged object. Until the queued repair confirms a good
// one, no eviction may rely on that object: once the manifest works again,
// EvictLocal is refused rather than drop the last good copies.
func TestReuploadWhoseStartRecordIsRefusedKeepsEveryLocalCopy(t *testing.T) {
	ctx := testCtx(t)
	b := memory.New()
	ffs := vfs.NewFaultFS(nil)
	s := openStore(t, Options{Root: t.TempDir(), FS: ffs, SegmentTargetBytes: 4 << 10, Tier2: b,
		JobRetryBackoff: 2 * time.Second}) // the queued repair waits while the test looks
	defer s.Close()
	const stream = "rf"
	id := sealUploaded(t, s, stream)
	key := tier2.SegmentKey(stream, id)
	good, err := os.ReadFile(s.bg.cache.Path(tier1.Key{Stream: stream, Segment: id}))
	if err != nil {
		t.Fatal(err)
	}
	if !b.Corrupt(key, 100) {
		t.Fatal("no object to damage")
	}
	l, _ := s.existing(stream)
	// A commit fails, and so does its retry at the Reupload's append.
	ffs.Inject(vfs.Fault{Op: vfs.OpSync, Times: 2, Err: vfs.ENOSPC, Match: manifestOf(stream)})
	if _, err := l.man.Append(manifest.Record{Type: manifest.CompressionStarted, Segment: id,
		Payload: manifest.CompressionStartedPayload{JobID: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := l.man.Commit(); err == nil {
		t.Fatal("manifest commit succeeded through an injected fsync failure")
	}
	if err := s.Reupload(ctx, stream, id); err == nil {
		t.Fatal("Reupload succeeded although the manifest refused its UploadStarted")
	}
	if ms, _ := l.man.Segment(id); !ms.InTier2 {
		t.Fatalf("manifest after the refused UploadStarted: %+v, want it still vouching for the object", ms)
	}
	// The manifest works again; the repair is still queued.
	if err := s.EvictLocal(ctx, stream, id); err == nil {
		if obj, _ := b.Bytes(key); !bytes.Equal(obj, good) {
			t.Fatal("EvictLocal dropped the local copies while Tier 2 holds the damaged object")
		}
	}
	waitFor(t, "the queued repair to replace the object", func() bool {
		obj, _ := b.Bytes(key)
		return bytes.Equal(obj, good) && segmentStatus(t, s, stream, id).InTier2
	})
	// The repair's upload ends just after it confirms the object.
	var evictErr error
	waitFor(t, "EvictLocal to succeed once the repair is confirmed", func() bool {
		evictErr = s.EvictLocal(ctx, stream, id)
		return evictErr == nil || !errors.Is(evictErr, errRetireLater)
	})
	if evictErr != nil {
		t.Fatalf("EvictLocal once the repair is confirmed: %v", evictErr)
	}
	readAll(t, s, stream, 50)
}

// A Tier 1 eviction whose LocalEvicted record stays pending (commit
// failed) has as good as happened: when a Reupload follows, it must not
// write UploadStarted for a segment whose manifest then counts no copy.
func TestReuploadAfterAPendingTier1EvictionKeepsTheManifestCountingACopy(t *testing.T) {
	ctx := testCtx(t)
	b := memory.New()
	ffs := vfs.NewFaultFS(nil)
	s := openStore(t, Options{Root: t.TempDir(), FS: ffs, SegmentTargetBytes: 4 << 10, Tier2: b})
	defer s.Close()
	const stream = "pe"
	id := sealUploaded(t, s, stream)
	if err := s.EvictTier0(ctx, stream, id); err != nil {
		t.Fatal(err)
	}
	b.Corrupt(tier2.SegmentKey(stream, id), 100)
	b.FailPuts(1000, nil) // no re-upload confirms while the test looks
	ffs.Inject(vfs.Fault{Op: vfs.OpSync, Times: 1, Err: vfs.ENOSPC, Match: manifestOf(stream)})
	t.Logf("EvictLocal: %v", s.EvictLocal(ctx, stream, id))
	t.Logf("Reupload: %v", s.Reupload(ctx, stream, id))
	requireManifestCountsACopy(t, s, stream, id)
	st := segmentStatus(t, s, stream, id)
	if inCache := s.bg.tier1Has(stream, id); st.InTier1 && !inCache {
		t.Fatalf("segment %d counts a Tier 1 copy the cache does not hold", id)
	}
}

// EvictLocal that has passed its Tier 2 check and is recording the Tier 1
// LocalEvicted races a Reupload of the same segment: either the eviction
// keeps the artifact the repair pinned, or the repair is refused; never
// does the manifest end with the segment in no tier.
func TestEvictLocalRacingAReuploadNeverLeavesTheSegmentInNoTier(t *testing.T) {
	ctx := testCtx(t)
	b := memory.New()
	const stream = "ev"
	g := newManifestSyncGate(stream)
	s := openStore(t, Options{Root: t.TempDir(), FS: g, SegmentTargetBytes: 4 << 10, Tier2: b})
	defer s.Close()
	id := sealUploaded(t, s, stream)
	b.Corrupt(tier2.SegmentKey(stream, id), 100)
	g.arm(2) // the Tier 0 LocalEvicted commit is 2 fsyncs; hold the Tier 1 one
	evErr := make(chan error, 1)
	go func() { evErr <- s.EvictLocal(ctx, stream, id) }()
	<-g.entered
	ruErr := make(chan error, 1)
	go func() { ruErr <- s.Reupload(ctx, stream, id) }()
	raceWindow(ruErr)
	close(g.release)
	t.Logf("EvictLocal: %v", <-evErr)
	t.Logf("Reupload: %v", <-ruErr)
	requireManifestCountsACopy(t, s, stream, id)
	st := segmentStatus(t, s, stream, id)
	if inCache := s.bg.tier1Has(stream, id); st.InTier1 != inCache {
		t.Fatalf("segment %d: InTier1=%v but cache holds it: %v", id, st.InTier1, inCache)
	}
}

// A Tier 1 budget eviction commits LocalEvicted before the cache removes
// the file, on the store's Tier 1 eviction goroutine. A Reupload that pins the artifact in that window
// must be refused: otherwise the artifact survives while the manifest says
// it is gone, and the repair's UploadStarted leaves the segment in no
// tier until the upload confirms (a crash in between loses it).
func TestTier1EvictionRacingAReuploadNeverLeavesTheSegmentInNoTier(t *testing.T) {
	ctx := testCtx(t)
	b := memory.New()
	const stream = "te"
	g := newManifestSyncGate(stream)
	s := openStore(t, Options{Root: t.TempDir(), FS: g, SegmentTargetBytes: 4 << 10, Tier2: b})
	defer s.Close()
	id := sealUploaded(t, s, stream)
	if err := s.EvictTier0(ctx, stream, id); err != nil {
		t.Fatal(err)
	}
	b.Corrupt(tier2.SegmentKey(stream, id), 100)
	b.FailPuts(1000, nil) // no re-upload confirms while the test looks
	g.arm(0)
	s.SetTier1MaxBytes(1) // wakes the eviction goroutine
	<-g.entered
	ruErr := make(chan error, 1)
	go func() { ruErr <- s.Reupload(ctx, stream, id) }()
	raceWindow(ruErr)
	close(g.release)
	waitFor(t, "the budget eviction to remove the artifact", func() bool { return s.bg.cache.Stats().Files == 0 })
	t.Logf("Reupload: %v", <-ruErr)
	requireManifestCountsACopy(t, s, stream, id)
	st := segmentStatus(t, s, stream, id)
	if inCache := s.bg.tier1Has(stream, id); st.InTier1 != inCache {
		t.Fatalf("segment %d: InTier1=%v but cache holds it: %v", id, st.InTier1, inCache)
	}
}

// raceWindow lets a racing Reupload run until it returns or blocks on
// the held manifest fsync.
func raceWindow(done chan error) {
	select {
	case err := <-done:
		done <- err
	case <-time.After(200 * time.Millisecond):
	}
}
