package tracing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Exporter names accepted in Config.Exporter.
const (
	ExporterNone     = "none"      // spans are sampled and propagated but not exported
	ExporterStdout   = "stdout"    // one JSON document per span on the stdout writer
	ExporterOTLPGRPC = "otlp-grpc" // OTLP over gRPC (default port 4317)
	ExporterOTLPHTTP = "otlp-http" // OTLP over HTTP/protobuf (default port 4318)
)

// DefaultServiceName is the service.name used when Config.ServiceName is empty.
const DefaultServiceName = "aof-gateway"

// Config says where spans go and how this process names itself. The config
// package fills it from the [tracing] section.
type Config struct {
	// Exporter is one of none, stdout, otlp-grpc, otlp-http. Empty leaves
	// the choice to OTEL_TRACES_EXPORTER and OTEL_EXPORTER_OTLP_* (see
	// resolveExporter), and none when those are unset too.
	Exporter string
	// Endpoint is the collector's base endpoint, host:port or a URL
	// (http://collector:4318), like OTEL_EXPORTER_OTLP_ENDPOINT: OTLP/HTTP
	// appends /v1/traces to it. Empty leaves the exporter's defaults and the
	// OTEL_EXPORTER_OTLP_* environment.
	Endpoint string
	// TracesEndpoint is a signal endpoint, like
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: a URL used as is
	// (https://vendor.example/otlp/traces). It wins over Endpoint.
	TracesEndpoint string
	// Headers are sent with every OTLP export (authentication tokens). They
	// are secrets: never logged.
	Headers map[string]string
	// Insecure disables TLS for OTLP.
	Insecure bool
	// SamplingRatio in [0, 1] is the share of root traces sampled; a span
	// with a parent follows its parent's decision. 0 samples no new root
	// traces; DefaultConfig sets 1.
	SamplingRatio float64
	// ServiceName, ServiceVersion and InstanceID become the resource
	// attributes service.name, service.version and service.instance.id.
	// Empty ServiceName means OTEL_SERVICE_NAME (or service.name in
	// OTEL_RESOURCE_ATTRIBUTES), else DefaultServiceName; empty InstanceID
	// means the host name.
	ServiceName, ServiceVersion, InstanceID string
}

// DefaultConfig returns the configuration used when nothing is set: no
// exporter, every root trace sampled, service name aof-gateway.
func DefaultConfig() Config {
	return Config{Exporter: ExporterNone, SamplingRatio: 1, ServiceName: DefaultServiceName}
}

// Validate reports the first setting Setup would reject.
func (c Config) Validate() error {
	switch c.Exporter {
	case "", ExporterNone, ExporterStdout, ExporterOTLPGRPC, ExporterOTLPHTTP:
	default:
		return fmt.Errorf("tracing: exporter %q: want none, stdout, otlp-grpc or otlp-http", c.Exporter)
	}
	if !(c.SamplingRatio >= 0 && c.SamplingRatio <= 1) { // also rejects NaN
		return fmt.Errorf("tracing: sampling ratio %v: want a value in [0, 1]", c.SamplingRatio)
	}
	if c.Exporter == ExporterOTLPGRPC || c.Exporter == ExporterOTLPHTTP {
		if _, err := resolveOTLPTarget(c.Exporter, c.Endpoint, c.TracesEndpoint); err != nil {
			return err
		}
	}
	return nil
}

// Option adjusts Setup beyond what Config says; tests use them to capture
// spans in memory.
type Option func(*setupOptions)

type setupOptions struct {
	exporters    []sdktrace.SpanExporter
	processors   []sdktrace.SpanProcessor
	stdout       io.Writer
	global       bool
	noRuntime    bool
	resourceAttr []resourceOpt
}

type resourceOpt = resource.Option

// WithSpanExporter adds an exporter behind its own batch span processor, in
// addition to the one Config selects. Shutdown flushes it.
func WithSpanExporter(exp sdktrace.SpanExporter) Option {
	return func(o *setupOptions) { o.exporters = append(o.exporters, exp) }
}

// WithSpanProcessor adds a span processor as is (tracetest.SpanRecorder sees
// spans synchronously as they start and end).
func WithSpanProcessor(sp sdktrace.SpanProcessor) Option {
	return func(o *setupOptions) { o.processors = append(o.processors, sp) }
}

// WithStdoutWriter sends the stdout exporter's output to w instead of
// os.Stdout.
func WithStdoutWriter(w io.Writer) Option {
	return func(o *setupOptions) { o.stdout = w }
}

// WithGlobalProviders also installs the tracer and meter providers as the
// otel globals, for third-party libraries that only know globals. The
// propagator is always installed globally.
func WithGlobalProviders() Option {
	return func(o *setupOptions) { o.global = true }
}

// WithoutRuntimeMetrics leaves the Go runtime and process collectors off
// the metrics registry (tests that compare exact scrape output).
func WithoutRuntimeMetrics() Option {
	return func(o *setupOptions) { o.noRuntime = true }
}

// Providers owns the tracer and meter providers of one process. Create it
// once with Setup, hand Tracer/Meter/Instruments to the packages, and call
// Shutdown last so that buffered spans are exported. A nil *Providers hands
// out no-op tracers and meters.
type Providers struct {
	tp       *sdktrace.TracerProvider
	mp       *sdkmetric.MeterProvider
	registry *prometheus.Registry
	handler  http.Handler

	instOnce sync.Once
	inst     *Instruments
	instErr  error

	shutdownOnce sync.Once
	shutdownErr  error
}

// Propagator returns the W3C TraceContext + Baggage propagator this package
// uses for NATS headers.
func Propagator() propagation.TextMapPropagator { return propagator }

