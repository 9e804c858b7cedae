package segment

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/tiers/backpressure"
)

func isSeg(name string) bool { return strings.HasSuffix(name, ".seg") }

// recoverAndCheck reopens segment id and checks that exactly the records
// below wantNext are there, readable, and that the writer goes on from them.
func recoverAndCheck(t *testing.T, dir string, id, wantNext uint64) RecoveryReport {
	t.Helper()
	w, rep, err := Recover(vfs.Default, dir, id, testStream)
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	if w.NextOffset() != wantNext || w.DurableOffset() != wantNext || rep.NextOffset != wantNext {
		t.Fatalf("recovered next offset %d (durable %d, report %d), want %d", w.NextOffset(), w.DurableOffset(), rep.NextOffset, wantNext)
	}
	appendN(t, w, 2, false)
	if _, err := w.Seal(); err != nil {
		t.Fatalf("seal after recovery: %v", err)
	}
	w.Close()
	path := filepath.Join(dir, FileName(id))
	if _, err := Verify(vfs.Default, path); err != nil {
		t.Fatalf("verify after recovery: %v", err)
	}
	got := readAll(t, vfs.Default, path)
	base := got[0].Offset
	if uint64(len(got)) != wantNext+2-base {
		t.Fatalf("read %d records after recovery, want %d", len(got), wantNext+2-base)
	}
	return rep
}

// TestTornLastRecordAtEveryByte: the group commit of the last record is
// torn after every possible number of bytes; recovery keeps exactly the
// records whose Sync returned and cuts the rest.
func TestTornLastRecordAtEveryByte(t *testing.T) {
	const synced = 6 // records 0-5 are durable; record 6 is being committed
	lastLen := RecordHeaderSize + len(payloadFor(synced))
	for short := 0; short < lastLen; short++ {
		dir := t.TempDir()
		ffs := vfs.NewFaultFS(vfs.Default)
		w, err := Create(ffs, dir, testHeader(1, 0))
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, w, synced, true)
		durable := w.DurableBytes()
		ffs.Inject(vfs.Fault{Op: vfs.OpWrite, Match: isSeg, ShortBytes: short})
		if _, err := w.Append([]Record{{Payload: payloadFor(synced), ExtID: extFor(synced)}}, 1); err != nil {
			t.Fatal(err)
		}
		err = w.Sync()
		if !backpressure.Is(err, backpressure.Flush) || !errors.Is(err, vfs.ErrInjected) {
			t.Fatalf("short write of %d bytes: sync = %v, want Flush backpressure wrapping the fault", short, err)
		}
		if w.DurableOffset() != synced || w.DurableBytes() != durable {
			t.Fatalf("failed sync moved the watermark to %d (%d bytes)", w.DurableOffset(), w.DurableBytes())
		}
		w.Close()
		rep := recoverAndCheck(t, dir, 1, synced)
		if rep.CutBytes != int64(short) || rep.Records != synced {
			t.Fatalf("cut at %d of %d: report %+v", short, lastLen, rep)
		}
		if short > 0 && rep.CutRecords != 1 {
			t.Fatalf("cut at %d: %d cut records, want 1", short, rep.CutRecords)
		}
	}
}

