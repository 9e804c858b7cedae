package tracing

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Environment variables of the OpenTelemetry specification
// ("OpenTelemetry Protocol Exporter", "General SDK Configuration") that
// choose the exporter when Config.Exporter is empty. The OTLP exporters read
// the rest themselves (OTEL_EXPORTER_OTLP_ENDPOINT, _TRACES_ENDPOINT,
// _HEADERS, _INSECURE, _TIMEOUT, _COMPRESSION, _CERTIFICATE and their
// _TRACES_ forms) whenever the matching Config field is empty.
const (
	EnvTracesExporter = "OTEL_TRACES_EXPORTER"               // otlp, console or none
	EnvEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"        // base URL: /v1/traces is appended for HTTP
	EnvTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" // signal URL: used as is
	EnvProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"        // grpc, http/protobuf (default) or http/json
	EnvTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" // overrides EnvProtocol for traces
)

// otlpTracesPath is the path an OTLP/HTTP collector receives spans on,
// appended to a base endpoint.
const otlpTracesPath = "/v1/traces"

// resolveExporter returns the exporter Setup builds: exporter when set,
// else the one the OTEL_* environment selects (read through getenv), else
// none. As in the specification, OTEL_TRACES_EXPORTER=otlp picks the
// protocol from OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, then
// OTEL_EXPORTER_OTLP_PROTOCOL, then http/protobuf. Setting only an
// OTEL_EXPORTER_OTLP_*ENDPOINT also means otlp: that is how collectors'
// quick-start guides configure an SDK.
func resolveExporter(exporter string, getenv func(string) string) (string, error) {
	if exporter != "" {
		return exporter, nil
	}
	switch v := strings.TrimSpace(getenv(EnvTracesExporter)); v {
	case "":
		if getenv(EnvEndpoint) == "" && getenv(EnvTracesEndpoint) == "" {
			return ExporterNone, nil
		}
	case "otlp":
	case "console":
		return ExporterStdout, nil
	case "none":
		return ExporterNone, nil
	default:
		return "", fmt.Errorf("tracing: %s=%q: want otlp, console or none (or set tracing.exporter)", EnvTracesExporter, v)
	}
	key, protocol := EnvTracesProtocol, getenv(EnvTracesProtocol)
	if protocol == "" {
		key, protocol = EnvProtocol, getenv(EnvProtocol)
	}
	switch protocol {
	case "", "http/protobuf", "http/json":
		return ExporterOTLPHTTP, nil
	case "grpc":
		return ExporterOTLPGRPC, nil
	}
	return "", fmt.Errorf("tracing: %s=%q: want grpc, http/protobuf or http/json", key, protocol)
}

// otlpTarget is where an OTLP exporter sends spans, in the form of the
// exporter option that takes it. The zero value sets no option, so the
// exporter reads OTEL_EXPORTER_OTLP_*ENDPOINT or uses its default
// (localhost:4317 for gRPC, localhost:4318/v1/traces for HTTP).
type otlpTarget struct {
	URL      string // a full URL, used as is (WithEndpointURL)
	HostPort string // host:port (WithEndpoint); the HTTP exporter adds /v1/traces
}

// resolveOTLPTarget turns Config.Endpoint (a base endpoint, like
// OTEL_EXPORTER_OTLP_ENDPOINT) and Config.TracesEndpoint (a signal
// endpoint, like OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) into the target of
// exporter, following the OTLP exporter specification: for OTLP/HTTP a base
// URL gets /v1/traces appended to its path, a signal URL is used as is; for
// OTLP/gRPC an endpoint has no path. TracesEndpoint wins when both are set.
func resolveOTLPTarget(exporter, endpoint, tracesEndpoint string) (otlpTarget, error) {
	switch {
	case tracesEndpoint != "":
		return otlpEndpoint(exporter, "traces endpoint", tracesEndpoint, false)
	case endpoint != "":
		return otlpEndpoint(exporter, "endpoint", endpoint, true)
	}
	return otlpTarget{}, nil
}

func otlpEndpoint(exporter, what, endpoint string, base bool) (otlpTarget, error) {
	if !strings.Contains(endpoint, "://") {
		if strings.Contains(endpoint, "/") {
			return otlpTarget{}, fmt.Errorf("tracing: %s %q: want host:port or a URL with scheme (http://host:port)", what, endpoint)
		}
		return otlpTarget{HostPort: endpoint}, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return otlpTarget{}, fmt.Errorf("tracing: %s: %w", what, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return otlpTarget{}, fmt.Errorf("tracing: %s %q: want http://host:port or https://host:port", what, endpoint)
	}
	if exporter == ExporterOTLPGRPC {
		if u.Path != "" && u.Path != "/" {
			return otlpTarget{}, fmt.Errorf("tracing: %s %q: an OTLP/gRPC endpoint has no path", what, endpoint)
		}
		return otlpTarget{URL: endpoint}, nil
	}
	if base {
		u.Path = strings.TrimSuffix(u.Path, "/") + otlpTracesPath
		u.RawPath = ""
	}
	return otlpTarget{URL: u.String()}, nil
}

func newSpanExporter(ctx context.Context, cfg Config, stdout io.Writer) (sdktrace.SpanExporter, error) {
	exporter, err := resolveExporter(cfg.Exporter, os.Getenv)
	if err != nil {
		return nil, err
	}
	switch exporter {
	case ExporterNone:
		return nil, nil
	case ExporterStdout:
		if stdout == nil {
			stdout = os.Stdout
		}
		exp, err := stdouttrace.New(stdouttrace.WithWriter(stdout))
		if err != nil {
			return nil, fmt.Errorf("tracing: stdout exporter: %w", err)
		}
		return exp, nil
	}
	target, err := resolveOTLPTarget(exporter, cfg.Endpoint, cfg.TracesEndpoint)
	if err != nil {
		return nil, err
	}
	if exporter == ExporterOTLPGRPC {
		return newOTLPGRPCExporter(ctx, cfg, target)
	}
	return newOTLPHTTPExporter(ctx, cfg, target)
}

// newOTLPGRPCExporter passes only the options Config sets, so that the
// exporter's own reading of OTEL_EXPORTER_OTLP_* fills the rest.
func newOTLPGRPCExporter(ctx context.Context, cfg Config, target otlpTarget) (sdktrace.SpanExporter, error) {
	var opts []otlptracegrpc.Option
	switch {
	case target.URL != "":
		opts = append(opts, otlptracegrpc.WithEndpointURL(target.URL))
	case target.HostPort != "":
		opts = append(opts, otlptracegrpc.WithEndpoint(target.HostPort))
	}
	if len(cfg.Headers) > 0 {
		opts = append(opts, otlptracegrpc.WithHeaders(cfg.Headers))
	}
	if cfg.Insecure {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: otlp-grpc exporter: %w", err)
	}
	return exp, nil
}

// newOTLPHTTPExporter is newOTLPGRPCExporter for OTLP/HTTP.
func newOTLPHTTPExporter(ctx context.Context, cfg Config, target otlpTarget) (sdktrace.SpanExporter, error) {
	var opts []otlptracehttp.Option
	switch {
	case target.URL != "":
		opts = append(opts, otlptracehttp.WithEndpointURL(target.URL))
	case target.HostPort != "":
		opts = append(opts, otlptracehttp.WithEndpoint(target.HostPort))
	}
	if len(cfg.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(cfg.Headers))
	}
	if cfg.Insecure {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: otlp-http exporter: %w", err)
	}
	return exp, nil
}
