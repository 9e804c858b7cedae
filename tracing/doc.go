// Package tracing builds the OpenTelemetry providers of the gateway, carries
// trace context through NATS headers, and holds the metric instruments whose
// names operators already alert on.
//
// # Providers
//
// [Setup] builds one SDK TracerProvider (batch span processor, parent-based
// trace-id-ratio sampler, resource with service.name, service.version and
// service.instance.id) and one SDK MeterProvider whose only reader is the
// OpenTelemetry Prometheus exporter, registered on a private
// prometheus.Registry (never the global one) and served by
// [Providers.MetricsHandler]. Packages never reach for globals: they are
// handed a trace.Tracer, a metric.Meter or an [*Instruments]; a nil one of
// each means "do nothing" ([TracerOrNop], [MeterOrNop], [OrNop] for loggers,
// [NewInstruments] and the nil-receiver methods of [*Instruments]).
//
// # Trace context in NATS headers
//
// The wire format is W3C Trace Context plus W3C Baggage: a producer's
// message may carry
//
//	traceparent: 00-<trace-id 32 hex>-<span-id 16 hex>-<flags 2 hex>
//	tracestate:  <vendor list, optional>
//	baggage:     <key=value list, optional>
//
// NATS header names are case-sensitive, unlike HTTP. [HeaderCarrier] finds a
// key whatever case the producer wrote it in, and writes lowercase keys,
// replacing any differently-cased copy so that a message never carries two
// traceparent headers. nats.Header is map[string][]string, so callers pass
// msg.Header directly to [Inject], [Extract] and [LinkFromHeaders].
//
// An ingest batch span has many producers; it does not pick one as parent but
// links each one ([LinkFromHeaders]). Per-record spans (append) are children
// of the batch span.
//
// # Metric names
//
// The instrument names are those of DESIGN.md "Observability names". The
// Prometheus exporter adds unit suffixes and "_total" to counters; the names
// a scrape actually shows, which deploy/prometheus/alerts.yml and
// deploy/grafana/aof-gateway.json use, are:
//
//	activation_queue_depth                 gauge
//	hydration_queue_depth                  gauge
//	compression_queue_depth                gauge
//	tier0_bytes                            gauge (bytes)
//	tier1_bytes                            gauge (bytes)
//	segment_residency{state}               gauge, state in resident_in_tier0,
//	                                       staged_for_tier0, uploaded_to_tier2,
//	                                       needs_recovery
//	hydration_latency_milliseconds_bucket  histogram (+ _sum, _count)
//	manifest_replay_seconds_bucket         histogram (+ _sum, _count)
//	ingest_ack_latency_seconds_bucket      histogram (+ _sum, _count)
//	ingest_fsync_seconds_bucket            histogram (+ _sum, _count)
//	upload_retry_attempts_total            counter
//	upload_failures_total                  counter
//	delete_retry_attempts_total            counter
//	flush_failures_total                   counter
//	metadata_failures_total                counter
//	ingest_messages_total                  counter
//	ingest_bytes_total                     counter (bytes)
//	backpressure_total{kind}               counter, kind in admission,
//	                                       rollover, hydration, flush, tail
//	deadletters_total                      counter
//	ingest_lost_messages_total             counter
//	ownership_changes_total{change}        counter, change in acquired,
//	                                       lost, released
//	owned_partitions                       gauge
//	unarchived_messages                    gauge
//	archive_lag_seconds                    gauge
//	manifest_records_total                 counter
//	manifest_commit_failures_total         counter
//	manifest_unknown_records_total         counter
//	manifest_upload_retry_attempts_total   counter
//	manifest_publish_retry_attempts_total  counter
//	manifest_published_total              counter
//	manifest_chunks_deleted_total          counter
//	tier0_evictions_total                  counter
//
// TestExportedNames scrapes the handler and fails if this list drifts from
// what the exporter really produces.
package tracing
