package tracing

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
)

// Instrument names, as in DESIGN.md "Observability names". The exported
// Prometheus names (with unit and _total suffixes) are listed in the
// package documentation.
const (
	MetricActivationQueueDepth  = "activation_queue_depth"
	MetricHydrationQueueDepth   = "hydration_queue_depth"
	MetricCompressionQueueDepth = "compression_queue_depth"
	MetricTier0Bytes            = "tier0_bytes"
	MetricTier1Bytes            = "tier1_bytes"
	MetricSegmentResidency      = "segment_residency"
	MetricHydrationLatency      = "hydration_latency"
	MetricManifestReplaySeconds = "manifest_replay_seconds"
	MetricUploadRetryAttempts   = "upload_retry_attempts"
	MetricUploadFailures        = "upload_failures"
	MetricDeleteRetryAttempts   = "delete_retry_attempts"
	MetricFlushFailures         = "flush_failures"
	MetricMetadataFailures      = "metadata_failures"
	MetricIngestMessages        = "ingest_messages"
	MetricIngestBytes           = "ingest_bytes"
	MetricBackpressure          = "backpressure"
	MetricDeadletters           = "deadletters"
	MetricIngestLostMessages    = "ingest_lost_messages"
	MetricIngestAckLatency      = "ingest_ack_latency_seconds"
	MetricIngestFsync           = "ingest_fsync_seconds"
	MetricOwnedPartitions       = "owned_partitions"
	MetricOwnershipChanges      = "ownership_changes"
	MetricUnarchivedMessages    = "unarchived_messages"
	MetricArchiveLagSeconds     = "archive_lag_seconds"

	// Manifest and Tier 0 bookkeeping, counted where the work happens
	// (manifest.Log, tier0.Budget) on this one instrument set.
	MetricManifestRecords             = "manifest_records"
	MetricManifestCommitFailures      = "manifest_commit_failures"
	MetricManifestUnknownRecords      = "manifest_unknown_records"
	MetricManifestUploadRetryAttempts = "manifest_upload_retry_attempts"
	MetricManifestPublishRetries      = "manifest_publish_retry_attempts"
	MetricManifestPublished           = "manifest_published"
	MetricManifestChunksDeleted       = "manifest_chunks_deleted"
	MetricManifestTier2Pruned         = "manifest_tier2_objects_pruned"
	MetricManifestTier2PruneFailures  = "manifest_tier2_prune_failures"
	MetricTier0Evictions              = "tier0_evictions"
)

// Residency states, the values of the state attribute of segment_residency.
const (
	StateResidentInTier0 = "resident_in_tier0"
	StateStagedForTier0  = "staged_for_tier0"
	StateUploadedToTier2 = "uploaded_to_tier2"
	StateNeedsRecovery   = "needs_recovery"
)

// BackpressureKinds are the values of the kind attribute of backpressure,
// the String() of backpressure.Kinds (this package imports no other project
// package). Each starts at 0.
var BackpressureKinds = []string{"admission", "rollover", "hydration", "flush", "tail"}

// HydrationLatencyBucketsMs are the histogram bounds of hydration_latency in
// milliseconds: 1 ms (Tier 1 page-cache hit) to 10 s (large Tier 2 fetch).
// 2000 is a bound so that the operators' p99 > 2000 ms alert is exact.
var HydrationLatencyBucketsMs = []float64{1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000, 10000}

// IngestLatencyBucketsSeconds are the histogram bounds of
// ingest_ack_latency_seconds and ingest_fsync_seconds: a fast disk's fsync
// to a stalled one.
var IngestLatencyBucketsSeconds = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// ManifestReplayBucketsSeconds are the histogram bounds of
// manifest_replay_seconds: a snapshot-only start to a five-minute full replay.
var ManifestReplayBucketsSeconds = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// gaugeNames are the observable gauges; their values come from functions the
// owning packages register, because the queues and budgets live there.
var gaugeNames = []string{
	MetricActivationQueueDepth,
	MetricHydrationQueueDepth,
	MetricCompressionQueueDepth,
	MetricTier0Bytes,
	MetricTier1Bytes,
	MetricSegmentResidency,
	MetricOwnedPartitions,
	MetricUnarchivedMessages,
	MetricArchiveLagSeconds,
}

