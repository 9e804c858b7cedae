package segment

import (
	"bytes"
	"errors"
	"hash/crc64"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bop-aof/aof/internal/vfs"
)

func TestCRC64IsNVME(t *testing.T) {
	if got := crc64.Checksum([]byte("123456789"), nvme); got != 0xae8b14860a799888 {
		t.Fatalf("CRC-64/NVME check value = %#x, want 0xae8b14860a799888", got)
	}
	if got := crc64Update(0, []byte("123456789")); got != 0xae8b14860a799888 {
		t.Fatalf("slicing-by-8 check value = %#x, want 0xae8b14860a799888", got)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 5000)
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	for _, n := range []int{0, 1, 7, 8, 9, 63, 64, 65, 2047, 2048, 5000} {
		// Split at an odd point: incremental updates must chain.
		split := n / 3
		got := crc64Update(crc64Update(0, buf[:split]), buf[split:n])
		if want := crc64.Checksum(buf[:n], nvme); got != want {
			t.Errorf("len %d: crc64Update = %#x, stdlib = %#x", n, got, want)
		}
	}
}

func TestFileNames(t *testing.T) {
	cases := []struct {
		name string
		id   uint64
		ok   bool
	}{
		{"00000000000000000000.seg", 0, true},
		{"00000000000000000042.seg", 42, true},
		{"18446744073709551615.seg", 1<<64 - 1, true},
		{"/data/tier0/s/00000000000000000042.seg", 42, true},
		{"0000000000000000042.seg", 0, false},  // 19 digits
		{"00000000000000000042.zst", 0, false}, // other tier
		{"0000000000000000004x.seg", 0, false},
		{"current.sealed", 0, false},
		{"99999999999999999999.seg", 0, false}, // overflows u64
	}
	for _, c := range cases {
		id, ok := ParseFileName(c.name)
		if id != c.id || ok != c.ok {
			t.Errorf("ParseFileName(%q) = %d, %v; want %d, %v", c.name, id, ok, c.id, c.ok)
		}
		if c.ok && filepath.Base(c.name) != FileName(c.id) {
			t.Errorf("FileName(%d) = %q, want %q", c.id, FileName(c.id), filepath.Base(c.name))
		}
	}
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	h := testHeader(3, 500)
	w, err := Create(vfs.Default, dir, h)
	if err != nil {
		t.Fatal(err)
	}
	// A batch, then single appends, with a buffer small enough to force early writes.
	batch := make([]Record, 20)
	for i := range batch {
		off := uint64(500 + i)
		batch[i] = Record{Payload: payloadFor(off), ExtID: extFor(off)}
	}
	first, err := w.Append(batch, 1_700_000_000_500)
	if err != nil || first != 500 {
		t.Fatalf("append batch = %d, %v; want 500", first, err)
	}
	if w.DurableOffset() != 500 || w.NextOffset() != 520 {
		t.Fatalf("before sync: durable %d next %d, want 500 520", w.DurableOffset(), w.NextOffset())
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if w.DurableOffset() != 520 || w.DurableBytes() != w.Size() || w.DurableExtID() != extFor(519) {
		t.Fatalf("after sync: durable offset %d bytes %d size %d ext %d", w.DurableOffset(), w.DurableBytes(), w.Size(), w.DurableExtID())
	}
	appendN(t, w, 80, false)
	ft, err := w.Seal()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := Footer{RecordCount: 100, FirstExtID: extFor(500), LastExtID: extFor(599), FirstOffset: 500, LastOffset: 599, Flags: FlagSealed}
	want.DurableBytes, want.CRC64 = ft.DurableBytes, ft.CRC64
	if ft != want {
		t.Fatalf("footer = %+v, want %+v", ft, want)
	}
	path := filepath.Join(dir, FileName(3))
	raw, _ := os.ReadFile(path)
	if int64(len(raw)) != int64(ft.DurableBytes)+FooterSize {
		t.Fatalf("file is %d bytes, footer says %d + %d", len(raw), ft.DurableBytes, FooterSize)
	}
	if c := crc64.Checksum(raw[:ft.DurableBytes], nvme); c != ft.CRC64 {
		t.Fatalf("footer crc64 %#x, file gives %#x", ft.CRC64, c)
	}

	entries := readAll(t, vfs.Default, path)
	if len(entries) != 100 || entries[0].Offset != 500 || entries[99].Offset != 599 {
		t.Fatalf("read %d entries", len(entries))
	}
	if entries[0].AppendMS != 1_700_000_000_500 {
		t.Fatalf("append time %d", entries[0].AppendMS)
	}
	r, err := Open(vfs.Default, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Header() != h {
		t.Fatalf("header = %+v, want %+v", r.Header(), h)
	}
	if got, ok := r.Footer(); !ok || got != ft {
		t.Fatalf("reader footer = %+v %v", got, ok)
	}
	if got, err := Verify(vfs.Default, path); err != nil || got != ft {
		t.Fatalf("verify = %+v, %v", got, err)
	}
	if got, err := ReadFooter(vfs.Default, path); err != nil || got != ft {
		t.Fatalf("read footer = %+v, %v", got, err)
	}
	mark, ok, err := ReadSealedMark(vfs.Default, dir)
	if err != nil || !ok || mark.SegmentID != 3 || mark.Footer != ft {
		t.Fatalf("current.sealed = %+v %v %v", mark, ok, err)
	}
}

func TestEmptySegmentSeals(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(vfs.Default, dir, testHeader(1, 10))
	if err != nil {
		t.Fatal(err)
	}
	ft, err := w.Seal()
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if ft.RecordCount != 0 || ft.DurableBytes != HeaderSize || ft.FirstOffset != 10 || ft.LastOffset != 10 {
		t.Fatalf("footer = %+v", ft)
	}
	if _, err := Verify(vfs.Default, filepath.Join(dir, FileName(1))); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, vfs.Default, filepath.Join(dir, FileName(1))); len(got) != 0 {
		t.Fatalf("read %d records from an empty segment", len(got))
	}
}

func TestAppendRefusesOversizedBatchWhole(t *testing.T) {
	w, err := Create(vfs.Default, t.TempDir(), testHeader(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	_, err = w.Append([]Record{{Payload: []byte("ok")}, {Payload: make([]byte, MaxPayloadBytes+1)}}, 1)
	if err == nil {
		t.Fatal("append of an oversized payload succeeded")
	}
	if w.NextOffset() != 0 || w.Size() != HeaderSize {
		t.Fatalf("rejected batch left next offset %d size %d", w.NextOffset(), w.Size())
	}
	if _, err := w.Append([]Record{{Payload: []byte("ok")}}, 1); err != nil {
		t.Fatalf("writer unusable after a rejected batch: %v", err)
	}
}

func TestSeekFromAnyOffset(t *testing.T) {
	dir := t.TempDir()
	const base, n = 100, 300
	// A small window makes seeks cross many buffer refills.
	w, err := Create(vfs.Default, dir, testHeader(1, base), WithWriteThreshold(512))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, w, n, false)
	sealed := false
	for _, mode := range []string{"active", "sealed"} {
		if mode == "sealed" && !sealed {
			if _, err := w.Seal(); err != nil {
				t.Fatal(err)
			}
			w.Close()
			sealed = true
		}
		r, err := Open(vfs.Default, filepath.Join(dir, FileName(1)))
		if err != nil {
			t.Fatal(err)
		}
		// Seek forwards and backwards over the same reader.
		order := []uint64{0, base + n, base + n + 5}
		for off := uint64(base); off < base+n; off++ {
			order = append(order, off)
		}
		order = append(order, base+n-1, base+17, base, base+250)
		for _, target := range order {
			if err := r.Seek(target); err != nil {
				t.Fatalf("%s: seek %d: %v", mode, target, err)
			}
			e, err := r.Next()
			wantOff := max(target, base)
			if wantOff >= base+n {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("%s: seek %d past the end: Next = %d, %v; want io.EOF", mode, target, e.Offset, err)
				}
				continue
			}
			if err != nil || e.Offset != wantOff {
				t.Fatalf("%s: seek %d: Next = offset %d, %v; want %d", mode, target, e.Offset, err, wantOff)
			}
			checkEntry(t, e)
			if target == base+250 {
				rest := 1
				for ; ; rest++ {
					if _, err := r.Next(); err != nil {
						if !errors.Is(err, io.EOF) {
							t.Fatal(err)
						}
						break
					}
				}
				if rest != n-250 {
					t.Fatalf("%s: read %d records from offset %d, want %d", mode, rest, target, n-250)
				}
			}
		}
		r.Close()
	}
}

// TestReadersDuringAppendSyncSeal runs readers that follow the durable
// watermark while a writer appends, syncs and finally seals; run under -race.
func TestReadersDuringAppendSyncSeal(t *testing.T) {
	dir := t.TempDir()
	const total = 3000
	w, err := Create(vfs.Default, dir, testHeader(9, 0), WithWriteThreshold(4096))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	path := filepath.Join(dir, FileName(9))
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for reader := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := Open(vfs.Default, path)
			if err != nil {
				errs <- err
				return
			}
			defer r.Close()
			next := uint64(0)
			if reader == 2 {
				// This one starts late in the stream and tails from there.
				next = 1500
				if err := r.Seek(next); err != nil {
					errs <- err
					return
				}
			}
			for next < total {
				durableOffset, durableBytes := w.Durable()
				r.SetLimit(durableBytes)
				e, err := r.Next()
				if errors.Is(err, io.EOF) {
					runtime.Gosched() // wait for the writer's next group commit
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				if e.Offset != next || !bytes.Equal(e.Payload, payloadFor(e.Offset)) {
					errs <- errors.New("reader saw a wrong record")
					return
				}
				if e.Offset >= durableOffset {
					errs <- errors.New("reader saw a record above the durable watermark")
					return
				}
				next++
			}
		}()
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for w.NextOffset() < total {
		k := min(1+rng.IntN(40), total-int(w.NextOffset()))
		batch := make([]Record, k)
		for i := range batch {
			off := w.NextOffset() + uint64(i)
			batch[i] = Record{Payload: payloadFor(off), ExtID: extFor(off)}
		}
		if _, err := w.Append(batch, 1); err != nil {
			t.Fatal(err)
		}
		if err := w.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestCurrentSealed(t *testing.T) {
	dir := t.TempDir()
	if _, ok, err := ReadCurrentSealed(vfs.Default, dir); ok || err != nil {
		t.Fatalf("empty dir: ok %v err %v", ok, err)
	}
	for _, id := range []uint64{1, 42, 7} {
		if err := WriteCurrentSealed(vfs.Default, dir, id); err != nil {
			t.Fatal(err)
		}
		got, ok, err := ReadCurrentSealed(vfs.Default, dir)
		if err != nil || !ok || got != id {
			t.Fatalf("after writing %d: read %d %v %v", id, got, ok, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, CurrentSealedName+".tmp")); !os.IsNotExist(err) {
		t.Fatalf("temp file left behind: %v", err)
	}
	path := filepath.Join(dir, CurrentSealedName)
	raw, _ := os.ReadFile(path)
	for _, at := range []int{0, 9, 16, 50, 92} {
		bad := slices.Clone(raw)
		bad[at] ^= 0x20
		os.WriteFile(path, bad, 0o644)
		if _, _, err := ReadCurrentSealed(vfs.Default, dir); err == nil {
			t.Errorf("flipped byte %d of %s went unnoticed", at, CurrentSealedName)
		}
	}
	os.WriteFile(path, raw[:50], 0o644)
	if _, _, err := ReadCurrentSealed(vfs.Default, dir); err == nil {
		t.Error("truncated current.sealed went unnoticed")
	}
}

func TestCurrentSealedNeverMovesBackOnSeal(t *testing.T) {
	dir := t.TempDir()
	if err := WriteCurrentSealed(vfs.Default, dir, 10); err != nil {
		t.Fatal(err)
	}
	w, err := Create(vfs.Default, dir, testHeader(4, 0))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, w, 3, false)
	if _, err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if id, _, _ := ReadCurrentSealed(vfs.Default, dir); id != 10 {
		t.Fatalf("sealing segment 4 moved current.sealed from 10 to %d", id)
	}
}

func TestAppendAllocatesNothingPerRecord(t *testing.T) {
	w, err := Create(vfs.Default, t.TempDir(), testHeader(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	recs := []Record{{Payload: make([]byte, 1024), ExtID: 1}}
	allocs := testing.AllocsPerRun(2000, func() {
		if _, err := w.Append(recs, 1); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0.01 {
		t.Fatalf("Append allocates %.2f times per record, want 0 amortised", allocs)
	}
}

func TestClosedAndSealedWritersRefuseAppends(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(vfs.Default, dir, testHeader(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append([]Record{{}}, 1); !errors.Is(err, ErrSealed) {
		t.Fatalf("append after seal: %v, want ErrSealed", err)
	}
	w.Close()
	if _, err := w.Append([]Record{{}}, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v, want ErrClosed", err)
	}
	if _, err := Create(vfs.Default, dir, testHeader(1, 0)); err == nil {
		t.Fatal("create over an existing segment succeeded")
	}
}

// blockingSyncFS makes every file fsync wait until release is closed, and
// says on entered when one has started.
type blockingSyncFS struct {
	vfs.FS
	entered chan struct{}
	release chan struct{}
}

func (b *blockingSyncFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	f, err := b.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &blockingSyncFile{File: f, fs: b}, nil
}

type blockingSyncFile struct {
	vfs.File
	fs *blockingSyncFS
}

func (f *blockingSyncFile) Sync() error {
	f.fs.entered <- struct{}{}
	<-f.fs.release
	return f.File.Sync()
}

// TestAppendsContinueDuringFsync: while a group commit's fsync is in
// progress, Append (even one that writes early) returns without waiting for
// it, and when the fsync ends the watermark covers exactly the records
// appended before the Sync, not those appended during it.
func TestAppendsContinueDuringFsync(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(vfs.Default, dir, testHeader(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	bfs := &blockingSyncFS{FS: vfs.Default, entered: make(chan struct{}, 1), release: make(chan struct{})}
	w, _, err = Recover(bfs, dir, 1, testStream, WithWriteThreshold(64))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for range 3 {
		off := w.NextOffset()
		if _, err := w.Append([]Record{{Payload: payloadFor(off), ExtID: extFor(off)}}, 1); err != nil {
			t.Fatal(err)
		}
	}
	synced := make(chan error, 1)
	go func() { synced <- w.Sync() }()
	<-bfs.entered // the fsync of records 0-2 is in progress

	appended := make(chan error, 1)
	go func() {
		for range 4 { // payloads exceed the 64-byte threshold: each Append writes early
			off := w.NextOffset()
			if _, err := w.Append([]Record{{Payload: payloadFor(off), ExtID: extFor(off)}}, 1); err != nil {
				appended <- err
				return
			}
		}
		appended <- nil
	}()
	select {
	case err := <-appended:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		close(bfs.release)
		t.Fatal("Append waited for an fsync in progress")
	}
	if w.DurableOffset() != 0 {
		t.Fatalf("watermark %d before the fsync ended", w.DurableOffset())
	}
	close(bfs.release)
	if err := <-synced; err != nil {
		t.Fatal(err)
	}
	if w.DurableOffset() != 3 || w.DurableExtID() != extFor(2) {
		t.Fatalf("watermark %d (ext %d) after the fsync of records 0-2, want 3 (ext %d)", w.DurableOffset(), w.DurableExtID(), extFor(2))
	}
	if w.NextOffset() != 7 {
		t.Fatalf("next offset %d, want 7", w.NextOffset())
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if w.DurableOffset() != 7 || w.DurableBytes() != w.Size() {
		t.Fatalf("watermark %d/%d after the second sync, want 7/%d", w.DurableOffset(), w.DurableBytes(), w.Size())
	}
}
