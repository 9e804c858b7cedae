package tiers

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

// Tier 2 holds nothing of the record's chain any more (its manifest
// objects were deleted): the takeover refuses to adopt, rather than
// adopting an empty stream whose next record would reuse offset 0 and
// whose archived history would count as never stored; nothing of the
// stream is left on disk to be opened.
func TestAdoptRefusesAChainThatDoesNotReachTheRecord(t *testing.T) {
	c := memory.New()
	const stream = "orders"
	var alog, blog syncBuffer
	old := epochStore(t, t.TempDir(), c, 1, &alog)
	appendN(t, old, stream, 0, 150)
	waitArchived(t, old, stream)
	rec, _ := old.Archived(stream)
	old.Close()
	if rec.Through == 0 {
		t.Fatal("nothing archived: the test needs a record")
	}
	for _, k := range c.Keys() {
		if strings.HasPrefix(k, "manifest/") || strings.HasPrefix(k, "snapshots/") {
			if err := c.Delete(testCtx(t), k); err != nil {
				t.Fatal(err)
			}
		}
	}

	root := t.TempDir()
	owner := epochStore(t, root, c, 0, &blog)
	defer owner.Close()
	err := owner.Adopt(testCtx(t), stream, rec, 2)
	if !errors.Is(err, ErrAdoptIncomplete) {
		t.Fatalf("adopting a chain that does not reach the record %+v: %v, want ErrAdoptIncomplete", rec, err)
	}
	t.Logf("refused: %v", err)
	if entries, _ := vfs.Default.ReadDir(filepath.Join(root, "manifest", stream)); len(entries) > 0 {
		t.Fatalf("the refused adoption left %d manifest files", len(entries))
	}
	if slices.Contains(owner.Streams(), stream) {
		t.Fatal("the refused adoption opened the stream")
	}
}