var gaugeSpecs = map[string]struct{ unit, desc string }{
	MetricActivationQueueDepth:  {"{segment}", "Segments waiting for Tier 0 admission (activation queue)."},
	MetricHydrationQueueDepth:   {"{segment}", "Segments waiting to be hydrated from Tier 1 or Tier 2."},
	MetricCompressionQueueDepth: {"{segment}", "Sealed segments waiting for Tier 1 compression."},
	MetricTier0Bytes:            {"By", "Bytes held in Tier 0 (hot segments)."},
	MetricTier1Bytes:            {"By", "Bytes held in Tier 1 (compressed warm cache)."},
	MetricSegmentResidency:      {"{segment}", "Segments per residency state."},
	MetricOwnedPartitions:       {"{partition}", "Partitions this gateway holds leases for."},
	MetricUnarchivedMessages:    {"{message}", "Records of the owned streams stored but not yet archived in Tier 2 (they wait in AOF_INGEST)."},
	MetricArchiveLagSeconds:     {"s", "Longest time an owned stream has had records not archived in Tier 2 without its archived-through record moving."},
}

// Instruments is the gateway's set of metric instruments. Create one per
// MeterProvider (Providers.Instruments does) and share it: every method is
// safe for concurrent use, and every method of a nil *Instruments does
// nothing, so packages may hold a nil one when metrics are off.
//
// The counter and histogram fields are exported for callers that need extra
// attributes; the methods cover the common cases.
type Instruments struct {
	HydrationLatency      metric.Float64Histogram // milliseconds
	ManifestReplaySeconds metric.Float64Histogram // seconds, one observation per stream replay
	UploadRetryAttempts   metric.Int64Counter
	UploadFailures        metric.Int64Counter
	DeleteRetryAttempts   metric.Int64Counter
	FlushFailures         metric.Int64Counter
	MetadataFailures      metric.Int64Counter
	IngestMessages        metric.Int64Counter
	IngestBytes           metric.Int64Counter // bytes
	Backpressure          metric.Int64Counter // attribute kind
	Deadletters           metric.Int64Counter
	IngestLostMessages    metric.Int64Counter
	IngestAckLatency      metric.Float64Histogram // seconds, per acked batch and stream
	IngestFsync           metric.Float64Histogram // seconds, per stream sync
	OwnershipChanges      metric.Int64Counter

	ManifestRecords             metric.Int64Counter
	ManifestCommitFailures      metric.Int64Counter
	ManifestUnknownRecords      metric.Int64Counter
	ManifestUploadRetryAttempts metric.Int64Counter
	ManifestPublishRetries      metric.Int64Counter
	ManifestPublished           metric.Int64Counter
	ManifestChunksDeleted       metric.Int64Counter
	ManifestTier2Pruned         metric.Int64Counter
	ManifestTier2PruneFailures  metric.Int64Counter
	Tier0Evictions              metric.Int64Counter

	// HydrationQuantiles sees every ObserveHydration, so that dumps can print
	// p50/p90/p99 without a Prometheus server.
	HydrationQuantiles *Quantiles

	mu        sync.Mutex
	gauges    map[string][]*gaugeFunc
	residency []*residencyFunc
}

type gaugeFunc struct {
	fn    func() int64
	attrs attribute.Set
}

