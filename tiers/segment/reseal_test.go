package segment

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/bop-aof/aof/internal/vfs"
)

// TestResealRestoresACutFooter: an older store cut the footer of a segment
// after current.sealed named it (a failed manifest commit followed by an
// append). Recover refuses that segment and ReadFooter fails; Reseal
// writes the footer again over the same records.
func TestResealRestoresACutFooter(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(vfs.Default, dir, testHeader(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, w, 10, true)
	want, err := w.Seal()
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	path := filepath.Join(dir, FileName(1))
	if err := os.Truncate(path, int64(want.DurableBytes)); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFooter(vfs.Default, path); !errors.Is(err, ErrNotSealed) {
		t.Fatalf("read footer of the cut segment: %v, want ErrNotSealed", err)
	}
	if _, _, err := Recover(vfs.Default, dir, 1, testStream); !errors.Is(err, ErrSealed) {
		t.Fatalf("recover of a segment current.sealed names: %v, want ErrSealed", err)
	}

	got, rep, err := Reseal(vfs.Default, dir, 1, testStream)
	if err != nil {
		t.Fatal(err)
	}
	if got != want || rep.Records != 10 || !rep.Sealed {
		t.Fatalf("reseal footer %+v report %+v, want footer %+v over 10 records", got, rep, want)
	}
	if _, err := Verify(vfs.Default, path); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Reseal(vfs.Default, dir, 1, testStream); !errors.Is(err, ErrSealed) {
		t.Fatalf("reseal of a sealed segment: %v, want ErrSealed", err)
	}
}
