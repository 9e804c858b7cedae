package tracing

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// ParseLevel accepts debug, info, warn (or warning) and error in any case,
// and the slog forms with an offset (INFO+2). Empty means info.
func ParseLevel(s string) (slog.Level, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return slog.LevelInfo, nil
	}
	if strings.EqualFold(s, "warning") {
		return slog.LevelWarn, nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo, fmt.Errorf("tracing: log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// NewLogger returns a logger writing to w (os.Stderr if nil) in format
// "json" or "text" (empty or anything else: text), and the LevelVar that
// governs it, so the level can be changed at run time (control service,
// SIGHUP). An unparsable level falls back to info and the logger says so
// once, at warn level; validate configuration with ParseLevel to reject it
// earlier.
//
// Records logged with a context that carries a span get trace_id and
// span_id attributes, so a log line can be found from its trace.
func NewLogger(level, format string, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	if w == nil {
		w = os.Stderr
	}
	lv := new(slog.LevelVar)
	l, perr := ParseLevel(level)
	lv.Set(l)
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	if strings.EqualFold(format, "json") {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	logger := slog.New(traceHandler{h})
	if perr != nil {
		logger.Warn("invalid log level, using info", "level", level)
	}
	return logger, lv
}

// OrNop returns l, or a logger that discards everything when l is nil, so a
// package can accept a nil logger.
func OrNop(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// traceHandler adds the trace and span ids of the record's context.
type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(attrs)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}
