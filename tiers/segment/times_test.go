package segment

import (
	"testing"

	"github.com/bop-aof/aof/internal/vfs"
)

// The writer knows the append times of its first and last record: all
// appended ones, the durable ones after a Sync, and after Recover the
// ones of the records it kept.
func TestWriterTracksFirstAndLastAppendTime(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(vfs.Default, dir, testHeader(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	if f, l := w.AppendTimes(); f != 0 || l != 0 {
		t.Fatalf("empty writer: times %d-%d", f, l)
	}
	appendN(t, w, 5, false) // offsets 0-4 at 1_700_000_000_000+offset
	if _, err := w.Append([]Record{{Payload: []byte("x"), ExtID: extFor(5)}}, 1_700_000_009_000); err != nil {
		t.Fatal(err)
	}
	if f, l := w.AppendTimes(); f != 1_700_000_000_000 || l != 1_700_000_009_000 {
		t.Fatalf("appended times %d-%d", f, l)
	}
	if f, l := w.DurableAppendTimes(); f != 1_700_000_000_000 || l != 1_700_000_000_004 {
		t.Fatalf("durable times before sync %d-%d, want the synced records' only", f, l)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if f, l := w.DurableAppendTimes(); f != 1_700_000_000_000 || l != 1_700_000_009_000 {
		t.Fatalf("durable times after sync %d-%d", f, l)
	}
	w.Close()
	w, _, err = Recover(vfs.Default, dir, 1, testStream)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if f, l := w.AppendTimes(); f != 1_700_000_000_000 || l != 1_700_000_009_000 {
		t.Fatalf("recovered times %d-%d", f, l)
	}
}
