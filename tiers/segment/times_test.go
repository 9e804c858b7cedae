package segment

import (
	"path/filepath"
	"testing"

	"github.com/bop-aof/aof/internal/vfs"
)

// The writer knows the append times of its first and last record: all
// appended ones, the durable ones after a Sync, and after Recover the
// ones of the records it kept.
func TestWriterTracksFirstAndLastRecordBounds(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(vfs.Default, dir, testHeader(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	if b := w.Bounds(); b != (Bounds{}) {
		t.Fatalf("empty writer: bounds %+v", b)
	}
	appendN(t, w, 5, false) // offsets 0-4 at 1_700_000_000_000+offset
	if _, err := w.Append([]Record{{Payload: []byte("x"), ExtID: extFor(5)}}, 1_700_000_009_000); err != nil {
		t.Fatal(err)
	}
	all := Bounds{FirstExtID: extFor(0), LastExtID: extFor(5), FirstAppendMS: 1_700_000_000_000, LastAppendMS: 1_700_000_009_000}
	if b := w.Bounds(); b != all {
		t.Fatalf("appended bounds %+v, want %+v", b, all)
	}
	synced := Bounds{FirstExtID: extFor(0), LastExtID: extFor(4), FirstAppendMS: 1_700_000_000_000, LastAppendMS: 1_700_000_000_004}
	if b := w.DurableBounds(); b != synced {
		t.Fatalf("durable bounds before sync %+v, want the synced records' %+v", b, synced)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if b := w.DurableBounds(); b != all {
		t.Fatalf("durable bounds after sync %+v", b)
	}
	w.Close()
	w, _, err = Recover(vfs.Default, dir, 1, testStream)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if b := w.Bounds(); b != all {
		t.Fatalf("recovered bounds %+v", b)
	}
}

// ReadBounds finds from a sealed file what the writer knew at seal.
func TestReadBoundsOfSealedSegment(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(vfs.Default, dir, testHeader(2, 100))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, w, 30, false)
	if _, err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	want := w.Bounds()
	w.Close()
	got, err := ReadBounds(vfs.Default, filepath.Join(dir, FileName(2)))
	if err != nil || got != want || want.LastAppendMS != 1_700_000_000_129 {
		t.Fatalf("ReadBounds = %+v, %v; writer had %+v", got, err, want)
	}

	e, err := Create(vfs.Default, dir, testHeader(3, 130))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Seal(); err != nil {
		t.Fatal(err)
	}
	e.Close()
	if got, err := ReadBounds(vfs.Default, filepath.Join(dir, FileName(3))); err != nil || got != (Bounds{}) {
		t.Fatalf("empty segment: %+v, %v", got, err)
	}
}
