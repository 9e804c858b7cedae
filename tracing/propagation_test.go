package tracing

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

const sampleTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// A producer injects its span into a NATS header map; the gateway extracts
// it and the append span is a child in the same trace.
func TestHeaderRoundTripMakesChildOfProducer(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	p := setupForTest(t, WithSpanProcessor(rec))
	tr := p.Tracer("test")

	ctx, producer := tr.Start(context.Background(), "producer.publish")
	h := map[string][]string{"Nats-Msg-Id": {"m1"}}
	Inject(ctx, h)
	producer.End()

	if got := h["traceparent"]; len(got) != 1 {
		t.Fatalf("after Inject traceparent = %v, want one lowercase value; headers %v", got, h)
	}
	if h["Nats-Msg-Id"][0] != "m1" {
		t.Fatalf("Inject clobbered other headers: %v", h)
	}

	_, child := tr.Start(Extract(context.Background(), h), SpanAppend)
	child.End()

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("recorded %d spans, want 2", len(spans))
	}
	parent, got := spans[0], spans[1]
	if got.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("child trace id %s, want parent's %s", got.SpanContext().TraceID(), parent.SpanContext().TraceID())
	}
	if got.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("child parent span id %s, want %s", got.Parent().SpanID(), parent.SpanContext().SpanID())
	}
	if !got.Parent().IsRemote() {
		t.Error("parent extracted from headers should be marked remote")
	}
}

func TestBaggageTravelsInHeaders(t *testing.T) {
	m, err := baggage.NewMember("tenant", "acme")
	if err != nil {
		t.Fatal(err)
	}
	b, err := baggage.New(m)
	if err != nil {
		t.Fatal(err)
	}
	h := Headers(baggage.ContextWithBaggage(context.Background(), b))
	got := baggage.FromContext(Extract(context.Background(), h)).Member("tenant").Value()
	if got != "acme" {
		t.Fatalf("baggage tenant = %q after round trip through %v, want acme", got, h)
	}
}

func TestHeaderCarrierGetIgnoresCase(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string][]string
		key     string
		want    string
	}{
		{"lowercase", map[string][]string{"traceparent": {"a"}}, "traceparent", "a"},
		{"canonical MIME case", map[string][]string{"Traceparent": {"b"}}, "traceparent", "b"},
		{"upper case", map[string][]string{"TRACEPARENT": {"c"}}, "traceparent", "c"},
		{"mixed case key asked", map[string][]string{"traceparent": {"d"}}, "TraceParent", "d"},
		{"exact spelling preferred", map[string][]string{"Traceparent": {"x"}, "traceparent": {"e"}}, "traceparent", "e"},
		{"first value of many", map[string][]string{"traceparent": {"f", "g"}}, "traceparent", "f"},
		{"missing", map[string][]string{"tracestate": {"h"}}, "traceparent", ""},
		{"empty value list", map[string][]string{"TraceParent": {}}, "traceparent", ""},
		{"nil map", nil, "traceparent", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HeaderCarrier(tt.headers).Get(tt.key); got != tt.want {
				t.Errorf("Get(%q) on %v = %q, want %q", tt.key, tt.headers, got, tt.want)
			}
		})
	}
}

func TestHeaderCarrierSetWritesOneLowercaseKey(t *testing.T) {
	h := map[string][]string{"Traceparent": {"old1"}, "TRACEPARENT": {"old2"}, "Aof-Stream": {"s"}}
	HeaderCarrier(h).Set("Traceparent", "new")
	want := map[string][]string{"traceparent": {"new"}, "Aof-Stream": {"s"}}
	if len(h) != len(want) {
		t.Fatalf("after Set headers = %v, want %v", h, want)
	}
	for k, v := range want {
		if len(h[k]) != 1 || h[k][0] != v[0] {
			t.Fatalf("after Set headers = %v, want %v", h, want)
		}
	}
	HeaderCarrier(nil).Set("traceparent", "x") // must not panic
}

// A producer that wrote the header in another case is still the parent.
func TestExtractFindsUppercaseTraceparent(t *testing.T) {
	ctx := Extract(context.Background(), map[string][]string{"TraceParent": {sampleTraceparent}})
	sc := trace.SpanContextFromContext(ctx)
	if sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || !sc.IsSampled() {
		t.Fatalf("extracted span context %v, want trace 4bf92f35... sampled", sc)
	}
}

func TestLinkFromHeaders(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string][]string
		ok      bool
	}{
		{"valid", map[string][]string{"traceparent": {sampleTraceparent}}, true},
		{"other case", map[string][]string{"Traceparent": {sampleTraceparent}}, true},
		{"no headers", nil, false},
		{"no traceparent", map[string][]string{"Nats-Msg-Id": {"1"}}, false},
		{"malformed", map[string][]string{"traceparent": {"00-zz-00-01"}}, false},
		{"all-zero trace id", map[string][]string{"traceparent": {"00-00000000000000000000000000000000-00f067aa0ba902b7-01"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			link, ok := LinkFromHeaders(tt.headers)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if ok && link.SpanContext.SpanID().String() != "00f067aa0ba902b7" {
				t.Errorf("link span id %s, want 00f067aa0ba902b7", link.SpanContext.SpanID())
			}
		})
	}
}

// An ingest batch span links every producer rather than picking a parent.
func TestBatchSpanLinksEveryProducer(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	p := setupForTest(t, WithSpanProcessor(rec))
	tr := p.Tracer("test")

	var msgs []map[string][]string
	for range 3 {
		ctx, s := tr.Start(context.Background(), "producer.publish")
		msgs = append(msgs, Headers(ctx))
		s.End()
	}
	msgs = append(msgs, map[string][]string{}) // a producer without tracing
	var links []trace.Link
	for _, h := range msgs {
		if l, ok := LinkFromHeaders(h); ok {
			links = append(links, l)
		}
	}
	_, batch := tr.Start(context.Background(), SpanIngestBatch, trace.WithLinks(links...))
	batch.End()

	spans := rec.Ended()
	got := spans[len(spans)-1]
	if len(got.Links()) != 3 {
		t.Fatalf("batch span has %d links, want 3", len(got.Links()))
	}
	for i, l := range got.Links() {
		if l.SpanContext.SpanID() != spans[i].SpanContext().SpanID() {
			t.Errorf("link %d -> %s, want producer %s", i, l.SpanContext.SpanID(), spans[i].SpanContext().SpanID())
		}
	}
}

func TestInjectWithoutSpanOrIntoNilMap(t *testing.T) {
	h := map[string][]string{}
	Inject(context.Background(), h)
	if len(h) != 0 {
		t.Errorf("Inject without a span wrote %v", h)
	}
	Inject(context.Background(), nil) // documented no-op, must not panic
}

// Extract runs once per ingested message. Baseline: the same propagator
// over a header map that needs no case-insensitive scan.
func BenchmarkExtractLowercase(b *testing.B) {
	h := map[string][]string{"traceparent": {sampleTraceparent}, "Nats-Msg-Id": {"1"}, "Aof-Stream": {"s"}}
	ctx := context.Background()
	for b.Loop() {
		_ = Extract(ctx, h)
	}
}

func BenchmarkExtractMixedCase(b *testing.B) {
	h := map[string][]string{"Traceparent": {sampleTraceparent}, "Nats-Msg-Id": {"1"}, "Aof-Stream": {"s"}}
	ctx := context.Background()
	for b.Loop() {
		_ = Extract(ctx, h)
	}
}
