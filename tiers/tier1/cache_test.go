package tier1

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bop-aof/aof/internal/vfs"
)

// newTestCache returns a cache and its owner's part in evictions: record
// says whether an eviction was recorded (nil: always).
func newTestCache(t *testing.T, fs vfs.FS, max int64, record func(Eviction) error) (*testOwner, string) {
	t.Helper()
	root := t.TempDir()
	c, err := NewCache(CacheOptions{Root: root, FS: fs, MaxBytes: max})
	if err != nil {
		t.Fatal(err)
	}
	return &testOwner{Cache: c, record: record}, root
}

// testOwner plays the store's part in an eviction: it records each one
// (record) between its start and FinishEviction.
type testOwner struct {
	*Cache
	record func(Eviction) error
}

// settle runs the owner's budget pass, as the store's eviction goroutine
// does when EvictionDue fires: every eviction NextEviction offers, a
// refused one skipped for the rest of the pass.
func settle(c *testOwner) {
	skip := map[Key]bool{}
	for {
		ev, ok := c.NextEviction(skip)
		if !ok {
			return
		}
		if err := c.finish(ev); err != nil {
			skip[ev.Key] = true
		}
	}
}

func (c *testOwner) finish(ev Eviction) error {
	var err error
	if c.record != nil {
		err = c.record(ev)
	}
	if ferr := c.FinishEviction(ev, err == nil); err == nil {
		err = ferr
	}
	return err
}

// Evict is an operator's eviction of k.
func (c *testOwner) Evict(k Key) error {
	ev, err := c.BeginEvict(k)
	if err != nil {
		return err
	}
	return c.finish(ev)
}

func put(t *testing.T, c interface {
	PutBytes(Key, []byte) (int64, error)
}, k Key, n int) {
	t.Helper()
	if _, err := c.PutBytes(k, bytes.Repeat([]byte{byte(k.Segment)}, n)); err != nil {
		t.Fatalf("Put %v: %v", k, err)
	}
}

func TestCacheLayoutFollowsDesign(t *testing.T) {
	c, root := newTestCache(t, nil, 0, nil)
	put(t, c, Key{"orders", 42}, 10)
	want := filepath.Join(root, "tier1", "orders", "00000000000000000042.zst")
	if c.Path(Key{"orders", 42}) != want {
		t.Fatalf("Path = %s, want %s", c.Path(Key{"orders", 42}), want)
	}
	if _, err := os.Stat(want); err != nil {
		t.Fatal(err)
	}
}

func TestEvictionTakesOnlyUploadedUnpinnedInLRUOrder(t *testing.T) {
	var evicted []Key
	c, _ := newTestCache(t, nil, 0, func(e Eviction) error {
		evicted = append(evicted, e.Key)
		return nil
	})
	for i := uint64(1); i <= 5; i++ {
		put(t, c, Key{"s", i}, 100)
	}
	// LRU order oldest first: 1 2 3 4 5. Touch 1 so 2 becomes the oldest.
	c.Touch(Key{"s", 1})
	c.MarkUploaded(Key{"s", 1})
	c.MarkUploaded(Key{"s", 2})
	c.MarkUploaded(Key{"s", 4})
	if err := c.Pin(Key{"s", 2}); err != nil {
		t.Fatal(err)
	}
	c.SetMaxBytes(250) // must shed 3 files; only 4 and 1 may go (3, 5 not uploaded; 2 pinned)
	settle(c)
	if want := []Key{{"s", 4}, {"s", 1}}; !equalKeys(evicted, want) {
		t.Fatalf("evicted %v, want %v", evicted, want)
	}
	st := c.Stats()
	if st.Files != 3 || st.Bytes != 300 {
		t.Fatalf("stats %+v: want 3 files, 300 bytes (over budget: nothing else evictable)", st)
	}
	if _, err := os.Stat(c.Path(Key{"s", 4})); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("evicted file still on disk: %v", err)
	}
	c.Unpin(Key{"s", 2}) // now 2 is evictable and the cache is over budget
	settle(c)
	if want := []Key{{"s", 4}, {"s", 1}, {"s", 2}}; !equalKeys(evicted, want) {
		t.Fatalf("after Unpin evicted %v, want %v", evicted, want)
	}
	if st := c.Stats(); st.Bytes != 200 {
		t.Fatalf("bytes %d, want 200", st.Bytes)
	}
}

func TestRefusedEvictionKeepsTheArtifact(t *testing.T) {
	c, _ := newTestCache(t, nil, 150, func(e Eviction) error {
		// The file is still there while the eviction is recorded: record first, then remove.
		return errors.New("manifest unavailable")
	})
	put(t, c, Key{"s", 1}, 100)
	put(t, c, Key{"s", 2}, 100)
	c.MarkUploaded(Key{"s", 1})
	settle(c)
	if !c.Contains(Key{"s", 1}) {
		t.Fatal("artifact evicted although its eviction was not recorded")
	}
	if _, err := os.Stat(c.Path(Key{"s", 1})); err != nil {
		t.Fatal(err)
	}
}

