package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bop-aof/aof/internal/vfs"
)

func openLog(t testing.TB, fs vfs.FS, dir string, opts Options) *Log {
	t.Helper()
	l, err := Open(fs, dir, "demo", opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return l
}

// randomRecord returns a plausible transition of one of a few segments.
func randomRecord(rng *rand.Rand, i int) Record {
	seg := uint64(rng.IntN(8))
	t := RecordType(rng.IntN(17))
	if t == SnapshotMarker {
		t = CustomEvent // markers are written by Snapshot only
	}
	var p Payload
	switch t {
	case SegmentOpened:
		p = SegmentOpenedPayload{BaseOffset: rng.Uint64(), Epoch: rng.Uint32()}
	case SealSegment:
		p = SealSegmentPayload{DurableBytes: rng.Uint64(), SegmentCRC64: rng.Uint64(), ExtID: uint64(i), FlushFailure: rng.IntN(5) == 0}
	case CompressionStarted:
		p = CompressionStartedPayload{JobID: rng.Uint32()}
	case CompressionDone:
		p = CompressionDonePayload{CompressedBytes: rng.Uint64(), DictionaryID: rng.Uint32()}
	case CompressionFailed:
		p = CompressionFailedPayload{Reason: ReasonCode(rng.IntN(5))}
	case UploadStarted:
		p = UploadStartedPayload{Key: fmt.Sprintf("segments/demo/%d.zst", seg)}
	case UploadDone:
		p = UploadDonePayload{Key: fmt.Sprintf("segments/demo/%d.zst", seg), ETag: fmt.Sprint(rng.Uint32())}
	case UploadFailed:
		p = UploadFailedPayload{Key: "k", Reason: ReasonCode(rng.IntN(5))}
	case Tier2DeleteQueued:
		p = Tier2DeleteQueuedPayload{Key: "k"}
	case Tier2Deleted:
		p = Tier2DeletedPayload{Key: "k"}
	case HydrationStarted:
		p = HydrationStartedPayload{SourceTier: uint64(1 + rng.IntN(2))}
	case HydrationDone:
		p = HydrationDonePayload{ResidentBytes: rng.Uint64()}
	case HydrationFailed:
		p = HydrationFailedPayload{Reason: ReasonCode(rng.IntN(5))}
	case LocalEvicted:
		p = LocalEvictedPayload{ReclaimedBytes: rng.Uint64()}
	case CustomEvent:
		// An empty blob decodes as nil; generate it that way.
		var blob []byte
		if n := rng.IntN(40); n > 0 {
			blob = bytes.Repeat([]byte{byte(i)}, n)
		}
		p = CustomEventPayload{SchemaID: rng.Uint32(), Blob: blob}
	case SegmentBounds:
		p = SegmentBoundsPayload{FirstExtID: rng.Uint64(), LastExtID: uint64(i), FirstAppendMS: int64(i) - 5, LastAppendMS: int64(i)}
	}
	return Record{Type: t, Flags: uint16(rng.IntN(2)), Segment: seg, LogicalOffset: uint64(i), TimestampMS: int64(i), Payload: p}
}

func appendCommit(t testing.TB, l *Log, recs ...Record) []Position {
	t.Helper()
	var pos []Position
	for _, r := range recs {
		p, err := l.Append(r)
		if err != nil {
			t.Fatalf("append: %v", err)
		}
		pos = append(pos, p)
	}
	if err := l.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
	return pos
}

func fold(recs []Record) *Index {
	x := NewIndex("demo")
	for _, r := range recs {
		x.Apply(r)
	}
	return x
}

// readAll returns every committed record in the directory, in order.
func readAll(t testing.TB, dir string) []Record {
	t.Helper()
	d, err := listDir(vfs.Default, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []Record
	for _, c := range d.chunks {
		data, err := os.ReadFile(ChunkPath(dir, c))
		if err != nil {
			t.Fatal(err)
		}
		_, recs, err := ReadChunk(data)
		if err != nil {
			t.Fatalf("chunk %d: %v", c, err)
		}
		for _, cr := range recs {
			out = append(out, cr.Record)
		}
	}
	return out
}

func TestLogReopenRebuildsIndexAcrossRotations(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, vfs.Default, dir, Options{ChunkCapacity: 1024})
	rng := rand.New(rand.NewPCG(1, 2))
	var recs []Record
	for i := range 300 {
		recs = append(recs, randomRecord(rng, i))
		if i%7 == 6 {
			appendCommit(t, l, recs[len(recs)-7:]...)
		}
	}
	appendCommit(t, l, recs[len(recs)-300%7:]...)
	want := fold(recs)
	if !l.Index().Equal(want) {
		t.Fatal("live index differs from folding the records")
	}
	chunks := l.Chunks()
	if len(chunks) < 5 {
		t.Fatalf("%d chunks; a 1 KiB capacity must rotate", len(chunks))
	}
	for i, c := range chunks {
		if c.Header.Index != uint64(i) || c.Header.Sealed() != (i < len(chunks)-1) {
			t.Errorf("chunk %d: index %d sealed %v", i, c.Header.Index, c.Header.Sealed())
		}
		if fi, _ := os.Stat(c.Path); fi.Size() > 1024 {
			t.Errorf("chunk %d is %d bytes, capacity 1024", i, fi.Size())
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, vfs.Default, dir, Options{ChunkCapacity: 1024})
	defer l.Close()
	if got := l.Index(); !got.Equal(want) {
		t.Fatalf("reopened index differs:\n got %+v\nwant %+v", got.Segments(), want.Segments())
	}
	if got := readAll(t, dir); !reflect.DeepEqual(got, recs) {
		for i := range min(len(got), len(recs)) {
			if !reflect.DeepEqual(got[i], recs[i]) {
				t.Fatalf("record %d read back as %#v, appended %#v", i, got[i], recs[i])
			}
		}
		t.Fatalf("records read back differ from records appended: %d of %d", len(got), len(recs))
	}
	// Appending after reopen continues the open chunk.
	appendCommit(t, l, recs[0])
	if got := len(readAll(t, dir)); got != len(recs)+1 {
		t.Fatalf("%d records after one more, want %d", got, len(recs)+1)
	}
}

func TestChunkFileAppearsOnlyWithACommittedRecord(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, vfs.Default, dir, Options{})
	defer l.Close()
	if _, err := l.Append(sampleRecords()[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ChunkPath(dir, 0)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("chunk exists before commit: %v", err)
	}
	if l.Index().Records != 0 {
		t.Fatal("uncommitted record applied to the index")
	}
	if err := l.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ChunkPath(dir, 0)); err != nil {
		t.Fatalf("chunk missing after commit: %v", err)
	}
}

func TestRotationPeriod(t *testing.T) {
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	l := openLog(t, vfs.Default, t.TempDir(), Options{RotationPeriod: time.Minute, Clock: clock})
	defer l.Close()
	p1 := appendCommit(t, l, sampleRecords()[0])
	mu.Lock()
	now = now.Add(59 * time.Second)
	mu.Unlock()
	p2 := appendCommit(t, l, sampleRecords()[1])
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	p3 := appendCommit(t, l, sampleRecords()[2])
	if p1[0].Chunk != 0 || p2[0].Chunk != 0 || p3[0].Chunk != 1 {
		t.Fatalf("positions %v %v %v: want rotation after one minute", p1, p2, p3)
	}
	if c := l.Chunks(); !c[0].Header.Sealed() || c[1].Header.Sealed() {
		t.Fatal("rotated chunk must be sealed, the new one open")
	}
}

// TestTornTailAtEveryByte: a commit that never returned leaves any prefix
// of its record after the committed range; reopening yields exactly the
// committed records and trims the file.
func TestTornTailAtEveryByte(t *testing.T) {
	base := t.TempDir()
	recs := sampleRecords()
	l := openLog(t, vfs.Default, base, Options{})
	appendCommit(t, l, recs[:5]...)
	l.Close()
	committed, err := os.ReadFile(ChunkPath(base, 0))
	if err != nil {
		t.Fatal(err)
	}
	last := AppendRecord(nil, recs[6])
	for cut := 0; cut <= len(last); cut++ {
		dir := t.TempDir()
		torn := append(append([]byte(nil), committed...), last[:cut]...)
		if err := os.WriteFile(ChunkPath(dir, 0), torn, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := Open(vfs.Default, dir, "demo", Options{})
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		if got := l.Index(); !got.Equal(fold(recs[:5])) {
			t.Fatalf("cut %d: index holds %d records, want 5", cut, got.Records)
		}
		fi, _ := os.Stat(ChunkPath(dir, 0))
		if fi.Size() != int64(len(committed)) {
			t.Fatalf("cut %d: file %d bytes after open, want trimmed to %d", cut, fi.Size(), len(committed))
		}
		appendCommit(t, l, recs[7])
		l.Close()
		if got := readAll(t, dir); !reflect.DeepEqual(got, append(recs[:5:5], recs[7])) {
			t.Fatalf("cut %d: records after reopen and append differ", cut)
		}
	}
}

// TestFailedWriteAtEveryByte injects a write that stops after each byte of
// the record and keeps failing; every retry fails too and a reopen recovers
// exactly the committed records.
func TestFailedWriteAtEveryByte(t *testing.T) {
	recs := sampleRecords()
	size := len(AppendRecord(nil, recs[6]))
	for cut := 0; cut < size; cut++ {
		dir := t.TempDir()
		ffs := vfs.NewFaultFS(nil)
		l := openLog(t, ffs, dir, Options{})
		appendCommit(t, l, recs[:5]...)
		ffs.Inject(vfs.Fault{Op: vfs.OpWrite, ShortBytes: cut, Match: func(n string) bool { return strings.HasSuffix(n, chunkExt) }})
		if _, err := l.Append(recs[6]); err != nil {
			t.Fatal(err)
		}
		if err := l.Commit(); !errors.Is(err, vfs.ErrInjected) {
			t.Fatalf("cut %d: commit err = %v, want injected fault", cut, err)
		}
		if _, err := l.Append(recs[7]); !errors.Is(err, vfs.ErrInjected) {
			t.Fatalf("cut %d: append after failed commit: %v", cut, err)
		}
		l.Close()
		ffs.Reset()
		l = openLog(t, ffs, dir, Options{})
		if got := l.Index(); !got.Equal(fold(recs[:5])) {
			t.Fatalf("cut %d: %d records after reopen, want 5", cut, got.Records)
		}
		l.Close()
	}
}

func TestIntegrityErrorOnFlippedCommittedByte(t *testing.T) {
	base := t.TempDir()
	l := openLog(t, vfs.Default, base, Options{})
	appendCommit(t, l, sampleRecords()...)
	l.Close()
	good, _ := os.ReadFile(ChunkPath(base, 0))
	for off := ChunkHeaderSize; off < len(good); off++ {
		dir := t.TempDir()
		bad := append([]byte(nil), good...)
		bad[off] ^= 0x40
		os.WriteFile(ChunkPath(dir, 0), bad, 0o644)
		_, err := Open(vfs.Default, dir, "demo", Options{})
		var ie *IntegrityError
		if !errors.As(err, &ie) {
			t.Fatalf("flip at %d: err = %v, want *IntegrityError", off, err)
		}
		if ie.Stream != "demo" || ie.Chunk != 0 || ie.Offset < 0 || ie.Offset > int64(len(good)) {
			t.Fatalf("flip at %d: error does not say where: %+v", off, ie)
		}
	}
	// A flip in the only valid header slot leaves no header at all.
	bad := append([]byte(nil), good...)
	bad[slotOffset(1)+20] ^= 1
	dir := t.TempDir()
	os.WriteFile(ChunkPath(dir, 0), bad, 0o644)
	_, err := Open(vfs.Default, dir, "demo", Options{})
	if !errors.Is(err, ErrChunkHeader) {
		t.Fatalf("corrupt header: %v", err)
	}
	// A committed byte cut off is missing data, not a torn tail.
	os.WriteFile(ChunkPath(dir, 0), good[:len(good)-1], 0o644)
	if _, err := Open(vfs.Default, dir, "demo", Options{}); !errors.Is(err, ErrChunkTruncated) {
		t.Fatalf("truncated committed range: %v", err)
	}
}

func TestMissingChunkIsIntegrityError(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, vfs.Default, dir, Options{ChunkCapacity: 256})
	for _, r := range sampleRecords() {
		appendCommit(t, l, r)
	}
	l.Close()
	os.Remove(ChunkPath(dir, 2))
	_, err := Open(vfs.Default, dir, "demo", Options{})
	var ie *IntegrityError
	if !errors.As(err, &ie) || !errors.Is(err, ErrChunkMissing) || ie.Chunk != 2 {
		t.Fatalf("err = %v, want missing chunk 2", err)
	}
}

// TestReplayFromSnapshotEqualsFullReplay is the property behind snapshots:
// for random histories, random chunk sizes and snapshots at random points,
// snapshot + tail rebuilds the same index as replaying every chunk, and the
// same as folding the records in memory.
func TestReplayFromSnapshotEqualsFullReplay(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			dir := t.TempDir()
			opts := Options{ChunkCapacity: int64(200 + rng.IntN(3000))}
			l := openLog(t, vfs.Default, dir, opts)
			var recs []Record
			n := 50 + rng.IntN(400)
			snaps := 0
			for i := range n {
				r := randomRecord(rng, i)
				recs = append(recs, r)
				if _, err := l.Append(r); err != nil {
					t.Fatal(err)
				}
				if rng.IntN(5) == 0 {
					if err := l.Commit(); err != nil {
						t.Fatal(err)
					}
				}
				if rng.IntN(60) == 0 {
					id, err := l.Snapshot()
					if err != nil {
						t.Fatal(err)
					}
					snaps++
					recs = append(recs, Record{Type: SnapshotMarker, Payload: SnapshotMarkerPayload{SnapshotID: id}})
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			want := fold(recs)
			withSnap := openLog(t, vfs.Default, dir, opts)
			got := withSnap.Index()
			if snaps > 0 && withSnap.snap.ID != uint64(snaps) {
				t.Fatalf("open loaded snapshot %d, want the newest, %d", withSnap.snap.ID, snaps)
			}
			withSnap.Close()
			if !got.Equal(want) {
				t.Fatalf("snapshot+tail (%d snapshots) differs from folding:\n got %+v\nwant %+v", snaps, got, want)
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), snapshotPrefix) {
					os.Remove(filepath.Join(dir, e.Name()))
				}
			}
			full := openLog(t, vfs.Default, dir, opts)
			defer full.Close()
			if !full.Index().Equal(want) {
				t.Fatal("full replay differs from folding")
			}
		})
	}
}