// NewInstruments creates every instrument on m; a nil m gives working but
// unexported no-op instruments.
func NewInstruments(m metric.Meter) (*Instruments, error) {
	if m == nil {
		m = metricnoop.NewMeterProvider().Meter(InstrumentationName)
	}
	in := &Instruments{
		HydrationQuantiles: NewQuantiles(),
		gauges:             make(map[string][]*gaugeFunc),
	}
	var errs []error
	hist := func(name, unit, desc string, bounds []float64) metric.Float64Histogram {
		h, err := m.Float64Histogram(name, metric.WithUnit(unit), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(bounds...))
		errs = append(errs, err)
		return h
	}
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	in.HydrationLatency = hist(MetricHydrationLatency, "ms", "Time to bring a segment back from Tier 1 or Tier 2.", HydrationLatencyBucketsMs)
	in.ManifestReplaySeconds = hist(MetricManifestReplaySeconds, "s", "Time to rebuild a stream's index from snapshot and manifest.", ManifestReplayBucketsSeconds)
	in.UploadRetryAttempts = counter(MetricUploadRetryAttempts, "{attempt}", "Tier 2 upload attempts retried after a failure.")
	in.UploadFailures = counter(MetricUploadFailures, "{upload}", "Tier 2 uploads given up after the last retry.")
	in.DeleteRetryAttempts = counter(MetricDeleteRetryAttempts, "{attempt}", "Tier 2 delete attempts retried after a failure.")
	in.FlushFailures = counter(MetricFlushFailures, "{failure}", "Failed Tier 0 flushes (write or fsync).")
	in.MetadataFailures = counter(MetricMetadataFailures, "{failure}", "Failed manifest or sealed-marker writes.")
	in.IngestMessages = counter(MetricIngestMessages, "{message}", "Messages appended durably from JetStream.")
	in.IngestBytes = counter(MetricIngestBytes, "By", "Payload bytes appended durably from JetStream.")
	in.Backpressure = counter(MetricBackpressure, "{answer}", "Backpressure answers given, by kind.")
	in.Deadletters = counter(MetricDeadletters, "{message}", "Messages rejected to the dead-letter subject.")
	in.OwnershipChanges = counter(MetricOwnershipChanges, "{change}", "Partition leases acquired, lost and released by this gateway.")
	in.IngestAckLatency = hist(MetricIngestAckLatency, "s", "From JetStream storing the oldest message of an acked batch of a stream to the gateway's ack of it after the fsync (the two clocks are the broker's and the gateway's).", IngestLatencyBucketsSeconds)
	in.IngestFsync = hist(MetricIngestFsync, "s", "Time to make a stream's appended records durable (one fsync for every batch waiting).", IngestLatencyBucketsSeconds)
	in.IngestLostMessages = counter(MetricIngestLostMessages, "{message}", "Messages that left the ingest stream (max age, deleted) before the gateway stored them.")
	in.ManifestRecords = counter(MetricManifestRecords, "{record}", "Manifest records committed.")
	in.ManifestCommitFailures = counter(MetricManifestCommitFailures, "{failure}", "Manifest commits that failed; the records stay pending and are retried.")
	in.ManifestUnknownRecords = counter(MetricManifestUnknownRecords, "{record}", "Manifest records of unknown type skipped at replay.")
	in.ManifestUploadRetryAttempts = counter(MetricManifestUploadRetryAttempts, "{attempt}", "Failed manifest chunk or snapshot uploads to Tier 2, retried.")
	in.ManifestPublishRetries = counter(MetricManifestPublishRetries, "{attempt}", "Failed manifest record publications, retried.")
	in.ManifestPublished = counter(MetricManifestPublished, "{record}", "Manifest records published.")
	in.ManifestChunksDeleted = counter(MetricManifestChunksDeleted, "{chunk}", "Local manifest chunks removed after Tier 2 confirmed them.")
	in.ManifestTier2Pruned = counter(MetricManifestTier2Pruned, "{object}", "Tier 2 manifest chunks and snapshots deleted behind the newest uploaded snapshot.")
	in.ManifestTier2PruneFailures = counter(MetricManifestTier2PruneFailures, "{failure}", "Failed attempts to prune Tier 2 manifest chunks and snapshots, retried.")
	in.Tier0Evictions = counter(MetricTier0Evictions, "{segment}", "Sealed segments evicted from Tier 0 (their Tier 1 copy stays).")

	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("tracing: create instruments: %w", err)
	}
	// Export every counter series at 0 from the start: Prometheus' increase()
	// cannot see the first failure of a series that appears with value 1,
	// and the alerts on flush_failures and metadata_failures must.
	ctx := context.Background()
	for _, c := range []metric.Int64Counter{in.UploadRetryAttempts, in.UploadFailures, in.DeleteRetryAttempts,
		in.FlushFailures, in.MetadataFailures, in.IngestMessages, in.IngestBytes, in.Deadletters, in.IngestLostMessages,
		in.ManifestRecords, in.ManifestCommitFailures, in.ManifestUnknownRecords, in.ManifestUploadRetryAttempts,
		in.ManifestPublishRetries, in.ManifestPublished, in.ManifestChunksDeleted, in.ManifestTier2Pruned,
		in.ManifestTier2PruneFailures, in.Tier0Evictions} {
		c.Add(ctx, 0)
	}
	for _, kind := range BackpressureKinds {
		in.Backpressure.Add(ctx, 0, metric.WithAttributes(MetricAttrKind.String(kind)))
	}
	for _, change := range OwnershipChangeKinds {
		in.OwnershipChanges.Add(ctx, 0, metric.WithAttributes(MetricAttrChange.String(change)))
	}

	observables := make([]metric.Observable, 0, len(gaugeNames))
	byName := make(map[string]metric.Int64ObservableGauge, len(gaugeNames))
	for _, name := range gaugeNames {
		spec := gaugeSpecs[name]
		g, err := m.Int64ObservableGauge(name, metric.WithUnit(spec.unit), metric.WithDescription(spec.desc))
		errs = append(errs, err)
		if err == nil {
			observables = append(observables, g)
			byName[name] = g
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("tracing: create instruments: %w", err)
	}
	if _, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		in.observeGauges(o, byName)
		return nil
	}, observables...); err != nil {
		return nil, fmt.Errorf("tracing: register gauge callback: %w", err)
	}
	return in, nil
}

