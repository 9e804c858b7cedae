package tracing

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// HeaderCarrier adapts a NATS header block (nats.Header is
// map[string][]string) to propagation.TextMapCarrier.
//
// NATS header names are case-sensitive. Get finds a key written in any case
// (exact spelling first, then a case-insensitive match, the
// lexicographically smallest spelling winning so the choice is stable). Set
// removes every other spelling of the key and stores the value under the
// lowercase key, so one message never carries two traceparent headers.
type HeaderCarrier map[string][]string

var _ propagation.TextMapCarrier = HeaderCarrier(nil)

// Get returns the first value of key, matched case-insensitively, or "".
func (h HeaderCarrier) Get(key string) string {
	if v, ok := h[key]; ok {
		if len(v) == 0 {
			return ""
		}
		return v[0]
	}
	var found string
	var vals []string
	for k, v := range h {
		if strings.EqualFold(k, key) && (found == "" || k < found) {
			found, vals = k, v
		}
	}
	if len(vals) == 0 {
		return ""
	}
	return vals[0]
}

// Set stores value as the only value of the lowercase key, dropping every
// other spelling of it. Set on a nil carrier does nothing.
func (h HeaderCarrier) Set(key, value string) {
	if h == nil {
		return
	}
	lower := strings.ToLower(key)
	for k := range h {
		if k != lower && strings.EqualFold(k, key) {
			delete(h, k)
		}
	}
	h[lower] = []string{value}
}

// Keys lists the header names as stored.
func (h HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// Inject writes the trace context and baggage of ctx into h. h must be
// allocated by the caller (a nil map cannot be written; Inject then does
// nothing): for a new message use Headers instead. A ctx without a valid
// span writes nothing.
func Inject(ctx context.Context, h map[string][]string) {
	propagator.Inject(ctx, HeaderCarrier(h))
}

// Headers returns a new header map holding the trace context and baggage of
// ctx (empty if ctx carries none), ready to become a nats.Header.
func Headers(ctx context.Context) map[string][]string {
	h := make(map[string][]string, 2)
	Inject(ctx, h)
	return h
}

// Extract returns ctx with the remote span context and baggage found in h.
// Headers without (or with malformed) trace context return ctx unchanged
// apart from baggage; a span started from it becomes a new root.
func Extract(ctx context.Context, h map[string][]string) context.Context {
	return propagator.Extract(ctx, HeaderCarrier(h))
}

// LinkFromHeaders returns a link to the producer span whose context h
// carries, for spans (an ingest batch) that have many producers and so no
// single parent. ok is false when h carries no valid trace context.
func LinkFromHeaders(h map[string][]string) (link trace.Link, ok bool) {
	if len(h) == 0 {
		return trace.Link{}, false
	}
	sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), HeaderCarrier(h)))
	if !sc.IsValid() {
		return trace.Link{}, false
	}
	return trace.Link{SpanContext: sc}, true
}
