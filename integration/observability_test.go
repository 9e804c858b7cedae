package integration

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"

	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/backpressure"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tracing"
)

// ---- Jaeger all-in-one -------------------------------------------------

// jaeger is a running Jaeger all-in-one (v2, an OpenTelemetry Collector
// distribution) with in-memory storage, every listener on a free loopback
// port.
type jaeger struct {
	OTLPGRPC string // host:port of the OTLP/gRPC receiver
	OTLPHTTP string // host:port of the OTLP/HTTP receiver
	Query    string // http://host:port of the query service (API and UI)
	log      string
}

// jaegerConfig is the collector configuration: the all-in-one pipeline
// (OTLP receiver -> memory storage <- query extension) without the Jaeger
// and Zipkin receivers, remote sampling, health check, expvar and zpages,
// and without the internal Prometheus endpoint on :8888, so that nothing
// listens on a fixed port.
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
  jaeger_query:
    enable_tracing: false
    storage:
      traces: memstore
    http:
      endpoint: %q
    grpc:
      endpoint: %q
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %q
      http:
        endpoint: %q
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

// startJaeger runs <repo>/bin/jaeger (installed by `make tools`, i.e.
// scripts/install-jaeger.sh) until the test ends.
func startJaeger(t *testing.T) *jaeger {
	t.Helper()
	bin := filepath.Join(harness.RepoRoot(t), "bin", "jaeger")
	if p := os.Getenv("AOF_JAEGER"); p != "" {
		bin = p
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("jaeger all-in-one not found at %s: run `make tools` (scripts/install-jaeger.sh installs Jaeger v1.76.0 into ./bin)", bin)
	}
	port := func() string { return fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t)) }
	j := &jaeger{OTLPGRPC: port(), OTLPHTTP: port()}
	queryHTTP, queryGRPC := port(), port()
	j.Query = "http://" + queryHTTP
	dir := t.TempDir()
	cfg := filepath.Join(dir, "jaeger.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, jaegerConfig, queryHTTP, queryGRPC, j.OTLPGRPC, j.OTLPHTTP), 0o644); err != nil {
		t.Fatal(err)
	}
	j.log = filepath.Join(dir, "jaeger.log")
	logf, err := os.Create(j.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start jaeger: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(j.Query + "/api/services")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return j
			}
		}
		select {
		case <-exited:
			t.Fatalf("jaeger exited during start:\n%s", j.logTail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("jaeger query not answering on %s after 30s:\n%s", j.Query, j.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (j *jaeger) logTail() string {
	b, _ := os.ReadFile(j.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// jaegerSpan is a span as Jaeger's query API (/api/traces) returns it.
type jaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"` // CHILD_OF (parent) or FOLLOWS_FROM (link)
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Type  string `json:"type"`
		Value any    `json:"value"`
	} `json:"tags"`
	ProcessID string `json:"processID"`
}

type jaegerTrace struct {
	TraceID   string       `json:"traceID"`
	Spans     []jaegerSpan `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

func (s jaegerSpan) tag(k string) (string, bool) {
	for _, t := range s.Tags {
		if t.Key == k {
			return fmt.Sprint(t.Value), true
		}
	}
	return "", false
}

func (s jaegerSpan) ref(refType, spanID string) bool {
	for _, r := range s.References {
		if r.RefType == refType && r.SpanID == spanID {
			return true
		}
	}
	return false
}

// traces queries /api/traces with the given parameters.
func (j *jaeger) traces(t *testing.T, query string) []jaegerTrace {
	t.Helper()
	resp, err := http.Get(j.Query + "/api/traces?" + query)
	if err != nil {
		t.Fatalf("jaeger query: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Data   []jaegerTrace `json:"data"`
		Errors any           `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("jaeger query %s: status %s: %v", query, resp.Status, err)
	}
	return body.Data
}

// gatewaySpans returns every span of service aof-gateway Jaeger holds, by
// span id.
func (j *jaeger) gatewaySpans(t *testing.T, service string) map[string]jaegerSpan {
	t.Helper()
	out := map[string]jaegerSpan{}
	for _, tr := range j.traces(t, "service="+service+"&lookback=1h&limit=1000") {
		for _, s := range tr.Spans {
			out[s.SpanID] = s
		}
	}
	return out
}

// The gateway, exporting to a real Jaeger with the endpoint in the
// documented base-URL form (http://host:port, no path) over OTLP/HTTP and
// OTLP/gRPC, or with only the standard OTEL_* environment, produces a trace
// that a user finds through Jaeger's query API: the producer's span, the
// ingest batch as its child, the seal of the full segment and the append
// and fsync of the message that rolled it, then the Tier 1 compress of that
// segment linked to the trace (a FOLLOWS_FROM reference) and the Tier 2
// upload linked to the compress.
func TestGatewayTraceFromProducerToUploadInJaeger(t *testing.T) {
	tests := []struct {
		name    string
		env     func(j *jaeger) []string
		service string
	}{
		{"otlp-http base URL", func(j *jaeger) []string {
			return []string{"AOF2_TRACING_EXPORTER=otlp-http", "AOF2_TRACING_ENDPOINT=http://" + j.OTLPHTTP}
		}, tracing.DefaultServiceName},
		{"otlp-grpc base URL", func(j *jaeger) []string {
			return []string{"AOF2_TRACING_EXPORTER=otlp-grpc", "AOF2_TRACING_ENDPOINT=http://" + j.OTLPGRPC}
		}, tracing.DefaultServiceName},
		{"OTEL environment only", func(j *jaeger) []string {
			return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + j.OTLPHTTP, "OTEL_SERVICE_NAME=aof-gateway-env"}
		}, "aof-gateway-env"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := startJaeger(t)
			checkTraceInJaeger(t, j, newEnv(t, append(tt.env(j), "AOF2_SEGMENT_TARGET_BYTES=1000B")...), tt.service)
		})
	}
}