// observeGauges reports, for each gauge and attribute set, the sum of the
// registered functions. The functions are called without holding in.mu, so
// they may take their owners' locks; concurrent scrapes each call them.
func (in *Instruments) observeGauges(o metric.Observer, byName map[string]metric.Int64ObservableGauge) {
	in.mu.Lock()
	snapshot := make(map[string][]*gaugeFunc, len(in.gauges))
	for name, fns := range in.gauges {
		snapshot[name] = append([]*gaugeFunc(nil), fns...)
	}
	residency := append([]*residencyFunc(nil), in.residency...)
	in.mu.Unlock()

	type series struct {
		attrs attribute.Set
		sum   int64
	}
	for _, name := range gaugeNames {
		sums := make(map[attribute.Distinct]*series)
		var order []attribute.Distinct
		add := func(attrs attribute.Set, v int64) {
			key := attrs.Equivalent()
			s, ok := sums[key]
			if !ok {
				s = &series{attrs: attrs}
				sums[key] = s
				order = append(order, key)
			}
			s.sum += v
		}
		for _, g := range snapshot[name] {
			add(g.attrs, g.fn())
		}
		if name == MetricSegmentResidency {
			for _, r := range residency {
				v := r.fn()
				add(residencyStates[0], v.ResidentInTier0)
				add(residencyStates[1], v.StagedForTier0)
				add(residencyStates[2], v.UploadedToTier2)
				add(residencyStates[3], v.NeedsRecovery)
			}
		}
		for _, key := range order {
			s := sums[key]
			o.ObserveInt64(byName[name], s.sum, metric.WithAttributeSet(s.attrs))
		}
	}
}

var residencyStates = [4]attribute.Set{
	attribute.NewSet(MetricAttrState.String(StateResidentInTier0)),
	attribute.NewSet(MetricAttrState.String(StateStagedForTier0)),
	attribute.NewSet(MetricAttrState.String(StateUploadedToTier2)),
	attribute.NewSet(MetricAttrState.String(StateNeedsRecovery)),
}

type residencyFunc struct{ fn func() Residency }

// RegisterGauge makes fn a source of the gauge name (one of
// activation_queue_depth, hydration_queue_depth, compression_queue_depth,
// tier0_bytes, tier1_bytes, segment_residency). fn is called at each scrape
// from the scraping goroutine and must be quick and safe for concurrent use.
// Functions registered for the same name and the same attributes are summed,
// so each stream's queue may register its own depth. unregister removes fn;
// calling it more than once is harmless.
func (in *Instruments) RegisterGauge(name string, fn func() int64, attrs ...attribute.KeyValue) (unregister func(), err error) {
	if in == nil {
		return func() {}, nil
	}
	if _, ok := gaugeSpecs[name]; !ok {
		return nil, fmt.Errorf("tracing: register gauge %q: not a gauge of this package", name)
	}
	if fn == nil {
		return nil, fmt.Errorf("tracing: register gauge %q: nil function", name)
	}
	g := &gaugeFunc{fn: fn, attrs: attribute.NewSet(attrs...)}
	in.mu.Lock()
	in.gauges[name] = append(in.gauges[name], g)
	in.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			in.mu.Lock()
			defer in.mu.Unlock()
			fns := in.gauges[name]
			for i, other := range fns {
				if other == g {
					in.gauges[name] = append(fns[:i:i], fns[i+1:]...)
					break
				}
			}
		})
	}, nil
}

