package tracing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestResolveExporterFromConfigThenEnvironment(t *testing.T) {
	tests := []struct {
		name     string
		exporter string
		env      map[string]string
		want     string
		wantErr  string
	}{
		{name: "nothing set", want: ExporterNone},
		{name: "config wins over env", exporter: ExporterOTLPGRPC,
			env: map[string]string{EnvTracesExporter: "none", EnvProtocol: "http/protobuf"}, want: ExporterOTLPGRPC},
		{name: "config none wins over env endpoint", exporter: ExporterNone,
			env: map[string]string{EnvEndpoint: "http://c:4318"}, want: ExporterNone},
		{name: "base endpoint alone means otlp over http", env: map[string]string{EnvEndpoint: "http://c:4318"}, want: ExporterOTLPHTTP},
		{name: "traces endpoint alone means otlp over http", env: map[string]string{EnvTracesEndpoint: "http://c:4318/v1/traces"}, want: ExporterOTLPHTTP},
		{name: "protocol grpc", env: map[string]string{EnvEndpoint: "http://c:4317", EnvProtocol: "grpc"}, want: ExporterOTLPGRPC},
		{name: "traces protocol overrides protocol",
			env: map[string]string{EnvEndpoint: "http://c:4317", EnvProtocol: "http/protobuf", EnvTracesProtocol: "grpc"}, want: ExporterOTLPGRPC},
		{name: "http/json is otlp-http", env: map[string]string{EnvTracesExporter: "otlp", EnvProtocol: "http/json"}, want: ExporterOTLPHTTP},
		{name: "exporter otlp without endpoint", env: map[string]string{EnvTracesExporter: "otlp"}, want: ExporterOTLPHTTP},
		{name: "exporter console", env: map[string]string{EnvTracesExporter: "console"}, want: ExporterStdout},
		{name: "exporter none beats endpoint", env: map[string]string{EnvTracesExporter: "none", EnvEndpoint: "http://c:4318"}, want: ExporterNone},
		{name: "unknown exporter", env: map[string]string{EnvTracesExporter: "zipkin"}, wantErr: `OTEL_TRACES_EXPORTER="zipkin"`},
		{name: "unknown protocol", env: map[string]string{EnvEndpoint: "http://c:4318", EnvTracesProtocol: "udp"},
			wantErr: `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="udp"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveExporter(tt.exporter, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("resolveExporter = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestResolveOTLPTargetFollowsSpecification(t *testing.T) {
	tests := []struct {
		name                     string
		exporter                 string
		endpoint, tracesEndpoint string
		want                     otlpTarget
		wantErr                  string
	}{
		{name: "nothing: the exporter reads its environment", exporter: ExporterOTLPHTTP},
		{name: "http base URL gets /v1/traces", exporter: ExporterOTLPHTTP, endpoint: "http://127.0.0.1:4318",
			want: otlpTarget{URL: "http://127.0.0.1:4318/v1/traces"}},
		{name: "http base URL with slash", exporter: ExporterOTLPHTTP, endpoint: "https://c:4318/",
			want: otlpTarget{URL: "https://c:4318/v1/traces"}},
		{name: "http base URL with a path prefix", exporter: ExporterOTLPHTTP, endpoint: "https://gw.example/otlp",
			want: otlpTarget{URL: "https://gw.example/otlp/v1/traces"}},
		{name: "http host:port: the exporter adds /v1/traces", exporter: ExporterOTLPHTTP, endpoint: "c:4318",
			want: otlpTarget{HostPort: "c:4318"}},
		{name: "http traces endpoint used as is", exporter: ExporterOTLPHTTP, tracesEndpoint: "https://v.example/api/traces",
			want: otlpTarget{URL: "https://v.example/api/traces"}},
		{name: "traces endpoint wins over base", exporter: ExporterOTLPHTTP, endpoint: "http://c:4318",
			tracesEndpoint: "http://d:4318/v1/traces", want: otlpTarget{URL: "http://d:4318/v1/traces"}},
		{name: "grpc base URL as is", exporter: ExporterOTLPGRPC, endpoint: "http://127.0.0.1:4317",
			want: otlpTarget{URL: "http://127.0.0.1:4317"}},
		{name: "grpc host:port", exporter: ExporterOTLPGRPC, endpoint: "c:4317", want: otlpTarget{HostPort: "c:4317"}},
		{name: "grpc URL with a path", exporter: ExporterOTLPGRPC, endpoint: "http://c:4317/v1/traces",
			wantErr: "OTLP/gRPC endpoint has no path"},
		{name: "path without scheme", exporter: ExporterOTLPHTTP, endpoint: "c:4318/v1/traces", wantErr: "want host:port or a URL"},
		{name: "unknown scheme", exporter: ExporterOTLPHTTP, endpoint: "udp://c:4318", wantErr: "want http://host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveOTLPTarget(tt.exporter, tt.endpoint, tt.tracesEndpoint)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("resolveOTLPTarget = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// collector is an OTLP/HTTP receiver that records the path and
// Authorization header of every export.
type collectorRequest struct{ path, auth string }

func startCollector(t *testing.T) (*httptest.Server, chan collectorRequest) {
	got := make(chan collectorRequest, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- collectorRequest{r.URL.Path, r.Header.Get("Authorization")}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

// exportOneSpan sets up cfg, ends one span and shuts down (which exports).
func exportOneSpan(t *testing.T, cfg Config) {
	t.Helper()
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
}

// The documented form tracing.endpoint=http://host:4318 and the OTEL_*
// environment reach the collector's /v1/traces, not /.
func TestOTLPHTTPEndpointFormsReachV1Traces(t *testing.T) {
	tests := []struct {
		name     string
		cfg      func(url string) Config
		env      func(url string) map[string]string
		wantPath string
		wantAuth string
	}{
		{name: "tracing.endpoint base URL",
			cfg:      func(u string) Config { return Config{Exporter: ExporterOTLPHTTP, Endpoint: u, SamplingRatio: 1} },
			wantPath: "/v1/traces"},
		{name: "tracing.endpoint base URL with prefix",
			cfg: func(u string) Config {
				return Config{Exporter: ExporterOTLPHTTP, Endpoint: u + "/otlp/", SamplingRatio: 1}
			},
			wantPath: "/otlp/v1/traces"},
		{name: "tracing.traces_endpoint as is",
			cfg: func(u string) Config {
				return Config{Exporter: ExporterOTLPHTTP, TracesEndpoint: u + "/custom/spans", SamplingRatio: 1}
			},
			wantPath: "/custom/spans"},
		{name: "OTEL_EXPORTER_OTLP_ENDPOINT with tracing keys unset",
			cfg: func(string) Config { return Config{SamplingRatio: 1} },
			env: func(u string) map[string]string {
				return map[string]string{EnvEndpoint: u, "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20env"}
			},
			wantPath: "/v1/traces", wantAuth: "Bearer env"},
		{name: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as is",
			cfg:      func(string) Config { return Config{SamplingRatio: 1} },
			env:      func(u string) map[string]string { return map[string]string{EnvTracesEndpoint: u + "/custom/spans"} },
			wantPath: "/custom/spans"},
		{name: "OTEL_EXPORTER_OTLP_ENDPOINT under tracing.exporter=otlp-http",
			cfg:      func(string) Config { return Config{Exporter: ExporterOTLPHTTP, SamplingRatio: 1} },
			env:      func(u string) map[string]string { return map[string]string{EnvEndpoint: u + "/base"} },
			wantPath: "/base/v1/traces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, got := startCollector(t)
			if tt.env != nil {
				for k, v := range tt.env(srv.URL) {
					t.Setenv(k, v)
				}
			}
			exportOneSpan(t, tt.cfg(srv.URL))
			select {
			case r := <-got:
				if r.path != tt.wantPath || r.auth != tt.wantAuth {
					t.Fatalf("collector saw path %q auth %q, want %q and %q", r.path, r.auth, tt.wantPath, tt.wantAuth)
				}
			default:
				t.Fatal("no export reached the collector")
			}
		})
	}
}

func TestServiceNameFromEnvironmentWhenUnset(t *testing.T) {
	tests := []struct {
		name, configured string
		env              map[string]string
		want             string
	}{
		{name: "default", want: DefaultServiceName},
		{name: "OTEL_SERVICE_NAME", env: map[string]string{"OTEL_SERVICE_NAME": "ingest-eu"}, want: "ingest-eu"},
		{name: "OTEL_RESOURCE_ATTRIBUTES", env: map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs,team=storage"},
			want: "from-attrs"},
		{name: "tracing.service_name wins", configured: "configured", env: map[string]string{"OTEL_SERVICE_NAME": "ingest-eu"},
			want: "configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			exp := tracetest.NewInMemoryExporter()
			p, err := Setup(context.Background(), Config{ServiceName: tt.configured, SamplingRatio: 1}, WithSpanExporter(exp))
			if err != nil {
				t.Fatal(err)
			}
			_, s := p.Tracer("test").Start(context.Background(), SpanSeal)
			s.End()
			defer p.Shutdown(context.Background())
			if err := p.ForceFlush(context.Background()); err != nil {
				t.Fatal(err)
			}
			spans := exp.GetSpans()
			if len(spans) != 1 {
				t.Fatalf("got %d spans, want 1", len(spans))
			}
			for _, kv := range spans[0].Resource.Attributes() {
				if kv.Key == "service.name" {
					if got := kv.Value.Emit(); got != tt.want {
						t.Fatalf("service.name = %q, want %q", got, tt.want)
					}
					return
				}
			}
			t.Fatal("no service.name")
		})
	}
}