// TestTruncatedCopyAtEveryByte cuts a copy of a segment at every byte of
// its last two records (the crash model without fault injection: the file
// simply ends early) and at the header boundary.
func TestTruncatedCopyAtEveryByte(t *testing.T) {
	src := t.TempDir()
	w, err := Create(vfs.Default, src, testHeader(5, 40))
	if err != nil {
		t.Fatal(err)
	}
	var ends []int64 // ends[i] = file size once record 40+i is written
	for range 8 {
		appendN(t, w, 1, true)
		ends = append(ends, w.DurableBytes())
	}
	w.Close()
	path := filepath.Join(src, FileName(5))
	for cut := ends[5]; cut <= ends[7]; cut++ {
		dir := t.TempDir()
		copyTruncated(t, path, dir, cut)
		complete := uint64(0)
		for _, e := range ends {
			if e <= cut {
				complete++
			}
		}
		rep := recoverAndCheck(t, dir, 5, 40+complete)
		if want := cut - ends[complete-1]; rep.CutBytes != want {
			t.Fatalf("cut at %d: cut %d bytes, want %d", cut, rep.CutBytes, want)
		}
	}
	// A file cut inside its header never held an acknowledged record; it is
	// reported, not silently rewritten.
	dir := t.TempDir()
	copyTruncated(t, path, dir, HeaderSize-1)
	if _, _, err := Recover(vfs.Default, dir, 5, testStream); !isCorruptionAt(err, 0) {
		t.Fatalf("recover of a torn header: %v, want CorruptionError at 0", err)
	}
}

func isCorruptionAt(err error, off int64) bool {
	var ce *CorruptionError
	return errors.As(err, &ce) && ce.Offset == off
}

// TestZeroFilledTailIsCut: some file systems leave zeros where an unsynced
// append was; zeros never pass as records.
func TestZeroFilledTailIsCut(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(vfs.Default, dir, testHeader(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, w, 5, false)
	w.Close()
	f, _ := os.OpenFile(filepath.Join(dir, FileName(1)), os.O_WRONLY|os.O_APPEND, 0)
	f.Write(make([]byte, 4096))
	f.Close()
	if rep := recoverAndCheck(t, dir, 1, 5); rep.CutBytes != 4096 {
		t.Fatalf("cut %d bytes, want 4096", rep.CutBytes)
	}
}

// TestFlippedByteInMiddleRecord: damage before the tail is corruption at
// the damaged record, for Recover, Reader and Verify alike, and Recover
// leaves the file as it was.
func TestFlippedByteInMiddleRecord(t *testing.T) {
	src := t.TempDir()
	w, err := Create(vfs.Default, src, testHeader(2, 0))
	if err != nil {
		t.Fatal(err)
	}
	var starts []int64
	for range 10 {
		starts = append(starts, w.DurableBytes())
		appendN(t, w, 1, true)
	}
	activeSize := w.DurableBytes()
	if _, err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	sealedPath := filepath.Join(src, FileName(2))
	const victim = 4
	cases := []struct {
		name  string
		delta int64 // byte within the victim record
	}{
		{"payload_len", 1},
		{"crc", 5},
		{"logical_offset", 8},
		{"append_ts", 17},
		{"ext_id", 24},
		{"flags", 33},
		{"payload", RecordHeaderSize + 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			at := starts[victim] + c.delta
			for _, sealed := range []bool{false, true} {
				dir := t.TempDir()
				size := activeSize
				if sealed {
					size = -1
				}
				path := copyTruncated(t, sealedPath, dir, size)
				raw, _ := os.ReadFile(path)
				raw[at] ^= 0x04
				os.WriteFile(path, raw, 0o644)

				r, err := Open(vfs.Default, path)
				if err != nil {
					t.Fatal(err)
				}
				if !sealed {
					r.SetLimit(activeSize) // as a tail reader given the durable watermark
				}
				n := 0
				for ; err == nil; n++ {
					_, err = r.Next()
				}
				r.Close()
				if !isCorruptionAt(err, starts[victim]) || n != victim+1 {
					t.Fatalf("sealed=%v: reader stopped after %d records with %v, want CorruptionError at %d", sealed, n-1, err, starts[victim])
				}
				if sealed {
					if _, err := Verify(vfs.Default, path); !isCorruptionAt(err, starts[victim]) {
						t.Fatalf("verify: %v, want CorruptionError at %d", err, starts[victim])
					}
					continue
				}
				_, _, err = Recover(vfs.Default, dir, 2, testStream)
				var ce *CorruptionError
				if !errors.As(err, &ce) || ce.Offset != starts[victim] || ce.Segment != 2 || ce.Stream != testStream {
					t.Fatalf("recover: %v, want CorruptionError{orders, 2, %d}", err, starts[victim])
				}
				after, _ := os.ReadFile(path)
				if !slices.Equal(after, raw) {
					t.Fatal("recover changed a corrupt segment")
				}
			}
		})
	}
}

