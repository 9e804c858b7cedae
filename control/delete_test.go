package control

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/tiers/tier2"
)

// logBuffer collects the JSON log lines of a service.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// events returns the decoded log lines whose msg is event.
func (l *logBuffer) events(t *testing.T, event string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		var m map[string]any
		if line == "" {
			continue
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == event {
			out = append(out, m)
		}
	}
	return out
}

func newLogBuffer() (*logBuffer, *slog.Logger) {
	l := &logBuffer{}
	return l, slog.New(slog.NewJSONHandler(l, nil))
}

// TestDeleteOfSegmentNotInTier2IsRefused: retiring (tier 2) a segment that
// never reached Tier 2 would delete the only copy of acknowledged records.
// The service refuses it, with --force too, and the records stay readable;
// only a request that acknowledges the data loss retires it, and the log
// event names who asked.
func TestDeleteOfSegmentNotInTier2IsRefused(t *testing.T) {
	_, s := buildDemoRoot(t, nil)
	defer s.Close()
	logs, logger := newLogBuffer()
	c, _ := startService(t, s, Options{Logger: logger})
	ctx := testCtx(t)

	for _, force := range []bool{false, true} {
		_, err := c.SegmentsDelete(ctx, SegmentsDeleteRequest{Stream: "demo", Segment: 1, Tier: 2, Force: force, RequestedBy: "mallory@laptop"})
		wantCode(t, err, CodeConflict)
		for _, want := range []string{"segment 1 of demo is not confirmed in Tier 2", "only copy", "acknowledge_data_loss"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("refusal (force %v) %q lacks %q", force, err, want)
			}
		}
	}
	if got, err := c.Read(ctx, ReadRequest{Stream: "demo", From: 0, Count: 20}); err != nil || len(got.Messages) != 20 {
		t.Fatalf("segment 1 after the refusals: %d records, %v", len(got.Messages), err)
	}
	if ev := logs.events(t, "segment_deleted"); len(ev) != 0 {
		t.Fatalf("refused deletes logged as done: %v", ev)
	}

	res, err := c.SegmentsDelete(ctx, SegmentsDeleteRequest{Stream: "demo", Segment: 1, Tier: 2, AcknowledgeDataLoss: true, RequestedBy: "alice@ops-host"})
	if err != nil {
		t.Fatalf("retire with acknowledge_data_loss: %v", err)
	}
	if res.Stream != "demo" || res.Segment != 1 {
		t.Errorf("answer %+v", res)
	}
	if st := segStatus(s, "demo", 1); st.InTier0 || st.InTier1 {
		t.Errorf("segment 1 after retiring: %+v", st)
	}
	ev := logs.events(t, "segment_deleted")
	if len(ev) != 1 {
		t.Fatalf("segment_deleted events: %v", ev)
	}
	want := map[string]any{"level": "WARN", "stream": "demo", "segment": float64(1), "tier": float64(2),
		"requested_by": "alice@ops-host", "acknowledge_data_loss": true, "was_in_tier2": false}
	for k, v := range want {
		if ev[0][k] != v {
			t.Errorf("segment_deleted %s = %v, want %v (event %v)", k, ev[0][k], v, ev[0])
		}
	}
}

// TestRetireOfSegmentInTier2NeedsNoAcknowledgement: a segment confirmed in
// Tier 2 is retired as before, and the event still names who asked.
func TestRetireOfSegmentInTier2NeedsNoAcknowledgement(t *testing.T) {
	s3 := harness.StartS3(t)
	ctx := testCtx(t)
	t2, err := tier2.New(ctx, tier2.Options{Endpoint: s3.Endpoint, Bucket: s3.Bucket, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	_, s := buildDemoRoot(t, t2)
	defer s.Close()
	logs, logger := newLogBuffer()
	c, _ := startService(t, s, Options{Logger: logger})

	res, err := c.SegmentsDelete(ctx, SegmentsDeleteRequest{Stream: "demo", Segment: 1, Tier: 2, RequestedBy: "bob@ops-host"})
	if err != nil {
		t.Fatalf("retire a segment in Tier 2: %v", err)
	}
	if len(res.Removed) != 3 {
		t.Errorf("removed tiers %v, want [0 1 2]", res.Removed)
	}
	ev := logs.events(t, "segment_deleted")
	if len(ev) != 1 || ev[0]["requested_by"] != "bob@ops-host" || ev[0]["was_in_tier2"] != true || ev[0]["level"] != "INFO" {
		t.Fatalf("segment_deleted events: %v", ev)
	}
}
