package tier1

import (
	"bytes"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/bop-aof/aof/internal/vfs"
)

// While the owner records an artifact as gone, nobody may start relying on
// it: a pin taken in that window would keep the file alive while the
// store's manifest says it left (and the next boot removes it). Both the
// budget eviction and an operator's eviction refuse the pin, and once the
// eviction is not recorded the artifact can be pinned again.
func TestPinIsRefusedWhileAnEvictionIsRecorded(t *testing.T) {
	k := Key{"s", 1}
	for _, tc := range []struct {
		name  string
		evict func(c *testOwner)
	}{
		{"budget", func(c *testOwner) { c.SetMaxBytes(1); settle(c) }},
		{"operator", func(c *testOwner) { c.Evict(k) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c *testOwner
			var pinErr error
			c, _ = newTestCache(t, nil, 0, func(Eviction) error {
				pinErr = c.Pin(k)
				return errors.New("refused")
			})
			put(t, c, k, 100)
			c.MarkUploaded(k)
			tc.evict(c)
			if !errors.Is(pinErr, ErrEvicting) {
				t.Fatalf("Pin while the eviction is recorded: %v, want ErrEvicting", pinErr)
			}
			if !c.Contains(k) {
				t.Fatal("the artifact went although its eviction was not recorded")
			}
			if err := c.Pin(k); err != nil {
				t.Fatalf("Pin after a refused eviction: %v", err)
			}
		})
	}
}

// An operator's Evict keeps an artifact someone pinned (a Reupload
// uploading from it) and does not record it as gone.
func TestEvictRefusesAPinnedArtifact(t *testing.T) {
	k := Key{"s", 1}
	called := false
	c, _ := newTestCache(t, nil, 0, func(Eviction) error { called = true; return nil })
	put(t, c, k, 100)
	if err := c.Pin(k); err != nil {
		t.Fatal(err)
	}
	if err := c.Evict(k); !errors.Is(err, ErrPinned) {
		t.Fatalf("Evict of a pinned artifact: %v, want ErrPinned", err)
	}
	if called || !c.Contains(k) {
		t.Fatalf("pinned artifact: eviction recorded %v, still cached %v", called, c.Contains(k))
	}
	c.Unpin(k)
	if err := c.Evict(k); err != nil || c.Contains(k) {
		t.Fatalf("Evict once unpinned: %v, still cached %v", err, c.Contains(k))
	}
}

// removeGateFS holds the removal of one file until released: the window
// in which an eviction has recorded an artifact as gone but its file is
// still there.
type removeGateFS struct {
	vfs.FS
	path    string
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (g *removeGateFS) Remove(name string) error {
	if name == g.path {
		g.once.Do(func() {
			close(g.entered)
			<-g.release
		})
	}
	return g.FS.Remove(name)
}

// A Put of a key whose old artifact is being evicted or removed must not
// lose its new file to that removal: the new artifact stays on disk and
// counted, whichever way the old one leaves.
func TestPutDuringAnEvictionKeepsTheNewArtifact(t *testing.T) {
	k := Key{"s", 1}
	for _, tc := range []struct {
		name   string
		remove func(c *testOwner)
	}{
		{"budget", func(c *testOwner) { c.SetMaxBytes(1); settle(c) }},
		{"operator", func(c *testOwner) { c.Evict(k) }},
		{"remove", func(c *testOwner) { c.Remove(k) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &removeGateFS{FS: vfs.Default, entered: make(chan struct{}), release: make(chan struct{})}
			c, _ := newTestCache(t, g, 0, func(Eviction) error { return nil })
			g.path = c.Path(k)
			put(t, c, k, 100)
			c.MarkUploaded(k)
			removed := make(chan struct{})
			go func() { tc.remove(c); close(removed) }()
			<-g.entered // the old artifact is on its way out, its file not yet removed
			newArtifact := bytes.Repeat([]byte("n"), 300)
			putDone := make(chan error, 1)
			go func() { _, err := c.PutBytes(k, newArtifact); putDone <- err }()
			var putErr error
			select {
			case putErr = <-putDone:
				t.Logf("Put returned before the old file was removed: %v", putErr)
				close(g.release)
			case <-time.After(50 * time.Millisecond):
				close(g.release)
				putErr = <-putDone
			}
			<-removed
			if putErr != nil {
				t.Fatalf("Put: %v", putErr)
			}
			got, err := os.ReadFile(c.Path(k))
			if err != nil || !bytes.Equal(got, newArtifact) {
				t.Fatalf("the removal of the old artifact took the new one: read %d bytes, %v", len(got), err)
			}
			if !c.Contains(k) || c.Stats().Bytes != int64(len(newArtifact)) {
				t.Fatalf("new artifact: cached %v, accounted %d bytes, want %d", c.Contains(k), c.Stats().Bytes, len(newArtifact))
			}
		})
	}
}

// The cache runs no eviction itself: a call that takes it over budget
// with an evictable artifact only signals EvictionDue (one pending
// wake-up however many signals), and the artifact stays until its owner
// evicts it. So a caller holding a lock the owner's recording takes (the
// store's log lock) cannot deadlock with an eviction.
func TestCacheSignalsEvictionsAndRunsNone(t *testing.T) {
	k := Key{"s", 1}
	c, err := NewCache(CacheOptions{Root: t.TempDir(), MaxBytes: 50})
	if err != nil {
		t.Fatal(err)
	}
	put(t, c, k, 100)
	for len(c.EvictionDue()) > 0 {
		<-c.EvictionDue() // the Put's signal
	}
	c.MarkUploaded(k) // over budget and now evictable
	c.SetMaxBytes(40)
	select {
	case <-c.EvictionDue():
	default:
		t.Fatal("no EvictionDue signal for an over-budget, evictable artifact")
	}
	if len(c.EvictionDue()) != 0 {
		t.Fatal("more than one wake-up pending")
	}
	if !c.Contains(k) {
		t.Fatal("the cache evicted an artifact by itself")
	}
	ev, ok := c.NextEviction(nil)
	if !ok || ev.Key != k {
		t.Fatalf("NextEviction = %v, %v; want %v", ev.Key, ok, k)
	}
	if err := c.FinishEviction(ev, true); err != nil || c.Contains(k) {
		t.Fatalf("FinishEviction: %v, still cached %v", err, c.Contains(k))
	}
}
