package tiers

import (
	"io"
	"testing"
)

// TestSegmentsReportHydrationBytes: while a hydration downloads, the
// segment's status says how many bytes it has, for aof2-admin hydrate.
func TestSegmentsReportHydrationBytes(t *testing.T) {
	s := openStore(t, Options{Root: t.TempDir()})
	defer s.Close()
	appendN(t, s, "s", 0, 5)
	id, err := s.Seal(testCtx(t), "s", true)
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Log(testCtx(t), "s")
	if err != nil {
		t.Fatal(err)
	}
	status := func() SegmentStatus {
		for _, st := range s.Segments("s") {
			if st.Segment == id {
				return st
			}
		}
		t.Fatalf("segment %d not listed", id)
		return SegmentStatus{}
	}
	l.setHydrating(id, true)
	w := hydrationProgress{w: io.Discard, l: l, id: id}
	for range 3 {
		if _, err := w.Write(make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	if st := status(); !st.PendingHydration || st.HydratedBytes != 3000 {
		t.Fatalf("during the download: %+v, want pending with 3000 bytes", st)
	}
	l.setHydrating(id, false)
	if st := status(); st.PendingHydration || st.HydratedBytes != 0 {
		t.Fatalf("after the download: %+v", st)
	}
}