// Residency counts segments per residency state.
type Residency struct {
	ResidentInTier0 int64
	StagedForTier0  int64
	UploadedToTier2 int64
	NeedsRecovery   int64
}

// RegisterResidency feeds segment_residency from fn, called once per scrape
// for all four states (so the four values come from one consistent look).
// Several registrations, and RegisterGauge calls for segment_residency with
// the same state, are summed.
func (in *Instruments) RegisterResidency(fn func() Residency) (unregister func(), err error) {
	if in == nil {
		return func() {}, nil
	}
	if fn == nil {
		return nil, errors.New("tracing: register residency: nil function")
	}
	r := &residencyFunc{fn: fn}
	in.mu.Lock()
	in.residency = append(in.residency, r)
	in.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			in.mu.Lock()
			defer in.mu.Unlock()
			for i, other := range in.residency {
				if other == r {
					in.residency = append(in.residency[:i:i], in.residency[i+1:]...)
					break
				}
			}
		})
	}, nil
}

// ObserveHydration records one hydration's duration in hydration_latency
// (milliseconds) and in HydrationQuantiles.
func (in *Instruments) ObserveHydration(ctx context.Context, d time.Duration, attrs ...attribute.KeyValue) {
	if in == nil {
		return
	}
	ms := float64(d) / float64(time.Millisecond)
	in.HydrationLatency.Record(ctx, ms, metric.WithAttributes(attrs...))
	in.HydrationQuantiles.Observe(ms)
}

// ObserveManifestReplay records how long one stream's manifest replay took.
func (in *Instruments) ObserveManifestReplay(ctx context.Context, d time.Duration) {
	if in == nil {
		return
	}
	in.ManifestReplaySeconds.Record(ctx, d.Seconds())
}

// ObserveIngestAck records the time from JetStream storing the oldest
// message of an acked batch to its ack.
func (in *Instruments) ObserveIngestAck(ctx context.Context, d time.Duration) {
	if in == nil {
		return
	}
	in.IngestAckLatency.Record(ctx, d.Seconds())
}

// ObserveIngestFsync records one stream sync of the ingest pipeline.
func (in *Instruments) ObserveIngestFsync(ctx context.Context, d time.Duration) {
	if in == nil {
		return
	}
	in.IngestFsync.Record(ctx, d.Seconds())
}

// AddIngest counts messages appended durably and their payload bytes.
func (in *Instruments) AddIngest(ctx context.Context, messages, bytes int64) {
	if in == nil {
		return
	}
	in.IngestMessages.Add(ctx, messages)
	in.IngestBytes.Add(ctx, bytes)
}

// OwnershipChangeKinds are the values of ownership_changes{change}.
var OwnershipChangeKinds = []string{"acquired", "lost", "released"}

// MetricAttrChange is the attribute of ownership_changes.
const MetricAttrChange = attribute.Key("change")

// IncOwnershipChange counts a partition lease acquired, lost or released
// (OwnershipChangeKinds).
func (in *Instruments) IncOwnershipChange(ctx context.Context, change string) {
	if in == nil {
		return
	}
	in.OwnershipChanges.Add(ctx, 1, metric.WithAttributes(MetricAttrChange.String(change)))
}

// IncBackpressure counts one backpressure answer of the given kind
// (backpressure.Kind.String(): admission, rollover, hydration, flush, tail).
func (in *Instruments) IncBackpressure(ctx context.Context, kind string) {
	if in == nil {
		return
	}
	in.Backpressure.Add(ctx, 1, metric.WithAttributes(MetricAttrKind.String(kind)))
}

// IncDeadletter counts one message sent to the dead-letter subject.
func (in *Instruments) IncDeadletter(ctx context.Context) {
	if in == nil {
		return
	}
	in.Deadletters.Add(ctx, 1)
}