func checkTraceInJaeger(t *testing.T, j *jaeger, e *env, service string) {
	g := e.startGateway()
	js := e.nats.JetStream(t)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prov, err := tracing.Setup(ctx, tracing.Config{Exporter: tracing.ExporterOTLPHTTP, Endpoint: "http://" + j.OTLPHTTP,
		SamplingRatio: 1, ServiceName: "aof-test-producer"})
	if err != nil {
		t.Fatal(err)
	}
	producer := prov.Tracer("producer")
	publish := func(body string) trace.SpanContext {
		pctx, span := producer.Start(ctx, "producer.publish", trace.WithSpanKind(trace.SpanKindProducer))
		defer span.End()
		msg := nats.NewMsg("aof.ingest.orders")
		msg.Data = []byte(body)
		tracing.Inject(pctx, msg.Header)
		if _, err := js.PublishMsg(pctx, msg); err != nil {
			t.Fatalf("publish: %v", err)
		}
		// One message per fetch: the batch span is the producer's child.
		e.waitDrained(js, 30*time.Second)
		return span.SpanContext()
	}
	body := strings.Repeat("o", 700) // one record fills most of a 1000-byte segment
	publish(body)
	second := publish(body) // rolls segment 1 inside its trace
	if err := prov.Shutdown(ctx); err != nil {
		t.Fatalf("flush producer spans: %v", err)
	}
	waitMetric(t, g, `segment_residency{state="uploaded_to_tier2"}`, func(v float64) bool { return v >= 1 }, 30*time.Second)
	// The gateway keeps running while Jaeger is polled: its batch span
	// processor exports every few seconds. Stopping it first left the
	// spans to the shutdown's flush, which a loaded machine cut short.
	defer g.stop()

	tid := second.TraceID().String()
	var tr jaegerTrace
	var spans map[string]jaegerSpan
	deadline := time.Now().Add(45 * time.Second)
	for {
		spans = j.gatewaySpans(t, service)
		got := j.traces(t, "service=aof-test-producer&lookback=1h&limit=100")
		for _, c := range got {
			if c.TraceID == tid {
				tr = c
			}
		}
		if hasOps(tr, tracing.SpanIngestBatch, tracing.SpanSeal, tracing.SpanAppend, tracing.SpanFsync) &&
			countOp(spans, tracing.SpanTier2Upload) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s in Jaeger lacks spans: has %v; gateway operations %v\n%s", tid, ops(tr.Spans), opsOf(spans), j.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}

	byOp := map[string]jaegerSpan{}
	for _, s := range tr.Spans {
		byOp[s.OperationName] = s
		if svc := tr.Processes[s.ProcessID].ServiceName; s.OperationName != "producer.publish" && svc != service {
			t.Errorf("%s reported by service %q, want %q", s.OperationName, svc, service)
		}
	}
	batch := byOp[tracing.SpanIngestBatch]
	if !batch.ref("CHILD_OF", second.SpanID().String()) {
		t.Errorf("aof.ingest.batch references %v, want CHILD_OF the producer span %s", batch.References, second.SpanID())
	}
	seal := byOp[tracing.SpanSeal]
	for _, name := range []string{tracing.SpanSeal, tracing.SpanAppend, tracing.SpanFsync} {
		if s := byOp[name]; !s.ref("CHILD_OF", batch.SpanID) {
			t.Errorf("%s references %v, want CHILD_OF the batch %s", name, s.References, batch.SpanID)
		}
	}
	wantTags(t, seal, map[string]string{"aof.stream": "orders", "aof.segment": "1", "aof.records": "1"})
	wantTags(t, byOp[tracing.SpanAppend], map[string]string{"aof.stream": "orders", "aof.segment": "2", "aof.records": "1"})

	var compress, upload jaegerSpan
	for _, s := range spans {
		if seg, _ := s.tag("aof.segment"); seg != "1" {
			continue
		}
		switch s.OperationName {
		case tracing.SpanTier1Compress:
			compress = s
		case tracing.SpanTier2Upload:
			upload = s
		}
	}
	if compress.SpanID == "" || upload.SpanID == "" {
		t.Fatalf("no compress/upload span of segment 1 in Jaeger; gateway operations %v", opsOf(spans))
	}
	linked := false
	for _, r := range compress.References {
		linked = linked || (r.RefType == "FOLLOWS_FROM" && r.TraceID == tid && (r.SpanID == seal.SpanID || r.SpanID == batch.SpanID))
	}
	if !linked {
		t.Errorf("aof.tier1.compress references %v, want FOLLOWS_FROM the seal %s or the batch %s of trace %s", compress.References, seal.SpanID, batch.SpanID, tid)
	}
	if !upload.ref("FOLLOWS_FROM", compress.SpanID) {
		t.Errorf("aof.tier2.upload references %v, want FOLLOWS_FROM the compress %s", upload.References, compress.SpanID)
	}
	wantTags(t, compress, map[string]string{"aof.stream": "orders", "aof.segment": "1"})
	wantTags(t, upload, map[string]string{"aof.stream": "orders", "aof.segment": "1"})
	if _, ok := compress.tag("aof.bytes"); !ok {
		t.Errorf("aof.tier1.compress has no aof.bytes tag: %v", compress.Tags)
	}
}

func hasOps(tr jaegerTrace, names ...string) bool {
	have := map[string]bool{}
	for _, s := range tr.Spans {
		have[s.OperationName] = true
	}
	for _, n := range names {
		if !have[n] {
			return false
		}
	}
	return true
}

func countOp(spans map[string]jaegerSpan, name string) int {
	n := 0
	for _, s := range spans {
		if s.OperationName == name {
			n++
		}
	}
	return n
}

func ops(spans []jaegerSpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.OperationName)
	}
	return out
}

