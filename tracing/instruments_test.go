package tracing

import (
	"bufio"
	"context"
	"io"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
)

// scrape serves /metrics once and returns the sample lines keyed by series
// (name plus labels with the otel_scope_* labels removed) and the set of
// sample names.
func scrape(t *testing.T, p *Providers) (series map[string]float64, names map[string]bool) {
	t.Helper()
	rr := httptest.NewRecorder()
	p.MetricsHandler().ServeHTTP(rr, httptest.NewRequest("GET", "/metrics", nil))
	if rr.Code != 200 {
		t.Fatalf("GET /metrics: status %d", rr.Code)
	}
	body, _ := io.ReadAll(rr.Body)
	series, names = map[string]float64{}, map[string]bool{}
	scopeLabel := regexp.MustCompile(`,?otel_scope_[a-z_]+="[^"]*"`)
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		key := scopeLabel.ReplaceAllString(line[:i], "")
		key = strings.Replace(key, "{,", "{", 1)
		key = strings.TrimSuffix(key, "{}")
		series[key] = v
		name := key
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name = name[:j]
		}
		names[name] = true
	}
	return series, names
}

// exercisedProviders returns providers whose every instrument has a value.
func exercisedProviders(t *testing.T) (*Providers, *Instruments) {
	t.Helper()
	p := setupForTest(t)
	in, err := p.Instruments()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	in.ObserveHydration(ctx, 3*time.Millisecond)
	in.ObserveManifestReplay(ctx, 1500*time.Millisecond)
	in.ObserveIngestAck(ctx, 4*time.Millisecond)
	in.ObserveIngestFsync(ctx, 700*time.Microsecond)
	for _, name := range gaugeNames {
		if name == MetricSegmentResidency {
			continue
		}
		if _, err := in.RegisterGauge(name, func() int64 { return 7 }); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := in.RegisterResidency(func() Residency { return Residency{1, 2, 3, 4} }); err != nil {
		t.Fatal(err)
	}
	return p, in
}

// The exported names are what alerts and dashboards are written against;
// this list is the contract (see the package doc).
var exportedNames = []string{
	"activation_queue_depth",
	"hydration_queue_depth",
	"compression_queue_depth",
	"tier0_bytes",
	"tier1_bytes",
	"segment_residency",
	"hydration_latency_milliseconds_bucket",
	"hydration_latency_milliseconds_sum",
	"hydration_latency_milliseconds_count",
	"manifest_replay_seconds_bucket",
	"manifest_replay_seconds_sum",
	"manifest_replay_seconds_count",
	"ingest_ack_latency_seconds_bucket",
	"ingest_ack_latency_seconds_sum",
	"ingest_ack_latency_seconds_count",
	"ingest_fsync_seconds_bucket",
	"ingest_fsync_seconds_sum",
	"ingest_fsync_seconds_count",
	"upload_retry_attempts_total",
	"upload_failures_total",
	"delete_retry_attempts_total",
	"flush_failures_total",
	"metadata_failures_total",
	"ingest_messages_total",
	"ingest_bytes_total",
	"backpressure_total",
	"deadletters_total",
	"ingest_lost_messages_total",
	"manifest_records_total",
	"manifest_commit_failures_total",
	"manifest_unknown_records_total",
	"manifest_upload_retry_attempts_total",
	"manifest_publish_retry_attempts_total",
	"manifest_published_total",
	"manifest_chunks_deleted_total",
	"manifest_tier2_objects_pruned_total",
	"manifest_tier2_prune_failures_total",
	"tier0_evictions_total",
}

func TestExportedNames(t *testing.T) {
	p, _ := exercisedProviders(t)
	_, names := scrape(t, p)
	for _, want := range exportedNames {
		if !names[want] {
			t.Errorf("scrape lacks %s", want)
		}
	}
	if !names["go_goroutines"] {
		t.Error("scrape lacks the Go runtime collector (go_goroutines)")
	}
}

// Counters are exported at 0 before their first increment, so increase()
// in the alerts sees the first failure.
func TestCountersStartAtZero(t *testing.T) {
	p := setupForTest(t)
	if _, err := p.Instruments(); err != nil {
		t.Fatal(err)
	}
	series, _ := scrape(t, p)
	want := []string{"upload_retry_attempts_total", "upload_failures_total", "delete_retry_attempts_total",
		"flush_failures_total", "metadata_failures_total", "ingest_messages_total", "ingest_bytes_total", "deadletters_total",
		"ingest_lost_messages_total", "manifest_records_total", "manifest_commit_failures_total", "manifest_unknown_records_total",
		"manifest_upload_retry_attempts_total", "manifest_publish_retry_attempts_total", "manifest_published_total",
		"manifest_chunks_deleted_total", "manifest_tier2_objects_pruned_total", "manifest_tier2_prune_failures_total",
		"tier0_evictions_total"}
	for _, kind := range BackpressureKinds {
		want = append(want, `backpressure_total{kind="`+kind+`"}`)
	}
	for _, s := range want {
		v, ok := series[s]
		if !ok || v != 0 {
			t.Errorf("%s = %v (present %v) before any event, want 0", s, v, ok)
		}
	}
}

func TestCountersCount(t *testing.T) {
	p := setupForTest(t)
	in, _ := p.Instruments()
	ctx := context.Background()
	in.AddIngest(ctx, 3, 300)
	in.AddIngest(ctx, 1, 50)
	in.IncBackpressure(ctx, "admission")
	in.IncBackpressure(ctx, "admission")
	in.IncBackpressure(ctx, "tail")
	in.IncUploadRetry(ctx)
	in.IncUploadFailure(ctx)
	in.IncDeleteRetry(ctx)
	in.IncFlushFailure(ctx)
	in.IncMetadataFailure(ctx)
	in.IncDeadletter(ctx)
	in.AddLostMessages(ctx, 7)
	in.AddManifestRecords(ctx, 5)
	in.IncManifestCommitFailure(ctx)
	in.AddManifestUnknownRecords(ctx, 2)
	in.IncManifestUploadRetry(ctx)
	in.IncManifestPublishRetry(ctx)
	in.AddManifestPublished(ctx, 4)
	in.AddManifestChunksDeleted(ctx, 3)
	in.AddManifestTier2Pruned(ctx, 6)
	in.IncManifestTier2PruneFailure(ctx)
	in.IncTier0Eviction(ctx)
	series, _ := scrape(t, p)
	want := map[string]float64{
		"ingest_messages_total":                 4,
		"ingest_bytes_total":                    350,
		`backpressure_total{kind="admission"}`:  2,
		`backpressure_total{kind="tail"}`:       1,
		`backpressure_total{kind="flush"}`:      0,
		"upload_retry_attempts_total":           1,
		"upload_failures_total":                 1,
		"delete_retry_attempts_total":           1,
		"flush_failures_total":                  1,
		"metadata_failures_total":               1,
		"deadletters_total":                     1,
		"ingest_lost_messages_total":            7,
		"manifest_records_total":                5,
		"manifest_commit_failures_total":        1,
		"manifest_unknown_records_total":        2,
		"manifest_upload_retry_attempts_total":  1,
		"manifest_publish_retry_attempts_total": 1,
		"manifest_published_total":              4,
		"manifest_chunks_deleted_total":         3,
		"manifest_tier2_objects_pruned_total":   6,
		"manifest_tier2_prune_failures_total":   1,
		"tier0_evictions_total":                 1,
	}
	for s, v := range want {
		if series[s] != v {
			t.Errorf("%s = %v, want %v", s, series[s], v)
		}
	}
}

func TestHydrationHistogramBucketsAndQuantiles(t *testing.T) {
	p := setupForTest(t)
	in, _ := p.Instruments()
	ctx := context.Background()
	for _, d := range []time.Duration{500 * time.Microsecond, 7 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second} {
		in.ObserveHydration(ctx, d)
	}
	series, _ := scrape(t, p)
	want := map[string]float64{
		`hydration_latency_milliseconds_bucket{le="1"}`:     1,
		`hydration_latency_milliseconds_bucket{le="10"}`:    2,
		`hydration_latency_milliseconds_bucket{le="2000"}`:  3,
		`hydration_latency_milliseconds_bucket{le="10000"}`: 4,
		`hydration_latency_milliseconds_bucket{le="+Inf"}`:  4,
		"hydration_latency_milliseconds_count":              4,
		"hydration_latency_milliseconds_sum":                4507.5,
	}
	for s, v := range want {
		if series[s] != v {
			t.Errorf("%s = %v, want %v", s, series[s], v)
		}
	}
	sum := in.HydrationQuantiles.Summary()
	if sum.Count != 4 || sum.Max != 3000 || sum.Min != 0.5 {
		t.Errorf("HydrationQuantiles summary %+v, want count 4, min 0.5 ms, max 3000 ms", sum)
	}
}

func TestGaugesSumRegistrationsPerAttributeSet(t *testing.T) {
	p := setupForTest(t)
	in, _ := p.Instruments()
	unregA, err := in.RegisterGauge(MetricActivationQueueDepth, func() int64 { return 2 })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.RegisterGauge(MetricActivationQueueDepth, func() int64 { return 3 }); err != nil {
		t.Fatal(err)
	}
	if _, err := in.RegisterGauge(MetricSegmentResidency, func() int64 { return 10 }, MetricAttrState.String(StateNeedsRecovery)); err != nil {
		t.Fatal(err)
	}
	if _, err := in.RegisterResidency(func() Residency { return Residency{ResidentInTier0: 1, NeedsRecovery: 4} }); err != nil {
		t.Fatal(err)
	}
	series, _ := scrape(t, p)
	want := map[string]float64{
		"activation_queue_depth":                       5,
		`segment_residency{state="needs_recovery"}`:    14,
		`segment_residency{state="resident_in_tier0"}`: 1,
		`segment_residency{state="staged_for_tier0"}`:  0,
		`segment_residency{state="uploaded_to_tier2"}`: 0,
	}
	for s, v := range want {
		if got, ok := series[s]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", s, got, ok, v)
		}
	}

	unregA()
	unregA() // harmless twice
	series, _ = scrape(t, p)
	if series["activation_queue_depth"] != 3 {
		t.Errorf("after unregister activation_queue_depth = %v, want 3", series["activation_queue_depth"])
	}
}