func TestEvictionIsRecordedBeforeTheFileGoes(t *testing.T) {
	var c *testOwner
	sawFile := false
	c, _ = newTestCache(t, nil, 100, func(e Eviction) error {
		_, err := os.Stat(c.Path(e.Key))
		sawFile = err == nil
		return nil
	})
	put(t, c, Key{"s", 1}, 100)
	c.MarkUploaded(Key{"s", 1})
	put(t, c, Key{"s", 2}, 100)
	settle(c)
	if c.Contains(Key{"s", 1}) || !sawFile {
		t.Fatalf("want s/1 evicted after its recording saw its file (contains %v, saw %v)", c.Contains(Key{"s", 1}), sawFile)
	}
}

func TestScanRebuildsFromDiskAndDropsTempFiles(t *testing.T) {
	c, root := newTestCache(t, nil, 0, nil)
	put(t, c, Key{"a", 1}, 10)
	put(t, c, Key{"a", 2}, 20)
	put(t, c, Key{"b", 7}, 30)
	tmp := filepath.Join(root, "tier1", "a", "00000000000000000003.zst.tmp")
	os.WriteFile(tmp, []byte("torn"), 0o644)
	os.WriteFile(filepath.Join(root, "tier1", "a", "notes.txt"), []byte("x"), 0o644)

	c2, err := NewCache(CacheOptions{Root: root, MaxBytes: 0})
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Scan(); err != nil {
		t.Fatal(err)
	}
	st := c2.Stats()
	if st.Files != 3 || st.Bytes != 60 || st.Uploaded != 0 {
		t.Fatalf("after Scan: %+v, want 3 files, 60 bytes, none uploaded", st)
	}
	if !c2.Contains(Key{"b", 7}) {
		t.Fatal("b/7 missing after Scan")
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("leftover temp file not removed: %v", err)
	}
}

func TestPutIsAtomicWhenTheWriteFails(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault vfs.Fault
	}{
		{"short write", vfs.Fault{Op: vfs.OpWrite, ShortBytes: 5}},
		{"disk full", vfs.Fault{Op: vfs.OpWrite, Err: vfs.ENOSPC}},
		{"fsync fails", vfs.Fault{Op: vfs.OpSync}},
		{"rename fails", vfs.Fault{Op: vfs.OpRename}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ffs := vfs.NewFaultFS(nil)
			c, _ := newTestCache(t, ffs, 0, nil)
			k := Key{"s", 9}
			old := []byte("the previous complete artifact")
			if _, err := c.PutBytes(k, old); err != nil {
				t.Fatal(err)
			}
			tc.fault.Match = func(name string) bool { return strings.Contains(name, "00000000000000000009") }
			ffs.Inject(tc.fault)
			if _, err := c.PutBytes(k, bytes.Repeat([]byte("new"), 1000)); err == nil {
				t.Fatal("Put succeeded despite the injected fault")
			}
			ffs.Reset()
			got, err := os.ReadFile(c.Path(k))
			if err != nil || !bytes.Equal(got, old) {
				t.Fatalf("artifact after failed Put = %q, %v; want the previous one", got, err)
			}
			if _, err := os.Stat(c.Path(k) + ".tmp"); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("temp file left behind: %v", err)
			}
			if st := c.Stats(); st.Bytes != int64(len(old)) {
				t.Fatalf("accounted bytes %d, want %d", st.Bytes, len(old))
			}
		})
	}
}

func TestOpenServesCompressedArtifact(t *testing.T) {
	c, _ := newTestCache(t, nil, 0, nil)
	seg, bounds := fakeSegment(5, 500, 0)
	k := Key{"s", 1}
	if _, err := c.Put(k, func(w io.Writer) error {
		_, err := Compress(w, bytes.NewReader(seg), int64(len(seg)), bounds, CompressOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	r, err := c.Open(k)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, err := r.ReadRecord(bounds[10].LogicalOffset); err != nil || !bytes.Equal(got, seg[bounds[10].ByteOffset:bounds[11].ByteOffset]) {
		t.Fatalf("ReadRecord via cache: %v", err)
	}
	if _, err := c.Open(Key{"s", 2}); !errors.Is(err, ErrNotCached) {
		t.Fatalf("Open of missing key: %v, want ErrNotCached", err)
	}
	if err := c.Remove(k); err != nil || c.Contains(k) {
		t.Fatalf("Remove: %v", err)
	}
}

func equalKeys(a, b []Key) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