func opsOf(spans map[string]jaegerSpan) map[string]int {
	out := map[string]int{}
	for _, s := range spans {
		out[s.OperationName]++
	}
	return out
}

func wantTags(t *testing.T, s jaegerSpan, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got, ok := s.tag(k); !ok || got != v {
			t.Errorf("%s: tag %s = %q (present %v), want %q", s.OperationName, k, got, ok, v)
		}
	}
}

// ---- /metrics ----------------------------------------------------------

// scrape is one Prometheus text exposition, series name{labels} -> value.
type scrape map[string]float64

// ownershipSeries are the documented series of partition ownership.
var ownershipSeries = []string{"owned_partitions", "ownership_changes_total", "unarchived_messages", "archive_lag_seconds"}

// One gateway owns every partition: it acquired each once, lost none,
// and once it archived everything, nothing waits for Tier 2.
func TestOwnershipMetricsOfARunningGateway(t *testing.T) {
	e := newEnv(t, "AOF2_SEGMENT_MAX_AGE=1s")
	g := e.startGateway()
	js := e.nats.JetStream(t)
	ctx := context.Background()
	for i := range 50 {
		if _, err := js.Publish(ctx, "aof.ingest.orders", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	e.waitIngestEmpty(js, time.Minute)
	// The running gateway answers aof2-admin cluster (cluster.view).
	out := e.mustAdmin("cluster", "--json")
	var view struct {
		Nodes []struct {
			Owned []int `json:"owned_partitions"`
		} `json:"nodes"`
		Streams []struct {
			Stream   string `json:"stream"`
			Through  uint64 `json:"archived_through"`
			InIngest uint64 `json:"messages_in_ingest"`
		} `json:"streams"`
	}
	if err := json.Unmarshal([]byte(out), &view); err != nil {
		t.Fatalf("cluster --json: %v\n%s", err, out)
	}
	if len(view.Nodes) != 1 || len(view.Nodes[0].Owned) != 16 || len(view.Streams) != 1 ||
		view.Streams[0].Through != 50 || view.Streams[0].InIngest != 0 {
		t.Fatalf("cluster view after everything was archived: %s", out)
	}
	plausible := map[string]func(float64) bool{
		"owned_partitions":                           func(v float64) bool { return v == 16 },
		`ownership_changes_total{change="acquired"}`: func(v float64) bool { return v == 16 },
		`ownership_changes_total{change="lost"}`:     func(v float64) bool { return v == 0 },
		`ownership_changes_total{change="released"}`: func(v float64) bool { return v == 0 },
		"unarchived_messages":                        func(v float64) bool { return v == 0 },
		"archive_lag_seconds":                        func(v float64) bool { return v == 0 },
		"ingest_lost_messages_total":                 func(v float64) bool { return v == 0 },
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := parseScrape(t, g.metricsText())
		var bad []string
		for series, ok := range plausible {
			if v, have := s[series]; !have || !ok(v) {
				bad = append(bad, fmt.Sprintf("%s = %v (present %v)", series, v, have))
			}
		}
		if len(bad) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("implausible after 30s: %v", bad)
		}
		time.Sleep(200 * time.Millisecond)
	}
	g.stop()
}

func parseScrape(t *testing.T, text string) scrape {
	t.Helper()
	out := scrape{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("malformed exposition line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("exposition line %q: %v", line, err)
		}
		out[stripOtelLabels(line[:i])] = v
	}
	return out
}

// stripOtelLabels drops the otel_scope_* labels the exporter adds, so that
// a series reads as name{state="..."} whatever the scope version.
func stripOtelLabels(series string) string {
	open := strings.IndexByte(series, '{')
	if open < 0 {
		return series
	}
	name, labels := series[:open], strings.TrimSuffix(series[open+1:], "}")
	var keep []string
	for _, l := range strings.Split(labels, ",") {
		if l != "" && !strings.HasPrefix(l, "otel_scope_") {
			keep = append(keep, l)
		}
	}
	if len(keep) == 0 {
		return name
	}
	return name + "{" + strings.Join(keep, ",") + "}"
}

// value returns the series, failing the test when the scrape lacks it.
func (s scrape) value(t *testing.T, series string) float64 {
	t.Helper()
	v, ok := s[series]
	if !ok {
		t.Fatalf("scrape has no series %s", series)
	}
	return v
}

func waitMetric(t *testing.T, g *gateway, series string, ok func(float64) bool, timeout time.Duration) scrape {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := parseScrape(t, g.metricsText())
		if v, have := s[series]; have && ok(v) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v (present %v) after %v", series, s[series], s[series] != 0, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// observabilitySeries are the series of DESIGN.md "Observability names" as
// the Prometheus exporter names them (tracing's package doc), each of which
// the gateway must export.
var observabilitySeries = []string{
	"activation_queue_depth",
	"hydration_queue_depth",
	"compression_queue_depth",
	"tier0_bytes",
	"tier1_bytes",
	`segment_residency{state="resident_in_tier0"}`,
	`segment_residency{state="staged_for_tier0"}`,
	`segment_residency{state="uploaded_to_tier2"}`,
	`segment_residency{state="needs_recovery"}`,
	"upload_retry_attempts_total",
	"upload_failures_total",
	"delete_retry_attempts_total",
	"flush_failures_total",
	"metadata_failures_total",
	"ingest_messages_total",
	"ingest_bytes_total",
	`backpressure_total{kind="admission"}`,
	`backpressure_total{kind="rollover"}`,
	`backpressure_total{kind="hydration"}`,
	`backpressure_total{kind="flush"}`,
	`backpressure_total{kind="tail"}`,
	"deadletters_total",
}

// treeBytes sums the sizes of the regular files under dir whose names end
// in suffix.
func treeBytes(t *testing.T, dir, suffix string) (total int64, files int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, suffix) {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		total += info.Size()
		files++
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return total, files
}

// The running gateway's /metrics shows every metric of DESIGN.md while it
// ingests, and afterwards values that agree with what happened: the
// ingest counters equal what was published, every queue is empty again,
// tier0_bytes and tier1_bytes equal the bytes of the segment and artifact
// files on disk, every sealed segment is uploaded and no failure counter
// moved. A restart shows the manifest replay histogram.
func TestGatewayMetricsDuringAndAfterIngest(t *testing.T) {
	e := newEnv(t,
		"AOF2_SEGMENT_TARGET_BYTES=64KiB",
	)
	g := e.startGateway()
	js := e.nats.JetStream(t)

	const n, bodyBytes = 1500, 256
	streams := []string{"metrics-a", "metrics-b"}
	var wg sync.WaitGroup
	stopScrape := make(chan struct{})
	var during []scrape
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stopScrape:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if text := g.metricsText(); text != "" {
				during = append(during, parseScrape(t, text))
			}
		}
	}()
	p := newPublished()
	failed := p.publish(t, js, streams, n, func(int) []byte {
		b := make([]byte, bodyBytes)
		rand.Read(b) // incompressible: Tier 1 artifacts stay near segment size
		return b
	})
	if failed != 0 {
		t.Fatalf("%d publishes failed", failed)
	}
	e.waitDrained(js, 60*time.Second)
	close(stopScrape)
	wg.Wait()

	if len(during) == 0 {
		t.Fatal("no scrape succeeded during ingest")
	}
	for i, s := range during {
		for _, name := range observabilitySeries {
			if v := s.value(t, name); v < 0 || math.IsNaN(v) {
				t.Errorf("scrape %d during ingest: %s = %v", i, name, v)
			}
		}
	}
	// Counters never go down between scrapes.
	for i := 1; i < len(during); i++ {
		for _, c := range []string{"ingest_messages_total", "ingest_bytes_total"} {
			if during[i][c] < during[i-1][c] {
				t.Errorf("%s went down from %v to %v", c, during[i-1][c], during[i][c])
			}
		}
	}

	// After the drain: the background work settles (compression queue
	// empty, the uploaded count unchanged for a second), then the figures
	// must agree with the disk.
	var after scrape
	deadline := time.Now().Add(60 * time.Second)
	uploaded, since := -1.0, time.Now()
	for {
		after = parseScrape(t, g.metricsText())
		if u := after[`segment_residency{state="uploaded_to_tier2"}`]; u != uploaded {
			uploaded, since = u, time.Now()
		}
		if after["compression_queue_depth"] == 0 && after["activation_queue_depth"] == 0 &&
			after[`segment_residency{state="staged_for_tier0"}`] == 0 &&
			uploaded > 0 && time.Since(since) > time.Second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("background work did not settle in 60s: %v\n%s", after, e.gatewayLog())
		}
		time.Sleep(100 * time.Millisecond)
	}

	if got := after.value(t, "ingest_messages_total"); got != n {
		t.Errorf("ingest_messages_total = %v, want the %d published", got, n)
	}
	// Every acked batch is one ack latency, every stream sync one fsync:
	// at least one of each, none longer than the test.
	for _, h := range []string{"ingest_ack_latency_seconds", "ingest_fsync_seconds"} {
		count, sum := after.value(t, h+"_count"), after.value(t, h+"_sum")
		if count < 1 || sum <= 0 || sum/count > 60 {
			t.Errorf("%s: count %v, sum %v s: want at least one observation, each within the test", h, count, sum)
		}
	}
	// ingest_bytes counts stored envelopes (subject, headers, body): at
	// least the bodies, at most bodies plus a 1 KiB envelope each.
	if got := after.value(t, "ingest_bytes_total"); got < n*bodyBytes || got > n*(bodyBytes+1024) {
		t.Errorf("ingest_bytes_total = %v, want between %d and %d", got, n*bodyBytes, n*(bodyBytes+1024))
	}
	for _, q := range []string{"activation_queue_depth", "hydration_queue_depth", "compression_queue_depth"} {
		if v := after.value(t, q); v != 0 {
			t.Errorf("%s = %v after the drain, want 0", q, v)
		}
	}
	for _, c := range []string{"upload_failures_total", "flush_failures_total", "metadata_failures_total", "deadletters_total",
		`segment_residency{state="needs_recovery"}`, `backpressure_total{kind="flush"}`} {
		if v := after.value(t, c); v != 0 {
			t.Errorf("%s = %v, want 0 in a run without faults", c, v)
		}
	}

	data := filepath.Join(e.root, "data")
	checkByteGauges(t, g, data)

	// A segment brought back from Tier 2 is one hydration_latency
	// observation, and the hydration queue empties again.
	e.mustAdmin("segments", "delete", "--stream", streams[0], "--segment", "1", "--tier", "1", "--force")
	e.mustAdmin("hydrate", "--stream", streams[0], "--segment", "1")
	h := waitMetric(t, g, "hydration_latency_milliseconds_count", func(v float64) bool { return v >= 1 }, 30*time.Second)
	if v := h.value(t, "hydration_latency_milliseconds_sum"); v <= 0 || v > 30_000 {
		t.Errorf("hydration_latency_milliseconds_sum = %v, want a latency in (0, 30 s]", v)
	}
	if v := h.value(t, "hydration_queue_depth"); v != 0 {
		t.Errorf("hydration_queue_depth = %v after the hydration", v)
	}
	checkByteGauges(t, g, data)

	g.stop()

	// A restart replays each stream's manifest and says how long it took.
	g = e.startGateway()
	re := waitMetric(t, g, "manifest_replay_seconds_count", func(v float64) bool { return v >= float64(len(streams)) }, 30*time.Second)
	if v := re.value(t, "manifest_replay_seconds_sum"); v < 0 || v > 30 {
		t.Errorf("manifest_replay_seconds_sum = %v, want a replay time in [0, 30] s", v)
	}
	for _, name := range observabilitySeries {
		re.value(t, name)
	}
	checkByteGauges(t, g, data)
	g.stop()
}