var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Setup builds the providers described by cfg. ctx bounds exporter
// construction only. On error nothing is left running.
func Setup(ctx context.Context, cfg Config, opts ...Option) (*Providers, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var o setupOptions
	for _, opt := range opts {
		opt(&o)
	}

	res, err := newResource(ctx, cfg)
	if err != nil {
		return nil, err
	}

	tpOpts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SamplingRatio))),
	}
	exp, err := newSpanExporter(ctx, cfg, o.stdout)
	if err != nil {
		return nil, err
	}
	if exp != nil {
		tpOpts = append(tpOpts, sdktrace.WithBatcher(exp))
	}
	for _, e := range o.exporters {
		tpOpts = append(tpOpts, sdktrace.WithBatcher(e))
	}
	for _, sp := range o.processors {
		tpOpts = append(tpOpts, sdktrace.WithSpanProcessor(sp))
	}
	tp := sdktrace.NewTracerProvider(tpOpts...)

	reg := prometheus.NewRegistry()
	if !o.noRuntime {
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	promExp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		_ = tp.Shutdown(ctx)
		return nil, fmt.Errorf("tracing: prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(promExp))

	otel.SetTextMapPropagator(propagator)
	if o.global {
		otel.SetTracerProvider(tp)
		otel.SetMeterProvider(mp)
	}
	return &Providers{
		tp:       tp,
		mp:       mp,
		registry: reg,
		handler:  promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
	}, nil
}

// newResource describes this process. Later options override earlier
// ones: the default service.name, then OTEL_RESOURCE_ATTRIBUTES and
// OTEL_SERVICE_NAME, then what Config sets.
func newResource(ctx context.Context, cfg Config) (*resource.Resource, error) {
	instance := cfg.InstanceID
	if instance == "" {
		instance, _ = os.Hostname()
	}
	attrs := []resourceOpt{resource.WithAttributes(semconv.ServiceName(DefaultServiceName))}
	if instance != "" {
		attrs = append(attrs, resource.WithAttributes(semconv.ServiceInstanceID(instance)))
	}
	attrs = append(attrs, resource.WithFromEnv())
	if cfg.ServiceName != "" {
		attrs = append(attrs, resource.WithAttributes(semconv.ServiceName(cfg.ServiceName)))
	}
	if cfg.ServiceVersion != "" {
		attrs = append(attrs, resource.WithAttributes(semconv.ServiceVersion(cfg.ServiceVersion)))
	}
	attrs = append(attrs, resource.WithSchemaURL(semconv.SchemaURL), resource.WithTelemetrySDK())
	res, err := resource.New(ctx, attrs...)
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	return res, nil
}

// Tracer returns a tracer of this provider; nil Providers give a no-op one.
func (p *Providers) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	if p == nil {
		return tracenoop.NewTracerProvider().Tracer(name)
	}
	return p.tp.Tracer(name, opts...)
}

// Meter returns a meter of this provider; nil Providers give a no-op one.
func (p *Providers) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	if p == nil {
		return metricnoop.NewMeterProvider().Meter(name)
	}
	return p.mp.Meter(name, opts...)
}

// TracerProvider exposes the SDK tracer provider (for libraries that take one).
func (p *Providers) TracerProvider() trace.TracerProvider {
	if p == nil {
		return tracenoop.NewTracerProvider()
	}
	return p.tp
}

// MeterProvider exposes the SDK meter provider.
func (p *Providers) MeterProvider() metric.MeterProvider {
	if p == nil {
		return metricnoop.NewMeterProvider()
	}
	return p.mp
}

// InstrumentationName is the meter and tracer name of the gateway's own
// instruments.
const InstrumentationName = "github.com/bop-aof/aof"

// Instruments returns the process-wide instrument set, created on first
// call from Meter(InstrumentationName). Every package must share this one
// set: a second set would observe every registered gauge twice.
func (p *Providers) Instruments() (*Instruments, error) {
	if p == nil {
		return NewInstruments(nil)
	}
	p.instOnce.Do(func() {
		p.inst, p.instErr = NewInstruments(p.Meter(InstrumentationName))
	})
	return p.inst, p.instErr
}

// Registry is the private Prometheus registry behind MetricsHandler; other
// Prometheus collectors may be registered on it.
func (p *Providers) Registry() *prometheus.Registry { return p.registry }

// MetricsHandler serves the Prometheus text exposition of every instrument
// of this MeterProvider, for mounting at /metrics.
func (p *Providers) MetricsHandler() http.Handler { return p.handler }

// ForceFlush exports every span ended so far.
func (p *Providers) ForceFlush(ctx context.Context) error {
	if p == nil {
		return nil
	}
	if err := p.tp.ForceFlush(ctx); err != nil {
		return fmt.Errorf("tracing: flush spans: %w", err)
	}
	return nil
}

// Shutdown exports every ended span, then stops both providers. Spans
// started afterwards are dropped. It is safe to call more than once; later
// calls return the first call's result. ctx bounds the export.
func (p *Providers) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	p.shutdownOnce.Do(func() {
		var errs []error
		if err := p.tp.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("tracing: shutdown tracer provider: %w", err))
		}
		if err := p.mp.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("tracing: shutdown meter provider: %w", err))
		}
		p.shutdownErr = errors.Join(errs...)
	})
	return p.shutdownErr
}

// TracerOrNop returns t, or a no-op tracer when t is nil, so a package can
// accept a nil tracer.
func TracerOrNop(t trace.Tracer) trace.Tracer {
	if t == nil {
		return tracenoop.NewTracerProvider().Tracer(InstrumentationName)
	}
	return t
}

// MeterOrNop returns m, or a no-op meter when m is nil.
func MeterOrNop(m metric.Meter) metric.Meter {
	if m == nil {
		return metricnoop.NewMeterProvider().Meter(InstrumentationName)
	}
	return m
}