func TestVerifyDetectsFooterLies(t *testing.T) {
	src := t.TempDir()
	w, err := Create(vfs.Default, src, testHeader(2, 0))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, w, 10, false)
	ft, err := w.Seal()
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	for _, lie := range []func(*Footer){
		func(f *Footer) { f.RecordCount++ },
		func(f *Footer) { f.CRC64 ^= 1 },
		func(f *Footer) { f.LastExtID++ },
		func(f *Footer) { f.LastOffset-- },
	} {
		dir := t.TempDir()
		path := copyTruncated(t, filepath.Join(src, FileName(2)), dir, -1)
		raw, _ := os.ReadFile(path)
		bad := ft
		lie(&bad)
		encodeFooter(raw[ft.DurableBytes:], bad)
		os.WriteFile(path, raw, 0o644)
		if _, err := Verify(vfs.Default, path); !isCorruptionAt(err, int64(ft.DurableBytes)) {
			t.Errorf("footer %+v: verify = %v, want CorruptionError at the footer", bad, err)
		}
	}
}

// TestFailedFsyncIsFlushBackpressure: the watermark never moves past a
// failed fsync, and the writer refuses work until recovered.
func TestFailedFsyncIsFlushBackpressure(t *testing.T) {
	dir := t.TempDir()
	ffs := vfs.NewFaultFS(vfs.Default)
	w, err := Create(ffs, dir, testHeader(1, 0), WithStream(testStream))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, w, 3, false)
	durOff, durBytes := w.DurableOffset(), w.DurableBytes()
	ffs.Inject(vfs.Fault{Op: vfs.OpSync, Match: isSeg, Times: 1})
	appendN2 := func() error {
		_, err := w.Append([]Record{{Payload: payloadFor(w.NextOffset()), ExtID: extFor(w.NextOffset())}}, 1)
		return err
	}
	if err := appendN2(); err != nil {
		t.Fatal(err)
	}
	err = w.Sync()
	var bp *backpressure.Error
	if !errors.As(err, &bp) || bp.Kind != backpressure.Flush || bp.Stream != testStream || !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("sync = %v, want Flush backpressure for %s wrapping the fsync error", err, testStream)
	}
	if w.DurableOffset() != durOff || w.DurableBytes() != durBytes || w.DurableExtID() != extFor(2) {
		t.Fatalf("failed fsync moved the watermark: %d/%d", w.DurableOffset(), w.DurableBytes())
	}
	// The fault fired once, but the writer stays failed: the kernel may have
	// dropped the pages a later fsync would claim to have written.
	if err := appendN2(); !backpressure.Is(err, backpressure.Flush) {
		t.Fatalf("append after failed fsync = %v, want Flush backpressure", err)
	}
	if err := w.Sync(); !backpressure.Is(err, backpressure.Flush) {
		t.Fatalf("second sync = %v, want Flush backpressure", err)
	}
	if _, err := w.Seal(); !backpressure.Is(err, backpressure.Flush) {
		t.Fatalf("seal = %v, want Flush backpressure", err)
	}
	if w.DurableOffset() != durOff {
		t.Fatal("watermark moved")
	}
	w.Close()
	// What reached the page cache may survive; everything acknowledged must.
	w2, rep, err := Recover(vfs.Default, dir, 1, testStream)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if rep.Records < durOff {
		t.Fatalf("recovered %d records, %d were durable", rep.Records, durOff)
	}
}

