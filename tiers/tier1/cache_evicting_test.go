package tier1

import (
	"errors"
	"testing"
)

// While OnEvict records an artifact as gone, nobody may start relying on
// it: a pin taken in that window would keep the file alive while the
// store's manifest says it left (and the next boot removes it). Both the
// budget eviction and an operator's Evict refuse the pin, and once OnEvict
// refuses the eviction the artifact can be pinned again.
func TestPinIsRefusedWhileOnEvictRecordsTheArtifactAsGone(t *testing.T) {
	k := Key{"s", 1}
	for _, tc := range []struct {
		name  string
		evict func(c *Cache)
	}{
		{"budget", func(c *Cache) { c.SetMaxBytes(1) }},
		{"operator", func(c *Cache) { c.Evict(k) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c *Cache
			var pinErr error
			c, _ = newTestCache(t, nil, 0, func(Eviction) error {
				pinErr = c.Pin(k)
				return errors.New("refused")
			})
			put(t, c, k, 100)
			c.MarkUploaded(k)
			tc.evict(c)
			if !errors.Is(pinErr, ErrEvicting) {
				t.Fatalf("Pin during OnEvict: %v, want ErrEvicting", pinErr)
			}
			if !c.Contains(k) {
				t.Fatal("the artifact went although OnEvict refused")
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
		t.Fatalf("pinned artifact: OnEvict called %v, still cached %v", called, c.Contains(k))
	}
	c.Unpin(k)
	if err := c.Evict(k); err != nil || c.Contains(k) {
		t.Fatalf("Evict once unpinned: %v, still cached %v", err, c.Contains(k))
	}
}