// AddLostMessages counts n messages that left the ingest stream before
// the gateway stored them.
func (in *Instruments) AddLostMessages(ctx context.Context, n int64) {
	if in == nil {
		return
	}
	in.IngestLostMessages.Add(ctx, n)
}

// IncUploadRetry counts one retried Tier 2 upload attempt.
func (in *Instruments) IncUploadRetry(ctx context.Context) {
	if in == nil {
		return
	}
	in.UploadRetryAttempts.Add(ctx, 1)
}

// IncUploadFailure counts one Tier 2 upload abandoned after its last retry.
func (in *Instruments) IncUploadFailure(ctx context.Context) {
	if in == nil {
		return
	}
	in.UploadFailures.Add(ctx, 1)
}

// IncDeleteRetry counts one retried Tier 2 delete attempt.
func (in *Instruments) IncDeleteRetry(ctx context.Context) {
	if in == nil {
		return
	}
	in.DeleteRetryAttempts.Add(ctx, 1)
}

// IncFlushFailure counts one failed Tier 0 flush (write or fsync).
func (in *Instruments) IncFlushFailure(ctx context.Context) {
	if in == nil {
		return
	}
	in.FlushFailures.Add(ctx, 1)
}

// IncMetadataFailure counts one failed manifest or sealed-marker write.
func (in *Instruments) IncMetadataFailure(ctx context.Context) {
	if in == nil {
		return
	}
	in.MetadataFailures.Add(ctx, 1)
}

// AddManifestRecords counts n manifest records committed.
func (in *Instruments) AddManifestRecords(ctx context.Context, n int64) {
	if in == nil {
		return
	}
	in.ManifestRecords.Add(ctx, n)
}

// IncManifestCommitFailure counts one failed manifest commit.
func (in *Instruments) IncManifestCommitFailure(ctx context.Context) {
	if in == nil {
		return
	}
	in.ManifestCommitFailures.Add(ctx, 1)
}

// AddManifestUnknownRecords counts n records of unknown type skipped at
// replay.
func (in *Instruments) AddManifestUnknownRecords(ctx context.Context, n int64) {
	if in == nil {
		return
	}
	in.ManifestUnknownRecords.Add(ctx, n)
}

// AddManifestTier2Pruned counts n Tier 2 manifest objects deleted behind
// the newest uploaded snapshot.
func (in *Instruments) AddManifestTier2Pruned(ctx context.Context, n int64) {
	if in == nil {
		return
	}
	in.ManifestTier2Pruned.Add(ctx, n)
}

// IncManifestTier2PruneFailure counts one failed prune of Tier 2 manifest
// objects; the next upload round tries again.
func (in *Instruments) IncManifestTier2PruneFailure(ctx context.Context) {
	if in == nil {
		return
	}
	in.ManifestTier2PruneFailures.Add(ctx, 1)
}

// IncManifestUploadRetry counts one failed manifest chunk or snapshot
// upload that will be retried.
func (in *Instruments) IncManifestUploadRetry(ctx context.Context) {
	if in == nil {
		return
	}
	in.ManifestUploadRetryAttempts.Add(ctx, 1)
}

// IncManifestPublishRetry counts one failed publication that will be
// retried.
func (in *Instruments) IncManifestPublishRetry(ctx context.Context) {
	if in == nil {
		return
	}
	in.ManifestPublishRetries.Add(ctx, 1)
}

// AddManifestPublished counts n manifest records published.
func (in *Instruments) AddManifestPublished(ctx context.Context, n int64) {
	if in == nil {
		return
	}
	in.ManifestPublished.Add(ctx, n)
}

// AddManifestChunksDeleted counts n local manifest chunks removed.
func (in *Instruments) AddManifestChunksDeleted(ctx context.Context, n int64) {
	if in == nil {
		return
	}
	in.ManifestChunksDeleted.Add(ctx, n)
}

// IncTier0Eviction counts one segment evicted from Tier 0.
func (in *Instruments) IncTier0Eviction(ctx context.Context) {
	if in == nil {
		return
	}
	in.Tier0Evictions.Add(ctx, 1)
}