// TestDiskFull: ENOSPC part-way through a group commit is a clear error and
// the file recovers to the durable records without corruption.
func TestDiskFull(t *testing.T) {
	dir := t.TempDir()
	ffs := vfs.NewFaultFS(vfs.Default)
	w, err := Create(ffs, dir, testHeader(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, w, 20, false)
	ffs.Inject(vfs.Fault{Op: vfs.OpWrite, Match: isSeg, Err: vfs.ENOSPC, ShortBytes: 1000})
	batch := make([]Record, 50)
	for i := range batch {
		off := uint64(20 + i)
		batch[i] = Record{Payload: payloadFor(off), ExtID: extFor(off)}
	}
	if _, err := w.Append(batch, 1); err != nil {
		t.Fatal(err)
	}
	err = w.Sync()
	if !errors.Is(err, syscall.ENOSPC) || !backpressure.Is(err, backpressure.Flush) {
		t.Fatalf("sync on a full disk = %v, want Flush backpressure wrapping ENOSPC", err)
	}
	if !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), FileName(1)) {
		t.Fatalf("error %q does not say what and where", err)
	}
	if w.DurableOffset() != 20 {
		t.Fatalf("watermark %d after ENOSPC, want 20", w.DurableOffset())
	}
	w.Close()
	// The 1000 bytes that made it hold some whole records of the failed
	// commit; they were never acknowledged, keeping them is harmless.
	w2, rep, err := Recover(vfs.Default, dir, 1, testStream)
	if err != nil {
		t.Fatalf("recover after ENOSPC: %v", err)
	}
	defer w2.Close()
	if rep.Records < 20 || rep.CutBytes == 0 || rep.DurableBytes+rep.CutBytes != int64(durableBytesOf(t, dir))+rep.CutBytes {
		t.Fatalf("report %+v", rep)
	}
	got := readAll(t, vfs.Default, filepath.Join(dir, FileName(1)))
	if uint64(len(got)) != rep.Records {
		t.Fatalf("read %d records, report says %d", len(got), rep.Records)
	}
}

