package fsck

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/tiers"
)

// fixedNow is the store clock of the tests, so files and manifests are
// byte-identical between runs.
func fixedNow() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// buildDemoRoot writes a data root with stream "demo": two sealed
// segments of 20 records each (in Tier 0 and Tier 1) and an active one
// with 5, and closes the store.
func buildDemoRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	s, err := tiers.Open(testCtx(t), tiers.Options{Root: root, SegmentTargetBytes: 1 << 20,
		FrameBytes: 1 << 10, CompressionWorkers: 1, Now: fixedNow})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	for i := 0; i < 45; i++ {
		if i == 20 || i == 40 {
			sealAndSettle(t, s, "demo")
		}
		p := ingest.AppendEnvelope(nil, ingest.Envelope{Subject: "aof.ingest.demo", Body: fmt.Appendf(nil, "demo message %04d", i)})
		if err := s.AppendDurable(testCtx(t), "demo", []tiers.Record{{Payload: p, ExtID: uint64(i + 1)}}); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return root
}

// sealAndSettle seals stream's active segment and waits until it is in
// Tier 1, so manifests are written in a deterministic order.
func sealAndSettle(t *testing.T, s *tiers.Store, stream string) {
	t.Helper()
	id, err := s.Seal(testCtx(t), stream, false)
	if err != nil || id == 0 {
		t.Fatalf("seal %s: id %d, %v", stream, id, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, st := range s.Segments(stream) {
			if st.Segment == id && st.InTier1 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for segment %d in tier 1", id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func kinds(rep Report) map[string]Problem {
	out := map[string]Problem{}
	for _, p := range rep.Problems {
		out[p.Kind] = p
	}
	return out
}
