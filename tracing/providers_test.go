package tracing

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func setupForTest(t *testing.T, opts ...Option) *Providers {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ServiceVersion = "test"
	cfg.InstanceID = "node-1"
	p, err := Setup(context.Background(), cfg, opts...)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p
}

// The batch processor buffers spans; Shutdown must export them before it
// returns, and spans ended afterwards are dropped.
func TestShutdownFlushesBufferedSpans(t *testing.T) {
	exp := keepOnShutdown{tracetest.NewInMemoryExporter()}
	p := setupForTest(t, WithSpanExporter(exp))
	tr := p.Tracer("test")
	for i := range 5 {
		_, s := tr.Start(context.Background(), SpanAppend, trace.WithAttributes(AttrRecords.Int(i)))
		s.End()
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if got := len(exp.GetSpans()); got != 5 {
		t.Fatalf("exported %d spans after Shutdown, want 5", got)
	}
	_, late := tr.Start(context.Background(), SpanAppend)
	late.End()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if got := len(exp.GetSpans()); got != 5 {
		t.Fatalf("a span ended after Shutdown was exported (%d spans)", got)
	}
}

func TestSpansCarryServiceResource(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	p := setupForTest(t, WithSpanExporter(exp))
	_, s := p.Tracer("test").Start(context.Background(), SpanSeal)
	s.End()
	if err := p.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("got %d spans, want 1", len(spans))
	}
	want := map[string]string{"service.name": DefaultServiceName, "service.version": "test", "service.instance.id": "node-1"}
	got := map[string]string{}
	for _, kv := range spans[0].Resource.Attributes() {
		got[string(kv.Key)] = kv.Value.Emit()
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("resource %s = %q, want %q (resource %v)", k, got[k], v, got)
		}
	}
}

// Ratio 0 samples no new root trace, but a remote parent's sampled flag is
// obeyed (ParentBased), so a producer's sampled trace continues through us.
func TestSamplerIsParentBased(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	cfg := DefaultConfig()
	cfg.SamplingRatio = 0
	p, err := Setup(context.Background(), cfg, WithSpanProcessor(rec))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	tr := p.Tracer("test")

	_, root := tr.Start(context.Background(), SpanRead)
	root.End()
	if root.SpanContext().IsSampled() {
		t.Error("root span sampled with ratio 0")
	}
	parent := Extract(context.Background(), map[string][]string{"traceparent": {sampleTraceparent}})
	_, child := tr.Start(parent, SpanAppend)
	child.End()
	if !child.SpanContext().IsSampled() {
		t.Error("child of a sampled remote parent was not sampled")
	}
	if n := len(rec.Ended()); n != 1 {
		t.Errorf("recorded %d spans, want 1 (the child)", n)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"default", DefaultConfig(), true},
		{"zero value", Config{}, true},
		{"otlp-grpc", Config{Exporter: ExporterOTLPGRPC, SamplingRatio: 0.5}, true},
		{"unknown exporter", Config{Exporter: "jaeger", SamplingRatio: 1}, false},
		{"ratio above 1", Config{SamplingRatio: 1.5}, false},
		{"negative ratio", Config{SamplingRatio: -0.1}, false},
		{"otlp-http base URL", Config{Exporter: ExporterOTLPHTTP, Endpoint: "http://c:4318", SamplingRatio: 1}, true},
		{"otlp-grpc URL with a path", Config{Exporter: ExporterOTLPGRPC, Endpoint: "http://c:4317/v1/traces", SamplingRatio: 1}, false},
		{"endpoint with a path but no scheme", Config{Exporter: ExporterOTLPHTTP, Endpoint: "c:4318/v1/traces", SamplingRatio: 1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if !tt.ok {
				if _, serr := Setup(context.Background(), tt.cfg); serr == nil {
					t.Fatal("Setup accepted a config Validate rejects")
				}
			}
		})
	}
}

func TestStdoutExporterWritesSpans(t *testing.T) {
	var buf syncBuffer
	cfg := DefaultConfig()
	cfg.Exporter = ExporterStdout
	p, err := Setup(context.Background(), cfg, WithStdoutWriter(&buf))
	if err != nil {
		t.Fatal(err)
	}
	_, s := p.Tracer("test").Start(context.Background(), SpanTier2Upload, trace.WithAttributes(AttrStream.String("orders")))
	s.End()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, SpanTier2Upload) || !strings.Contains(out, "orders") {
		t.Fatalf("stdout exporter output lacks the span: %q", out)
	}
}

// The OTLP/HTTP exporter really posts to the configured endpoint with the
// configured headers.
func TestOTLPHTTPExporterSendsToEndpointWithHeaders(t *testing.T) {
	type request struct{ path, auth string }
	got := make(chan request, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- request{r.URL.Path, r.Header.Get("Authorization")}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	cfg := DefaultConfig()
	cfg.Exporter = ExporterOTLPHTTP
	cfg.Endpoint = strings.TrimPrefix(srv.URL, "http://")
	cfg.Insecure = true
	cfg.Headers = map[string]string{"Authorization": "Bearer t0ken"}
	p, err := Setup(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, s := p.Tracer("test").Start(context.Background(), SpanHydrate)
	s.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case r := <-got:
		if r.path != "/v1/traces" || r.auth != "Bearer t0ken" {
			t.Fatalf("collector saw path %q auth %q, want /v1/traces and the configured header", r.path, r.auth)
		}
	default:
		t.Fatal("Shutdown returned without the span reaching the collector")
	}
}

func TestSetupInstallsW3CPropagatorGlobally(t *testing.T) {
	setupForTest(t)
	fields := otel.GetTextMapPropagator().Fields()
	for _, want := range []string{"traceparent", "baggage"} {
		found := false
		for _, f := range fields {
			found = found || f == want
		}
		if !found {
			t.Errorf("global propagator fields %v lack %q", fields, want)
		}
	}
}

func TestNilProvidersHandOutNoops(t *testing.T) {
	var p *Providers
	_, s := p.Tracer("x").Start(context.Background(), SpanRead)
	s.SetAttributes(attribute.Int("n", 1))
	s.End()
	if s.SpanContext().IsValid() {
		t.Error("nil Providers produced a real span")
	}
	in, err := p.Instruments()
	if err != nil || in == nil {
		t.Fatalf("nil Providers Instruments() = %v, %v; want no-op instruments", in, err)
	}
	in.IncFlushFailure(context.Background())
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if TracerOrNop(nil) == nil || MeterOrNop(nil) == nil {
		t.Fatal("OrNop helpers returned nil")
	}
}

func TestInstrumentsIsOnePerProviders(t *testing.T) {
	p := setupForTest(t)
	a, err := p.Instruments()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := p.Instruments()
	if a != b {
		t.Fatal("Providers.Instruments returned two sets; gauges would be observed twice")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// keepOnShutdown keeps the spans an InMemoryExporter holds when the provider
// shuts it down (InMemoryExporter.Shutdown forgets them), so a test can look
// at what the final flush exported.
type keepOnShutdown struct{ *tracetest.InMemoryExporter }

func (keepOnShutdown) Shutdown(context.Context) error { return nil }
