package segment

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/bop-aof/aof/internal/vfs"
)

var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the committed fuzz seed corpus under testdata/fuzz")

// FuzzDecodeRecord: any bytes either fail to decode or decode to a record
// that encodes back to exactly the bytes it was read from.
func FuzzDecodeRecord(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		e, n, err := DecodeRecord(data)
		if err != nil {
			return
		}
		if n < RecordHeaderSize || n > len(data) {
			t.Fatalf("decoded size %d of %d bytes", n, len(data))
		}
		again := appendRecord(nil, e.Offset, e.AppendMS, e.ExtID, e.Flags, e.Payload)
		if !bytes.Equal(again, data[:n]) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", again, data[:n])
		}
	})
}

// FuzzRecover: Recover on any file content never panics; it either refuses
// with an error or returns a writer positioned after records a reader
// reads back in full, and the segment can be extended and sealed.
//
// Each run touches the file system, so keep the minimiser short or it holds
// the fuzzer for a minute per new input:
//
//	go test -run x -fuzz '^FuzzRecover$' -fuzztime 30s -fuzzminimizetime 2s ./tiers/segment
func FuzzRecover(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, FileName(1))
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		fsys := noSyncFS{vfs.Default}
		w, rep, err := Recover(fsys, dir, 1, testStream)
		if err != nil {
			return
		}
		defer w.Close()
		if rep.DurableBytes+rep.CutBytes != int64(len(data)) {
			t.Fatalf("kept %d + cut %d bytes of %d", rep.DurableBytes, rep.CutBytes, len(data))
		}
		first, err := w.Append([]Record{{Payload: []byte("after recovery"), ExtID: 9}}, 1)
		if err != nil || first != rep.NextOffset {
			t.Fatalf("append after recovery: %d, %v; want offset %d", first, err, rep.NextOffset)
		}
		if _, err := w.Seal(); err != nil {
			t.Fatalf("seal after recovery: %v", err)
		}
		if _, err := Verify(fsys, path); err != nil {
			t.Fatalf("verify after recovery: %v", err)
		}
		r, err := Open(fsys, path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var n uint64
		for {
			_, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("read after recovery: %v", err)
			}
			n++
		}
		if n != rep.Records+1 {
			t.Fatalf("read %d records, want %d", n, rep.Records+1)
		}
	})
}

// noSyncFS skips fsync: fuzzing exercises parsing and recovery logic, and
// thousands of fsyncs a second would starve the fuzzer (its minimiser
// stalls for minutes on a slow disk).
type noSyncFS struct{ vfs.FS }

func (n noSyncFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	f, err := n.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}

func (noSyncFS) SyncDir(string) error { return nil }

type noSyncFile struct{ vfs.File }

func (noSyncFile) Sync() error { return nil }

// fuzzSeeds builds the seed inputs: valid records and segments, and torn,
// zero-filled and corrupted variants of them.
func fuzzSeeds(t *testing.T) map[string][][]byte {
	dir := t.TempDir()
	w, err := Create(vfs.Default, dir, testHeader(1, 10))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, w, 6, true)
	active, _ := os.ReadFile(filepath.Join(dir, FileName(1)))
	if _, err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	sealed, _ := os.ReadFile(filepath.Join(dir, FileName(1)))
	rec := appendRecord(nil, 42, 1_700_000_000_000, 7, 0, []byte("hello segment"))
	corrupt := bytes.Clone(active)
	corrupt[HeaderSize+RecordHeaderSize+40] ^= 1
	return map[string][][]byte{
		"FuzzDecodeRecord": {
			rec,
			appendRecord(nil, 0, 0, 0, 0, nil),
			rec[:len(rec)-1],
			append(bytes.Clone(rec), 0xff, 0xfe),
			active[HeaderSize:],
		},
		"FuzzRecover": {
			active,
			sealed,
			active[:HeaderSize],
			active[:len(active)-5],
			sealed[:len(sealed)-40],
			append(bytes.Clone(active), make([]byte, 64)...),
			corrupt,
		},
	}
}

func corpusFile(data []byte) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", data)
}

// TestFuzzSeedCorpusIsCurrent keeps the committed seeds in step with the
// format: a format change that leaves stale seeds fails here. Regenerate
// with -update-fuzz-seeds.
func TestFuzzSeedCorpusIsCurrent(t *testing.T) {
	for name, seeds := range fuzzSeeds(t) {
		for i, seed := range seeds {
			path := filepath.Join("testdata", "fuzz", name, fmt.Sprintf("seed-%02d", i))
			want := corpusFile(seed)
			if *updateFuzzSeeds {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("seed %s is missing or stale (err %v); run go test -run TestFuzzSeedCorpusIsCurrent -update-fuzz-seeds", path, err)
			}
		}
	}
}
