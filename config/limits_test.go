package config

import (
	"strings"
	"testing"

	"github.com/bop-aof/aof/tiers/segment"
)

// JetStream refuses an ingest stream whose max age is shorter than its
// duplicate window; such a setting used to validate and then fail at
// provisioning with JetStream's own words.
func TestStreamMaxAgeBelowDuplicateWindowIsRejected(t *testing.T) {
	for _, tc := range []struct {
		age, want string // want "" means valid
	}{
		{"1m", `config: ingest.stream_max_age (1m) must be 0 (unlimited) or at least 2m, the duplicate window of ingest.stream_name "AOF_INGEST"`},
		{"1s", `config: ingest.stream_max_age (1s) must be 0 (unlimited) or at least 2m, the duplicate window of ingest.stream_name "AOF_INGEST"`},
		{"119s", `config: ingest.stream_max_age (1m59s) must be 0 (unlimited) or at least 2m, the duplicate window of ingest.stream_name "AOF_INGEST"`},
		{"2m", ""},
		{"0s", ""},
		{"7d", ""},
	} {
		_, err := Load(opts(t, writeFile(t, baseTOML), "AOF2_INGEST_STREAM_MAX_AGE="+tc.age))
		if tc.want == "" {
			if err != nil {
				t.Errorf("stream_max_age %s: %v", tc.age, err)
			}
			continue
		}
		if err == nil || err.Error() != tc.want {
			t.Errorf("stream_max_age %s: got %v\nwant %s", tc.age, err, tc.want)
		}
	}
}

func TestMaxStreamsMustBePositive(t *testing.T) {
	if c := Default(); c.Ingest.MaxStreams != 10000 {
		t.Fatalf("default ingest.max_streams = %d", c.Ingest.MaxStreams)
	}
	_, err := Load(opts(t, writeFile(t, baseTOML), "AOF2_INGEST_MAX_STREAMS=0"))
	if err == nil || err.Error() != "config: ingest.max_streams must be > 0, got 0" {
		t.Fatalf("max_streams 0: %v", err)
	}
}

// A max_record_bytes the store can never admit is legal (such messages are
// dead-lettered with their reason) but surprising: Warnings says so,
// naming both keys.
func TestMaxRecordBytesBeyondTier0BudgetWarns(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		want string // "" means no warning
	}{
		{"defaults", nil, ""},
		{"record at the budget less its header", []string{"AOF2_INGEST_MAX_RECORD_BYTES=67108828", "AOF2_TIER0_CLUSTER_MAX_BYTES=64MiB"}, ""},
		{"record as large as the budget", []string{"AOF2_INGEST_MAX_RECORD_BYTES=64MiB", "AOF2_TIER0_CLUSTER_MAX_BYTES=64MiB"},
			"config: ingest.max_record_bytes (64MiB) is more than tier0.cluster_max_bytes (64MiB) can ever admit (67108828 bytes per record after its 36-byte header): larger messages are dead-lettered"},
		{"record larger than a segment record", []string{"AOF2_INGEST_MAX_RECORD_BYTES=100MiB"},
			"config: ingest.max_record_bytes (100MiB) is more than a segment record can hold (64MiB): larger messages are dead-lettered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustLoad(t, opts(t, writeFile(t, baseTOML), tc.env...))
			ws := c.Warnings()
			if tc.want == "" {
				if len(ws) != 0 {
					t.Fatalf("warnings %v, want none", ws)
				}
				return
			}
			if len(ws) != 1 || ws[0].Error() != tc.want || ws[0].Key != "ingest.max_record_bytes" {
				t.Fatalf("warnings %v\nwant [%s]", ws, tc.want)
			}
		})
	}
}

func TestWarningLimitsMatchTheSegmentFormat(t *testing.T) {
	if recordHeaderBytes != segment.RecordHeaderSize || segmentMaxPayload != segment.MaxPayloadBytes {
		t.Fatalf("config assumes a %d-byte record header and %d-byte payloads; the segment format has %d and %d",
			recordHeaderBytes, int64(segmentMaxPayload), segment.RecordHeaderSize, segment.MaxPayloadBytes)
	}
}

// A window wider than the pull buffer overflows it under load (measured by
// the end-to-end benchmark): Warnings says so and names the key to raise.
func TestMaxAckPendingBeyondThePullBufferWarns(t *testing.T) {
	if ws := mustLoad(t, opts(t, writeFile(t, baseTOML))).Warnings(); len(ws) != 0 {
		t.Fatalf("defaults warn: %v", ws)
	}
	c := mustLoad(t, opts(t, writeFile(t, baseTOML), "AOF2_INGEST_MAX_ACK_PENDING=16384"))
	ws := c.Warnings()
	if len(ws) != 1 || ws[0].Key != "ingest.max_ack_pending" || !strings.Contains(ws[0].Error(), "raise ingest.batch_size") {
		t.Fatalf("warnings %v, want one on ingest.max_ack_pending", ws)
	}
	c = mustLoad(t, opts(t, writeFile(t, baseTOML), "AOF2_INGEST_MAX_ACK_PENDING=16384", "AOF2_INGEST_BATCH_SIZE=8192"))
	if ws := c.Warnings(); len(ws) != 0 {
		t.Fatalf("a window within the pull buffer warns: %v", ws)
	}
}
