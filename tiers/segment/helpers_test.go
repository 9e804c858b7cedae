package segment

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/bop-aof/aof/internal/vfs"
)

const testStream = "orders"

// payloadFor is the payload the tests store at a logical offset: its length
// varies (0 to 96 bytes) and its bytes depend on the offset, so a record
// read back at the wrong place is noticed.
func payloadFor(off uint64) []byte {
	p := make([]byte, int(off*37%97))
	for i := range p {
		p[i] = byte(off*31 + uint64(i))
	}
	return p
}

func extFor(off uint64) uint64 { return 1000 + off }

func testHeader(id, base uint64) Header {
	return Header{StreamID: 7, SegmentID: id, BaseOffset: base, CreatedMS: 1_700_000_000_000, ExtID: extFor(base)}
}

// appendN appends records for offsets [w.NextOffset(), +n) one Append call
// each and syncs after every record when syncEach, else once at the end.
func appendN(t testing.TB, w *Writer, n int, syncEach bool) {
	t.Helper()
	for range n {
		off := w.NextOffset()
		got, err := w.Append([]Record{{Payload: payloadFor(off), ExtID: extFor(off)}}, 1_700_000_000_000+int64(off))
		if err != nil {
			t.Fatalf("append offset %d: %v", off, err)
		}
		if got != off {
			t.Fatalf("append returned offset %d, want %d", got, off)
		}
		if syncEach {
			if err := w.Sync(); err != nil {
				t.Fatalf("sync offset %d: %v", off, err)
			}
		}
	}
	if !syncEach {
		if err := w.Sync(); err != nil {
			t.Fatalf("sync: %v", err)
		}
	}
}

// readAll reads every record of the segment at path and checks each one
// against payloadFor / extFor.
func readAll(t testing.TB, fsys vfs.FS, path string) []Entry {
	t.Helper()
	r, err := Open(fsys, path)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer r.Close()
	var out []Entry
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("next after %d records: %v", len(out), err)
		}
		checkEntry(t, e)
		out = append(out, e)
	}
}

func checkEntry(t testing.TB, e Entry) {
	t.Helper()
	if !bytes.Equal(e.Payload, payloadFor(e.Offset)) || e.ExtID != extFor(e.Offset) {
		t.Fatalf("record at offset %d: ext %d payload %x, want ext %d payload %x",
			e.Offset, e.ExtID, e.Payload, extFor(e.Offset), payloadFor(e.Offset))
	}
}

// copyDirFile copies one file into a fresh directory, optionally cut to n bytes.
func copyTruncated(t testing.TB, src, dstDir string, n int64) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if n >= 0 && n < int64(len(b)) {
		b = b[:n]
	}
	dst := filepath.Join(dstDir, filepath.Base(src))
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// countingFS records the name of every file opened through it.
type countingFS struct {
	vfs.FS
	mu     sync.Mutex
	opened []string
}

func (c *countingFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	c.mu.Lock()
	c.opened = append(c.opened, filepath.Base(name))
	c.mu.Unlock()
	return c.FS.OpenFile(name, flag, perm)
}
