package tiers

import (
	"errors"
	"strings"
	"testing"

	"github.com/bop-aof/aof/tiers/backpressure"
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

// TestOversizedAppendRefusesOnlyThatRecord: a payload over the segment
// format's record limit handed straight to Append is refused with an error
// naming the limit, nothing of its batch is appended, and the stream goes
// on taking records without a Resume (it used to stop the log with Flush
// backpressure).
func TestOversizedAppendRefusesOnlyThatRecord(t *testing.T) {
	s := openStore(t, Options{Root: t.TempDir()})
	defer s.Close()
	appendN(t, s, "big", 0, 3)
	huge := Record{Payload: make([]byte, segment.MaxPayloadBytes+1), ExtID: 100}
	_, err := s.Append(testCtx(t), "big", []Record{{Payload: payload("big", 3), ExtID: 4}, huge})
	if !errors.Is(err, ErrRecordTooLarge) || backpressure.Is(err, backpressure.Flush) {
		t.Fatalf("append of a %d-byte payload: %v, want ErrRecordTooLarge and no Flush backpressure", len(huge.Payload), err)
	}
	if !strings.Contains(err.Error(), "big") || !strings.Contains(err.Error(), "segment record limit") {
		t.Fatalf("error %q should name the stream and the limit", err)
	}
	l, err := s.Log(testCtx(t), "big")
	if err != nil {
		t.Fatal(err)
	}
	if next := l.NextOffset(); next != 3 {
		t.Fatalf("next offset %d after the refused batch, want 3: part of it was appended", next)
	}
	appendN(t, s, "big", 3, 3)
	readAll(t, s, "big", 6)
}
