package tiers

import (
	"testing"
)

// TestCompressionWorkersResizeWhileRunning: the pool grows and shrinks on
// request (surplus workers leave when idle), and the workers left still
// compress sealed segments into Tier 1.
func TestCompressionWorkersResizeWhileRunning(t *testing.T) {
	s := openStore(t, Options{Root: t.TempDir(), CompressionWorkers: 2})
	defer s.Close()
	if c, _, _ := s.Workers(); c != 2 {
		t.Fatalf("compression workers at start: %d, want 2", c)
	}
	s.SetCompressionWorkers(4)
	if c, _, _ := s.Workers(); c != 4 {
		t.Fatalf("after raising: %d workers, want 4", c)
	}
	s.SetCompressionWorkers(1)
	waitFor(t, "surplus compression workers to leave", func() bool { c, _, _ := s.Workers(); return c == 1 })
	appendN(t, s, "s", 0, 20)
	id, err := s.Seal(testCtx(t), "s", true)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the sealed segment in Tier 1", func() bool {
		for _, st := range s.Segments("s") {
			if st.Segment == id && st.InTier1 {
				return true
			}
		}
		return false
	})
	s.SetHydrationWorkers(6)
	s.SetUploadWorkers(2)
	waitFor(t, "surplus upload workers to leave", func() bool { _, u, _ := s.Workers(); return u == 2 })
	if _, _, h := s.Workers(); h != 6 {
		t.Fatalf("hydration workers after raising: %d, want 6", h)
	}
}