func TestCorruptSnapshotIsSkipped(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, vfs.Default, dir, Options{ChunkCapacity: 512})
	recs := sampleRecords()
	appendCommit(t, l, recs[:8]...)
	id1, _ := l.Snapshot()
	appendCommit(t, l, recs[8:]...)
	id2, err := l.Snapshot()
	if err != nil || id2 != id1+1 {
		t.Fatalf("snapshot ids %d %d: %v", id1, id2, err)
	}
	want := l.Index()
	l.Close()
	path := SnapshotPath(dir, id2)
	b, _ := os.ReadFile(path)
	b[len(b)/2] ^= 1
	os.WriteFile(path, b, 0o644)
	var logs bytes.Buffer
	l2 := openLog(t, vfs.Default, dir, Options{Logger: slogTo(&logs)})
	defer l2.Close()
	if !l2.Index().Equal(want) {
		t.Fatal("index after skipping the corrupt snapshot differs")
	}
	if !strings.Contains(logs.String(), "manifest_snapshot_skipped") {
		t.Fatalf("no log line about the skipped snapshot: %s", logs.String())
	}
	// The next snapshot never reuses the corrupt file's id.
	if id, _ := l2.Snapshot(); id != id2+1 {
		t.Fatalf("new snapshot id %d, want %d", id, id2+1)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	x := fold(sampleRecords())
	s := &Snapshot{ID: 7, Position: Position{Chunk: 3, Offset: 400}, NextRecord: 99, Index: x}
	got, err := DecodeSnapshot(s.AppendBinary(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != 7 || got.Position != s.Position || got.NextRecord != 99 || !got.Index.Equal(x) {
		t.Fatalf("round trip: %+v", got)
	}
	if !reflect.DeepEqual(got.Index.Segments(), x.Segments()) {
		t.Fatal("segments differ after decode")
	}
	b := s.AppendBinary(nil)
	le.PutUint32(b[8:], 2)
	if _, err := DecodeSnapshot(b); !errors.Is(err, ErrSnapshot) {
		t.Fatalf("bad version accepted: %v", err)
	}
}

func TestNilPayloadLiveIndexMatchesReplay(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, vfs.Default, dir, Options{})
	appendCommit(t, l, Record{Type: SegmentOpened, Segment: 1}, Record{Type: SealSegment, Segment: 1})
	live := l.Index()
	l.Close()
	if s, _ := live.Get(1); !s.Sealed || !s.InTier0 {
		t.Fatalf("nil payload not applied as the zero payload: %+v", s)
	}
	l = openLog(t, vfs.Default, dir, Options{})
	defer l.Close()
	if !l.Index().Equal(live) {
		t.Fatal("replayed index differs from live index")
	}
}