// checkByteGauges compares tier0_bytes and tier1_bytes with the files on
// disk, after a drain (nothing buffered): both must match byte for byte.
func checkByteGauges(t *testing.T, g *gateway, data string) {
	t.Helper()
	s := parseScrape(t, g.metricsText())
	segBytes, segs := treeBytes(t, filepath.Join(data, "tier0"), ".seg")
	if gauge0 := s.value(t, "tier0_bytes"); segs == 0 || gauge0 != float64(segBytes) {
		t.Errorf("tier0_bytes = %v, %d segment files hold %d bytes", gauge0, segs, segBytes)
	}
	artBytes, arts := treeBytes(t, filepath.Join(data, "tier1"), ".zst")
	if gauge1 := s.value(t, "tier1_bytes"); gauge1 != float64(artBytes) || arts == 0 {
		t.Errorf("tier1_bytes = %v, %d artifact files hold %d bytes", gauge1, arts, artBytes)
	}
}

// ---- every documented series, exercised ---------------------------------

// documentedSeries returns the series names of the table in
// docs/observability.md "Metrics: Prometheus", without their labels.
func documentedSeries(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(harness.RepoRoot(t), "docs", "observability.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	start := strings.Index(text, "| series | type | meaning |")
	if start < 0 {
		t.Fatal("docs/observability.md has no series table")
	}
	var names []string
	for _, line := range strings.Split(text[start:], "\n")[2:] {
		if !strings.HasPrefix(line, "|") {
			break
		}
		first := strings.Split(line, "|")[1]
		for _, m := range regexp.MustCompile("`([a-z0-9_]+)(\\{[a-z_]+\\})?`").FindAllStringSubmatch(first, -1) {
			names = append(names, m[1])
		}
	}
	if len(names) < 20 {
		t.Fatalf("docs/observability.md series table lists only %v", names)
	}
	return names
}

// flakyPublisher is the manifest publisher of the metrics rig: it fails its
// first calls (manifest_publish_retry_attempts) and then accepts every event.
type flakyPublisher struct {
	mu    sync.Mutex
	fails int
}

func (p *flakyPublisher) Publish(ctx context.Context, ev manifest.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fails > 0 {
		p.fails--
		return errors.New("injected publish failure")
	}
	return nil
}

// After a run that moves each of them (ingest, a dead letter, Tier 0
// evictions, an upload and a delete against a stopped Tier 2, a hydration, a
// failed flush and a failed manifest commit on their own streams), a scrape
// of the gateway's Prometheus handler shows every series of
// docs/observability.md with a plausible value. The store, pipeline and
// Tier 2 client share one tracing.Instruments, as cmd/aof-gateway wires them.
func TestEveryDocumentedMetricHasAPlausibleValue(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	prov, err := tracing.Setup(ctx, tracing.Config{Exporter: tracing.ExporterNone, SamplingRatio: 1}, tracing.WithoutRuntimeMetrics())
	if err != nil {
		t.Fatal(err)
	}
	defer prov.Shutdown(context.Background())
	inst, err := prov.Instruments()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(prov.MetricsHandler())
	defer srv.Close()
	get := func() scrape {
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return parseScrape(t, string(body))
	}
	waitFor := func(what string, ok func(scrape) bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for s := get(); !ok(s); s = get() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 60s; scrape %v", what, s)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	n := harness.StartNATS(t)
	s3 := harness.StartS3(t)
	t2, err := tier2.New(ctx, tier2.Options{Endpoint: s3.Endpoint, Bucket: s3.Bucket, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey,
		Retry:       tier2.RetryPolicy{MaxAttempts: 2, BaseDelay: 10 * time.Millisecond},
		Breaker:     tier2.BreakerPolicy{Failures: 1000, Cooldown: time.Second},
		Instruments: inst})
	if err != nil {
		t.Fatalf("tier2: %v", err)
	}
	ffs := vfs.NewFaultFS(nil)
	store, err := tiers.Open(ctx, tiers.Options{
		Root:                  filepath.Join(t.TempDir(), "data"),
		FS:                    ffs,
		Tier2:                 t2,
		SegmentTargetBytes:    8 << 10,
		Tier0MaxBytes:         48 << 10,
		JobRetryBackoff:       50 * time.Millisecond,
		ManifestChunkCapacity: 2 << 10,
		Publisher:             &flakyPublisher{fails: 2},
		Instruments:           inst,
	})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	defer store.Close()

	js := n.JetStream(t)
	if _, err := ingest.EnsureIngestStream(ctx, js, ingest.StreamSettings{Name: "AOF_INGEST", Subjects: []string{"aof.ingest.>"}}); err != nil {
		t.Fatal(err)
	}
	if err := ingest.EnsureDeadLetterStream(ctx, js, "AOF_INGEST_DEADLETTER", "aof.deadletter"); err != nil {
		t.Fatal(err)
	}
	p, err := ingest.NewPipeline(js, store, ingest.Options{
		Consumer:       ingest.ConsumerSettings{Stream: "AOF_INGEST", Durable: "aof-gateway"},
		MaxRecordBytes: 2048,
		Instruments:    inst,
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	defer func() { stop(); <-done }()

	// Ingest through a Tier 0 budget of six segments: admission evicts
	// sealed segments whose Tier 1 copy exists. One record is too large.
	const msgs, bodyBytes = 400, 512
	for i := range msgs {
		body := make([]byte, bodyBytes)
		rand.Read(body)
		if _, err := js.Publish(ctx, "aof.ingest.alpha", body); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if _, err := js.Publish(ctx, "aof.ingest.alpha", make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	waitFor("ingest, dead letter, evictions, uploads and manifest publication", func(s scrape) bool {
		return s["ingest_messages_total"] == msgs && s["deadletters_total"] == 1 && s["tier0_evictions_total"] >= 1 &&
			s[`segment_residency{state="uploaded_to_tier2"}`] >= 1 && s["manifest_published_total"] >= 1 &&
			s["manifest_publish_retry_attempts_total"] >= 1
	})
	// A snapshot lets the manifest drop the chunks it covers once Tier 2
	// holds them.
	if _, err := store.Snapshot("alpha"); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	waitFor("manifest chunks removed after the snapshot", func(s scrape) bool { return s["manifest_chunks_deleted_total"] >= 1 })

	// A segment whose local copies are gone comes back from Tier 2.
	var back uint64
	for _, st := range store.Segments("alpha") {
		if st.InTier2 && back == 0 {
			back = st.Segment
		}
	}
	if err := store.EvictLocal(ctx, "alpha", back); err != nil {
		t.Fatalf("evict segment %d: %v", back, err)
	}
	if err := store.Hydrate(ctx, "alpha", back); err != nil {
		t.Fatalf("hydrate segment %d: %v", back, err)
	}
	waitFor("a hydration", func(s scrape) bool { return s["hydration_latency_milliseconds_count"] >= 1 })

	// Tier 2 down: uploads, manifest chunk uploads and a delete retry and
	// give up.
	s3.Stop()
	for i := range 4 {
		recs := []tiers.Record{{Payload: make([]byte, 3000), ExtID: uint64(10_000 + i)}}
		// The small Tier 0 budget frees room once the segments sealed
		// just before are compressed into Tier 1; on a busy machine that
		// takes a moment, and admission says so instead of waiting.
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := store.AppendDurable(ctx, "delta", recs)
			if err == nil {
				break
			}
			if !backpressure.Is(err, backpressure.Admission) || time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := store.Seal(ctx, "delta", true); err != nil {
			t.Fatal(err)
		}
	}
	// Retire first waits for the hydration's pin on the artifact to lapse
	// (up to 5 s), then its Tier 2 delete fails and is retried.
	retireCtx, cancelRetire := context.WithTimeout(ctx, 15*time.Second)
	store.Retire(retireCtx, "alpha", back) // fails: Tier 2 is down
	cancelRetire()
	waitFor("retries against a stopped Tier 2", func(s scrape) bool {
		return s["upload_retry_attempts_total"] >= 1 && s["upload_failures_total"] >= 1 &&
			s["delete_retry_attempts_total"] >= 1 && s["manifest_upload_retry_attempts_total"] >= 1
	})
	s3.Start()
	// A manifest prune tried while Tier 2 was down failed, as it should
	// (a snapshot uploaded just before the stop is pruned behind after
	// it). Once the attempts in flight at the restart have ended (a
	// refused connection fails at once), no prune may fail.
	time.Sleep(time.Second)
	pruneFailsWhileDown := get()["manifest_tier2_prune_failures_total"]
	t.Logf("%v manifest prunes failed while Tier 2 was stopped", pruneFailsWhileDown)

	// A failed fsync of a segment, and of a manifest chunk, each on a
	// stream of its own (both streams stop accepting writes).
	one := func(stream string, ext uint64) []tiers.Record {
		return []tiers.Record{{Payload: []byte("x"), ExtID: ext}}
	}
	if err := store.AppendDurable(ctx, "beta", one("beta", 1)); err != nil {
		t.Fatal(err)
	}
	ffs.Inject(vfs.Fault{Op: vfs.OpSync, Times: 1, Match: func(name string) bool {
		return strings.Contains(name, "beta") && strings.HasSuffix(name, ".seg")
	}})
	if err := store.AppendDurable(ctx, "beta", one("beta", 2)); err == nil {
		t.Fatal("append with a failing fsync succeeded")
	}
	if err := store.AppendDurable(ctx, "gamma", one("gamma", 1)); err != nil {
		t.Fatal(err)
	}
	ffs.Inject(vfs.Fault{Op: vfs.OpSync, Times: 1, Match: func(name string) bool {
		return strings.Contains(name, "gamma") && strings.HasSuffix(name, ".mlog")
	}})
	if _, err := store.Seal(ctx, "gamma", true); err == nil {
		t.Fatal("seal with a failing manifest fsync succeeded")
	}

	waitFor("background work to settle", func(s scrape) bool {
		return s["compression_queue_depth"] == 0 && s["hydration_queue_depth"] == 0 && s["activation_queue_depth"] == 0
	})
	s := get()
	streams := float64(len(store.Streams()))
	atLeast := func(min float64) func(float64) bool { return func(v float64) bool { return v >= min } }
	plausible := map[string]map[string]func(float64) bool{
		"activation_queue_depth":  {"activation_queue_depth": atLeast(0)},
		"hydration_queue_depth":   {"hydration_queue_depth": atLeast(0)},
		"compression_queue_depth": {"compression_queue_depth": atLeast(0)},
		"tier0_bytes":             {"tier0_bytes": atLeast(1)},
		"tier1_bytes":             {"tier1_bytes": atLeast(1)},
		"segment_residency": {
			`segment_residency{state="resident_in_tier0"}`: atLeast(1),
			`segment_residency{state="staged_for_tier0"}`:  atLeast(0),
			`segment_residency{state="uploaded_to_tier2"}`: atLeast(1),
			`segment_residency{state="needs_recovery"}`:    atLeast(0),
		},
		"hydration_latency_milliseconds": {
			"hydration_latency_milliseconds_count": atLeast(1),
			"hydration_latency_milliseconds_sum":   func(v float64) bool { return v > 0 && v < 60_000 },
		},
		"manifest_replay_seconds": {
			"manifest_replay_seconds_count": atLeast(streams),
			"manifest_replay_seconds_sum":   func(v float64) bool { return v >= 0 && v < 30 },
		},
		// The pipeline acked batches after their fsyncs.
		"ingest_ack_latency_seconds": {
			"ingest_ack_latency_seconds_count": atLeast(1),
			"ingest_ack_latency_seconds_sum":   func(v float64) bool { return v >= 0 && v < 600 },
		},
		"ingest_fsync_seconds": {
			"ingest_fsync_seconds_count": atLeast(1),
			"ingest_fsync_seconds_sum":   func(v float64) bool { return v >= 0 && v < 600 },
		},
		"upload_retry_attempts_total": {"upload_retry_attempts_total": atLeast(1)},
		"upload_failures_total":       {"upload_failures_total": atLeast(1)},
		"delete_retry_attempts_total": {"delete_retry_attempts_total": atLeast(1)},
		"flush_failures_total":        {"flush_failures_total": atLeast(1)},
		"metadata_failures_total":     {"metadata_failures_total": atLeast(1)},
		"ingest_messages_total":       {"ingest_messages_total": func(v float64) bool { return v == msgs }},
		"ingest_bytes_total": {"ingest_bytes_total": func(v float64) bool {
			return v >= msgs*bodyBytes && v <= msgs*(bodyBytes+1024)
		}},
		"backpressure_total":                    {},
		"deadletters_total":                     {"deadletters_total": func(v float64) bool { return v == 1 }},
		"manifest_records_total":                {"manifest_records_total": atLeast(msgs / 100)},
		"manifest_commit_failures_total":        {"manifest_commit_failures_total": atLeast(1)},
		"manifest_unknown_records_total":        {"manifest_unknown_records_total": func(v float64) bool { return v == 0 }},
		"manifest_upload_retry_attempts_total":  {"manifest_upload_retry_attempts_total": atLeast(1)},
		"manifest_publish_retry_attempts_total": {"manifest_publish_retry_attempts_total": atLeast(1)},
		"manifest_published_total":              {"manifest_published_total": atLeast(1)},
		"manifest_chunks_deleted_total":         {"manifest_chunks_deleted_total": atLeast(1)},
		"tier0_evictions_total":                 {"tier0_evictions_total": atLeast(1)},
		// One snapshot is too few to prune behind (tiers' manifest prune
		// tests count what is deleted); here the series must exist and no
		// prune may have failed against a healthy bucket: none but those
		// while it was stopped.
		"manifest_tier2_objects_pruned_total": {"manifest_tier2_objects_pruned_total": atLeast(0)},
		"manifest_tier2_prune_failures_total": {"manifest_tier2_prune_failures_total": func(v float64) bool { return v == pruneFailsWhileDown }},
		"ingest_lost_messages_total":          {"ingest_lost_messages_total": func(v float64) bool { return v == 0 }},
	}
	// The partition lease manager runs in the gateway process only:
	// TestOwnershipMetricsOfARunningGateway checks these series.
	for _, name := range ownershipSeries {
		plausible[name] = map[string]func(float64) bool{}
	}
	for _, kind := range tracing.BackpressureKinds {
		plausible["backpressure_total"][`backpressure_total{kind="`+kind+`"}`] = atLeast(0)
	}
	for _, name := range documentedSeries(t) {
		checks, ok := plausible[name]
		if !ok {
			t.Errorf("docs/observability.md lists %s, which this test does not exercise", name)
			continue
		}
		for series, ok := range checks {
			if v, have := s[series]; !have || math.IsNaN(v) || !ok(v) {
				t.Errorf("%s = %v (present %v): implausible after this run", series, v, have)
			}
		}
	}
	if ms := s["manifest_records_total"]; ms < s["manifest_published_total"] {
		t.Errorf("manifest_published_total %v exceeds manifest_records_total %v", s["manifest_published_total"], ms)
	}
}
