package control

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/tier2"
)

// fixedNow is the store clock of the tests, so files and manifests are
// byte-identical between runs.
func fixedNow() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func openTestStore(t *testing.T, root string, t2 tier2.Bucket) *tiers.Store {
	t.Helper()
	s, err := tiers.Open(testCtx(t), tiers.Options{Root: root, Tier2: t2, SegmentTargetBytes: 1 << 20,
		FrameBytes: 1 << 10, CompressionWorkers: 1, Now: fixedNow})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return s
}

func envelope(stream string, i int) []byte {
	return ingest.AppendEnvelope(nil, ingest.Envelope{
		Subject: "aof.ingest." + stream,
		Header:  map[string][]string{"Seq": {fmt.Sprint(i)}},
		Body:    fmt.Appendf(nil, "%s message %04d", stream, i),
	})
}

// appendN appends records from..from+n-1 of stream, ext id = index + 1.
func appendN(t *testing.T, s *tiers.Store, stream string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := s.AppendDurable(testCtx(t), stream, []tiers.Record{{Payload: envelope(stream, i), ExtID: uint64(i + 1)}}); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func segStatus(s *tiers.Store, stream string, id uint64) tiers.SegmentStatus {
	for _, st := range s.Segments(stream) {
		if st.Segment == id {
			return st
		}
	}
	return tiers.SegmentStatus{}
}

// sealAndSettle seals stream's active segment and waits until it is in
// Tier 1 (and in Tier 2 when the store has one), so manifests are
// written in a deterministic order.
func sealAndSettle(t *testing.T, s *tiers.Store, stream string) uint64 {
	t.Helper()
	id, err := s.Seal(testCtx(t), stream, false)
	if err != nil || id == 0 {
		t.Fatalf("seal %s: id %d, %v", stream, id, err)
	}
	waitFor(t, fmt.Sprintf("segment %d in tier 1", id), func() bool {
		st := segStatus(s, stream, id)
		return st.InTier1 && (s.Tier2() == nil || st.InTier2)
	})
	return id
}

// BuildDemoRoot writes a data root with stream "demo": two sealed segments
// of 20 records each (in Tier 0 and Tier 1) and an active one with 5.
func buildDemoRoot(t *testing.T, t2 tier2.Bucket) (string, *tiers.Store) {
	t.Helper()
	root := t.TempDir()
	s := openTestStore(t, root, t2)
	appendN(t, s, "demo", 0, 20)
	sealAndSettle(t, s, "demo")
	appendN(t, s, "demo", 20, 20)
	sealAndSettle(t, s, "demo")
	appendN(t, s, "demo", 40, 5)
	return root, s
}