func TestRegisterGaugeRejects(t *testing.T) {
	in, err := NewInstruments(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.RegisterGauge("ingest_messages", func() int64 { return 1 }); err == nil {
		t.Error("RegisterGauge accepted a counter name")
	}
	if _, err := in.RegisterGauge(MetricTier0Bytes, nil); err == nil {
		t.Error("RegisterGauge accepted a nil function")
	}
	if _, err := in.RegisterResidency(nil); err == nil {
		t.Error("RegisterResidency accepted a nil function")
	}
}

// Gauge functions run during a scrape; they may be registered and removed
// concurrently with it.
func TestGaugesConcurrentWithScrape(t *testing.T) {
	p := setupForTest(t)
	in, _ := p.Instruments()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				u, err := in.RegisterGauge(MetricHydrationQueueDepth, func() int64 { return int64(i) }, attribute.Int("w", i))
				if err != nil {
					t.Error(err)
					return
				}
				u()
			}
		}()
	}
	for range 10 {
		scrape(t, p)
	}
	wg.Wait()
}

func TestNilInstrumentsDoNothing(t *testing.T) {
	var in *Instruments
	ctx := context.Background()
	in.ObserveHydration(ctx, time.Second)
	in.ObserveManifestReplay(ctx, time.Second)
	in.AddIngest(ctx, 1, 1)
	in.IncBackpressure(ctx, "admission")
	in.IncDeadletter(ctx)
	in.IncUploadRetry(ctx)
	in.IncUploadFailure(ctx)
	in.IncDeleteRetry(ctx)
	in.IncFlushFailure(ctx)
	in.IncMetadataFailure(ctx)
	in.AddManifestRecords(ctx, 1)
	in.IncManifestCommitFailure(ctx)
	in.AddManifestUnknownRecords(ctx, 1)
	in.IncManifestUploadRetry(ctx)
	in.IncManifestPublishRetry(ctx)
	in.AddManifestPublished(ctx, 1)
	in.AddManifestChunksDeleted(ctx, 1)
	in.IncTier0Eviction(ctx)
	u, err := in.RegisterGauge(MetricTier0Bytes, func() int64 { return 1 })
	if err != nil {
		t.Fatal(err)
	}
	u()
	u, err = in.RegisterResidency(func() Residency { return Residency{} })
	if err != nil {
		t.Fatal(err)
	}
	u()
}

func TestWithoutRuntimeMetricsLeavesOnlyInstruments(t *testing.T) {
	p := setupForTest(t, WithoutRuntimeMetrics())
	if _, err := p.Instruments(); err != nil {
		t.Fatal(err)
	}
	_, names := scrape(t, p)
	if names["go_goroutines"] || names["process_cpu_seconds_total"] {
		t.Error("runtime collectors registered despite WithoutRuntimeMetrics")
	}
	if !names["flush_failures_total"] {
		t.Error("instruments missing from the scrape")
	}
}
