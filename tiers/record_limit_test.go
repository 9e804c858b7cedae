package tiers

import (
	"errors"
	"testing"

	"github.com/bop-aof/aof/tiers/segment"
	"github.com/bop-aof/aof/tiers/tier0"
)

// RecordLimit is what the ingest pipeline dead-letters by, so it must be
// exactly where Append starts refusing a record for good: a record at the
// limit may wait for space, one byte more is too large.
func TestRecordLimitIsWhereAppendRefusesForGood(t *testing.T) {
	s := openStore(t, Options{Root: t.TempDir(), Tier0MaxBytes: 64 << 10, SegmentTargetBytes: 16 << 10})
	defer s.Close()
	lim := s.RecordLimit()
	if lim.Limit != "tier0.cluster_max_bytes" || lim.MaxPayload != 64<<10-segment.RecordHeaderSize {
		t.Fatalf("limit %+v with a 64 KiB budget", lim)
	}
	_, err := s.Append(testCtx(t), "r", []Record{{Payload: make([]byte, lim.MaxPayload), ExtID: 1}})
	if errors.Is(err, tier0.ErrTooLarge) {
		t.Fatalf("a record at the limit was refused for good: %v", err)
	}
	_, err = s.Append(testCtx(t), "r", []Record{{Payload: make([]byte, lim.MaxPayload+1), ExtID: 2}})
	if !errors.Is(err, tier0.ErrTooLarge) {
		t.Fatalf("a record one byte over the limit: %v, want ErrTooLarge", err)
	}

	// The limit follows a reload of the budget, and a budget larger than
	// the segment format allows leaves the format's limit.
	if err := s.SetTier0MaxBytes(1 << 30); err != nil {
		t.Fatal(err)
	}
	if lim := s.RecordLimit(); lim.Limit != "segment record limit" || lim.MaxPayload != segment.MaxPayloadBytes {
		t.Fatalf("limit %+v with a 1 GiB budget", lim)
	}
}