func durableBytesOf(t *testing.T, dir string) int64 {
	st, err := os.Stat(filepath.Join(dir, FileName(1)))
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestTornFooterReopens: a crash while writing the footer leaves an
// unsealed segment whose records are intact; it is recovered and sealed again.
func TestTornFooterReopens(t *testing.T) {
	dir := t.TempDir()
	ffs := vfs.NewFaultFS(vfs.Default)
	w, err := Create(ffs, dir, testHeader(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, w, 10, false)
	ffs.Inject(vfs.Fault{Op: vfs.OpWrite, Match: isSeg, ShortBytes: 50})
	if _, err := w.Seal(); !backpressure.Is(err, backpressure.Flush) {
		t.Fatalf("seal with torn footer = %v, want Flush backpressure", err)
	}
	w.Close()
	if _, ok, _ := ReadCurrentSealed(vfs.Default, dir); ok {
		t.Fatal("current.sealed written although the footer failed")
	}
	rep := recoverAndCheck(t, dir, 1, 10)
	if rep.CutBytes != 50 {
		t.Fatalf("cut %d bytes, want the 50 footer bytes", rep.CutBytes)
	}
}

// TestCrashBetweenFooterAndCurrentSealed: the footer is durable but
// current.sealed was not updated; Recover notices the seal and completes it.
func TestCrashBetweenFooterAndCurrentSealed(t *testing.T) {
	dir := t.TempDir()
	ffs := vfs.NewFaultFS(vfs.Default)
	w, err := Create(ffs, dir, testHeader(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, w, 10, false)
	ffs.Inject(vfs.Fault{Op: vfs.OpRename})
	ft, err := w.Seal()
	if err == nil {
		t.Fatal("seal reported success although current.sealed failed")
	}
	w.Close()
	_, rep, err := Recover(vfs.Default, dir, 1, testStream)
	if !errors.Is(err, ErrSealed) || !rep.Sealed || rep.Footer != ft {
		t.Fatalf("recover of a sealed segment = %v, report %+v", err, rep)
	}
	if id, ok, _ := ReadCurrentSealed(vfs.Default, dir); !ok || id != 1 {
		t.Fatalf("current.sealed = %d %v after recover, want 1", id, ok)
	}
	if _, err := Verify(vfs.Default, filepath.Join(dir, FileName(1))); err != nil {
		t.Fatal(err)
	}
}

// TestRestartAfterSealOpensOnlyTheTail: a restart finds the active segment
// from current.sealed and the directory listing; no sealed segment is opened.
func TestRestartAfterSealOpensOnlyTheTail(t *testing.T) {
	dir := t.TempDir()
	next := uint64(0)
	for id := uint64(1); id <= 3; id++ {
		w, err := Create(vfs.Default, dir, testHeader(id, next))
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, w, 25, false)
		next = w.NextOffset()
		if id < 3 {
			if _, err := w.Seal(); err != nil {
				t.Fatal(err)
			}
		}
		w.Close() // segment 3 is left unsealed, as after a crash
	}

	cfs := &countingFS{FS: vfs.Default}
	ids, err := ListSegments(cfs, dir)
	if err != nil || !slices.Equal(ids, []uint64{1, 2, 3}) {
		t.Fatalf("list = %v, %v", ids, err)
	}
	sealed, ok, err := ReadCurrentSealed(cfs, dir)
	if err != nil || !ok || sealed != 2 {
		t.Fatalf("current.sealed = %d %v %v, want 2", sealed, ok, err)
	}
	if _, _, err := Recover(cfs, dir, 2, testStream); !errors.Is(err, ErrSealed) {
		t.Fatalf("recover of sealed segment 2 = %v, want ErrSealed", err)
	}
	w, rep, err := Recover(cfs, dir, 3, testStream)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if rep.LastSealed != 2 || !rep.LastSealedKnown || w.NextOffset() != 75 || rep.CutBytes != 0 {
		t.Fatalf("report %+v, next %d", rep, w.NextOffset())
	}
	for _, name := range cfs.opened {
		if name == FileName(1) || name == FileName(2) {
			t.Fatalf("restart opened sealed segment %s (opened: %v)", name, cfs.opened)
		}
	}
	if !slices.Contains(cfs.opened, FileName(3)) {
		t.Fatalf("restart did not open the tail (opened: %v)", cfs.opened)
	}
}

// TestCreateIsAtomicAtEveryStep: Create fails at each of its steps (open of
// the temp file, a torn or failed header write, its fsync, the rename, the
// directory fsync, the reopen), once as an error Create cleans up after and
// once as a crash, modelled by also failing every Remove so that nothing
// after the failed step happens. Either way the directory holds no segment
// file or one with a complete header, never a torn one; ListSegments never
// lists the temp file; after the restart Recover or RemoveTempFiles clears
// it and the segment can be created again.
func TestCreateIsAtomicAtEveryStep(t *testing.T) {
	const id = 7
	isTemp := func(name string) bool { return strings.HasSuffix(name, TempFileName(id)) }
	isFinal := func(name string) bool { return strings.HasSuffix(name, FileName(id)) }
	steps := []struct {
		name      string
		fault     vfs.Fault
		renamedOK bool // the rename happened before the failure
	}{
		{"open temp", vfs.Fault{Op: vfs.OpOpen, Match: isTemp}, false},
		{"write header nothing", vfs.Fault{Op: vfs.OpWrite, Match: isTemp}, false},
		{"write header torn", vfs.Fault{Op: vfs.OpWrite, Match: isTemp, ShortBytes: HeaderSize / 2}, false},
		{"fsync temp", vfs.Fault{Op: vfs.OpSync, Match: isTemp}, false},
		{"rename", vfs.Fault{Op: vfs.OpRename, Match: isFinal}, false},
		{"fsync dir", vfs.Fault{Op: vfs.OpSyncDir}, true},
		{"reopen", vfs.Fault{Op: vfs.OpOpen, Match: isFinal}, true},
	}
	for _, st := range steps {
		for _, crash := range []bool{false, true} {
			name := st.name + "/error"
			if crash {
				name = st.name + "/crash"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				ffs := vfs.NewFaultFS(vfs.Default)
				ffs.Inject(st.fault)
				if crash {
					ffs.Inject(vfs.Fault{Op: vfs.OpRemove})
				}
				w, err := Create(ffs, dir, testHeader(id, 100), WithStream(testStream))
				if err == nil {
					w.Close()
					t.Fatalf("create succeeded with a failing %s", st.name)
				}
				if !errors.Is(err, vfs.ErrInjected) {
					t.Fatalf("create = %v, want the injected fault", err)
				}
				ffs.Reset()

				// The restart: what is on disk now is what a crash left.
				ids, err := ListSegments(vfs.Default, dir)
				if err != nil {
					t.Fatal(err)
				}
				path := filepath.Join(dir, FileName(id))
				_, statErr := os.Stat(path)
				exists := statErr == nil
				if exists != (crash && st.renamedOK) {
					t.Fatalf("segment file exists = %v after a %s at %s", exists, name, st.name)
				}
				if exists != slices.Equal(ids, []uint64{id}) || !exists && len(ids) != 0 {
					t.Fatalf("ListSegments = %v with segment file present = %v", ids, exists)
				}
				_, tmpErr := os.Stat(filepath.Join(dir, TempFileName(id)))
				tmpLeft := tmpErr == nil
				if !crash && tmpLeft {
					t.Fatal("a failed create left its temp file behind")
				}
				if exists {
					// Complete and durable header: Recover reopens it empty
					// and clears any temp file.
					w, rep, err := Recover(vfs.Default, dir, id, testStream)
					if err != nil {
						t.Fatalf("recover the created segment: %v", err)
					}
					if rep.Header != testHeader(id, 100) || rep.Records != 0 || rep.CutBytes != 0 || w.NextOffset() != 100 {
						t.Fatalf("recovered %+v, want an empty segment with the written header", rep)
					}
					w.Close()
					if _, err := Create(vfs.Default, dir, testHeader(id, 100)); !errors.Is(err, os.ErrExist) {
						t.Fatalf("create over an existing segment = %v, want os.ErrExist", err)
					}
					return
				}
				n, err := RemoveTempFiles(vfs.Default, dir)
				if err != nil || n != map[bool]int{true: 1, false: 0}[tmpLeft] {
					t.Fatalf("RemoveTempFiles = %d, %v with temp file left = %v", n, err, tmpLeft)
				}
				if tmpLeft {
					// Create also copes without the cleanup: put the
					// leftover back and create over it.
					if err := os.WriteFile(filepath.Join(dir, TempFileName(id)), []byte("torn"), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				w, err = Create(vfs.Default, dir, testHeader(id, 100))
				if err != nil {
					t.Fatalf("create again after the restart: %v", err)
				}
				appendN(t, w, 3, true)
				w.Close()
				recoverAndCheck(t, dir, id, 103)
			})
		}
	}
}

// TestRecoverRemovesTempFiles: a temp file of a crashed Create of the next
// segment is removed when the tail is recovered; other files stay.
func TestRecoverRemovesTempFiles(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(vfs.Default, dir, testHeader(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, w, 2, true)
	w.Close()
	for _, name := range []string{TempFileName(2), "notes.tmp", "x.seg.tmp"} {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, 10), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if ids, _ := ListSegments(vfs.Default, dir); !slices.Equal(ids, []uint64{1}) {
		t.Fatalf("ListSegments = %v, want [1]", ids)
	}
	w, rep, err := Recover(vfs.Default, dir, 1, testStream)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if rep.TempFilesRemoved != 1 {
		t.Fatalf("TempFilesRemoved = %d, want 1", rep.TempFilesRemoved)
	}
	if _, err := os.Stat(filepath.Join(dir, TempFileName(2))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temp file of segment 2 still there: %v", err)
	}
	for _, name := range []string{"notes.tmp", "x.seg.tmp"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Fatalf("Recover removed %s, which is not a segment temp file: %v", name, err)
		}
	}
}
