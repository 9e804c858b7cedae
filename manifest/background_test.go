package manifest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/bop-aof/aof/internal/vfs"
)

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recordingPublisher fails while failing is set and records what it
// accepted.
type recordingPublisher struct {
	mu       sync.Mutex
	failing  bool
	attempts int
	events   []Event
}

func (p *recordingPublisher) Publish(ctx context.Context, ev Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.attempts++
	if p.failing {
		return errors.New("broker down")
	}
	ev.Raw = append([]byte(nil), ev.Raw...)
	p.events = append(p.events, ev)
	return nil
}

func (p *recordingPublisher) set(failing bool) { p.mu.Lock(); p.failing = failing; p.mu.Unlock() }
func (p *recordingPublisher) snapshot() ([]Event, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Event(nil), p.events...), p.attempts
}

func TestOutboxPublishesEveryRecordOnceInOrder(t *testing.T) {
	dir := t.TempDir()
	pub := &recordingPublisher{failing: true}
	opts := Options{ChunkCapacity: 512, Publisher: pub, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond}
	l := openLog(t, vfs.Default, dir, opts)
	recs := sampleRecords()
	var positions []Position
	for i := range 3 {
		start := time.Now()
		positions = append(positions, appendCommit(t, l, recs...)...)
		if time.Since(start) > 2*time.Second {
			t.Fatalf("round %d: commit waited on a failing publisher", i)
		}
	}
	eventually(t, "publish attempts against the failing broker", func() bool { _, a := pub.snapshot(); return a >= 3 })
	if evs, _ := pub.snapshot(); len(evs) != 0 {
		t.Fatalf("%d events accepted while failing", len(evs))
	}
	pub.set(false)
	eventually(t, "all records published", func() bool { evs, _ := pub.snapshot(); return len(evs) >= len(positions) })
	time.Sleep(20 * time.Millisecond) // a duplicate would show up now
	evs, _ := pub.snapshot()
	if len(evs) != len(positions) {
		t.Fatalf("%d events for %d records", len(evs), len(positions))
	}
	for i, ev := range evs {
		want := recs[i%len(recs)]
		if ev.Stream != "demo" || ev.Chunk != positions[i].Chunk || ev.Offset != positions[i].Offset || !reflect.DeepEqual(ev.Record, want) {
			t.Fatalf("event %d: %+v, want record %v at %v", i, ev, want.Type, positions[i])
		}
		if dec, _, err := DecodeRecord(ev.Raw); err != nil || !reflect.DeepEqual(dec, want) {
			t.Fatalf("event %d: raw bytes do not decode to the record: %v", i, err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// The cursor persisted: a reopen publishes only what is new.
	pub2 := &recordingPublisher{}
	opts.Publisher = pub2
	l = openLog(t, vfs.Default, dir, opts)
	defer l.Close()
	time.Sleep(30 * time.Millisecond)
	if evs, _ := pub2.snapshot(); len(evs) != 0 {
		t.Fatalf("reopen republished %d records", len(evs))
	}
	p := appendCommit(t, l, recs[0])
	eventually(t, "new record published", func() bool { evs, _ := pub2.snapshot(); return len(evs) == 1 })
	if evs, _ := pub2.snapshot(); evs[0].Chunk != p[0].Chunk || evs[0].Offset != p[0].Offset {
		t.Fatalf("published %v/%v, appended at %v", evs[0].Chunk, evs[0].Offset, p[0])
	}
}

// fakeStore is an Uploader that can be told to fail.
type fakeStore struct {
	mu      sync.Mutex
	failing bool
	objects map[string][]byte
	meta    map[string]map[string]string
}

func (s *fakeStore) PutObject(ctx context.Context, key string, data []byte, meta map[string]string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failing {
		return "", errors.New("503 slow down")
	}
	if s.objects == nil {
		s.objects, s.meta = map[string][]byte{}, map[string]map[string]string{}
	}
	s.objects[key] = append([]byte(nil), data...)
	s.meta[key] = meta
	return fmt.Sprintf("etag-%x", CRC64(data)), nil
}

func (s *fakeStore) has(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.objects[key]
	return ok
}

func TestRetentionDeletesOnlyConfirmedOldChunks(t *testing.T) {
	dir := t.TempDir()
	store := &fakeStore{failing: true}
	opts := Options{ChunkCapacity: 300, Uploader: store, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond}
	l := openLog(t, vfs.Default, dir, opts)
	for range 3 {
		for _, r := range sampleRecords() {
			appendCommit(t, l, r)
		}
	}
	if _, err := l.Snapshot(); err != nil {
		t.Fatal(err)
	}
	appendCommit(t, l, sampleRecords()[:2]...)
	all := l.Chunks()
	if len(all) < 6 {
		t.Fatalf("only %d chunks", len(all))
	}
	time.Sleep(30 * time.Millisecond)
	if got := len(l.Chunks()); got != len(all) {
		t.Fatalf("%d chunks deleted while Tier 2 refused every upload", len(all)-got)
	}
	store.set(false)
	l.mu.Lock()
	snapChunk := l.snap.Position.Chunk
	l.mu.Unlock()
	active := all[len(all)-1].Header.Index
	eventually(t, "retention", func() bool {
		return store.has(SnapshotKey("demo", 1)) && len(l.Chunks()) < len(all)
	})
	eventually(t, "all sealed chunks uploaded", func() bool {
		for _, c := range l.Chunks() {
			if c.Header.Sealed() && !c.Header.Uploaded() {
				return false
			}
		}
		return true
	})
	for _, c := range all {
		i := c.Header.Index
		_, err := os.Stat(c.Path)
		kept := err == nil
		wantKept := i+1 >= active || i >= snapChunk
		if kept != wantKept {
			t.Errorf("chunk %d (snapshot chunk %d, active %d): kept=%v want %v", i, snapChunk, active, kept, wantKept)
		}
		if !kept && !store.has(ChunkKey("demo", i)) {
			t.Errorf("chunk %d deleted without a Tier 2 copy", i)
		}
	}
	store.mu.Lock()
	m := store.meta[ChunkKey("demo", 0)]
	store.mu.Unlock()
	if m["crc64"] == "" || m["record-count"] == "" || m["first-logical-offset"] == "" || m["last-logical-offset"] == "" {
		t.Errorf("chunk object metadata incomplete: %v", m)
	}
	want := l.Index()
	l.Close()
	// The uploaded flag survived on disk and the index still rebuilds from
	// snapshot + remaining chunks.
	l = openLog(t, vfs.Default, dir, Options{})
	defer l.Close()
	if !l.Index().Equal(want) {
		t.Fatal("index after retention and reopen differs")
	}
	for _, c := range l.Chunks() {
		if c.Header.Sealed() && !c.Header.Uploaded() {
			t.Errorf("chunk %d lost its uploaded flag", c.Header.Index)
		}
	}
}

func (s *fakeStore) set(failing bool) { s.mu.Lock(); s.failing = failing; s.mu.Unlock() }

func TestRetentionWaitsForPublication(t *testing.T) {
	dir := t.TempDir()
	store := &fakeStore{}
	pub := &recordingPublisher{failing: true}
	opts := Options{ChunkCapacity: 300, Uploader: store, Publisher: pub, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond}
	l := openLog(t, vfs.Default, dir, opts)
	defer l.Close()
	for range 3 {
		for _, r := range sampleRecords() {
			appendCommit(t, l, r)
		}
	}
	l.Snapshot()
	appendCommit(t, l, sampleRecords()[0])
	n := len(l.Chunks())
	eventually(t, "uploads", func() bool { return store.has(ChunkKey("demo", 2)) })
	time.Sleep(20 * time.Millisecond)
	if got := len(l.Chunks()); got != n {
		t.Fatalf("%d unpublished chunks deleted", n-got)
	}
	pub.set(false)
	eventually(t, "retention after publication", func() bool { return len(l.Chunks()) < n })
}

// TestQuarantineOnDamageFoundByPublisher: damage inside committed data that
// the publisher reads stops the stream from accepting writes.
func TestQuarantineOnDamageFoundByPublisher(t *testing.T) {
	dir := t.TempDir()
	pub := &recordingPublisher{failing: true}
	l := openLog(t, vfs.Default, dir, Options{Publisher: pub, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond})
	defer l.Close()
	appendCommit(t, l, sampleRecords()...)
	b, _ := os.ReadFile(ChunkPath(dir, 0))
	b[len(b)-1] ^= 1 // last payload byte of the last record
	os.WriteFile(ChunkPath(dir, 0), b, 0o644)
	pub.set(false)
	eventually(t, "quarantine", func() bool { return l.Err() != nil })
	var ie *IntegrityError
	if _, err := l.Append(sampleRecords()[0]); !errors.As(err, &ie) || ie.Chunk != 0 || ie.Stream != "demo" {
		t.Fatalf("append after damage: %v, want *IntegrityError", err)
	}
	if evs, _ := pub.snapshot(); len(evs) != len(sampleRecords())-1 {
		t.Fatalf("%d events published; the %d intact records before the damage should be", len(evs), len(sampleRecords())-1)
	}
}
