package tracing

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestParseLevel(t *testing.T) {
	tests := []struct {
		in   string
		want slog.Level
		ok   bool
	}{
		{"", slog.LevelInfo, true},
		{"debug", slog.LevelDebug, true},
		{"INFO", slog.LevelInfo, true},
		{"warn", slog.LevelWarn, true},
		{"Warning", slog.LevelWarn, true},
		{"error", slog.LevelError, true},
		{"info+2", slog.LevelInfo + 2, true},
		{"verbose", slog.LevelInfo, false},
	}
	for _, tt := range tests {
		got, err := ParseLevel(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestLoggerLevelChangesAtRuntime(t *testing.T) {
	var buf bytes.Buffer
	log, lv := NewLogger("info", "text", &buf)
	log.Debug("hidden")
	lv.Set(slog.LevelDebug)
	log.Debug("shown")
	out := buf.String()
	if strings.Contains(out, "hidden") || !strings.Contains(out, "shown") {
		t.Fatalf("level change not honoured; output:\n%s", out)
	}
}

func TestLoggerJSONCarriesTraceIDs(t *testing.T) {
	var buf bytes.Buffer
	log, _ := NewLogger("debug", "json", &buf)
	p := setupForTest(t, WithSpanProcessor(tracetest.NewSpanRecorder()))
	ctx, span := p.Tracer("test").Start(context.Background(), SpanTier2Upload)
	log.InfoContext(ctx, "tier2_upload_success", "stream", "orders")
	span.End()

	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("json format produced %q: %v", buf.String(), err)
	}
	if rec["msg"] != "tier2_upload_success" || rec["stream"] != "orders" {
		t.Errorf("record %v lacks message or attribute", rec)
	}
	if rec["trace_id"] != span.SpanContext().TraceID().String() || rec["span_id"] != span.SpanContext().SpanID().String() {
		t.Errorf("record trace_id/span_id = %v/%v, want the span's %s/%s",
			rec["trace_id"], rec["span_id"], span.SpanContext().TraceID(), span.SpanContext().SpanID())
	}
}

func TestLoggerBadLevelFallsBackToInfoAndSaysSo(t *testing.T) {
	var buf bytes.Buffer
	log, lv := NewLogger("loud", "text", &buf)
	if lv.Level() != slog.LevelInfo {
		t.Errorf("level %v, want info", lv.Level())
	}
	if !strings.Contains(buf.String(), "invalid log level") {
		t.Errorf("no warning about the bad level: %q", buf.String())
	}
	log.Debug("x")
	if strings.Contains(buf.String(), "msg=x") {
		t.Error("debug record logged at info level")
	}
	OrNop(nil).Info("discarded") // must not panic
}
