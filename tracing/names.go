package tracing

import "go.opentelemetry.io/otel/attribute"

// Span names. One name per kind of work, so that a trace backend can group
// them; the stream and segment go into attributes, never into the name.
const (
	SpanIngestBatch     = "aof.ingest.batch"     // one pull-consumer fetch, linked to every producer
	SpanAppend          = "aof.append"           // one record appended to the active segment
	SpanFsync           = "aof.fsync"            // one group-commit fsync
	SpanSeal            = "aof.seal"             // active segment sealed (footer, current.sealed)
	SpanTier1Compress   = "aof.tier1.compress"   // sealed segment -> seekable zstd
	SpanTier2Upload     = "aof.tier2.upload"     // Tier 1 artifact -> object store
	SpanTier2Delete     = "aof.tier2.delete"     // object removed from Tier 2
	SpanHydrate         = "aof.hydrate"          // segment brought back from Tier 1 or Tier 2
	SpanManifestCommit  = "aof.manifest.commit"  // manifest record durable in a chunk
	SpanManifestPublish = "aof.manifest.publish" // manifest record published on NATS
	SpanRead            = "aof.read"             // one read request served
)

// Span attribute keys.
const (
	AttrStream       = attribute.Key("aof.stream")       // string: stream name
	AttrSegment      = attribute.Key("aof.segment")      // int64: segment id
	AttrRecords      = attribute.Key("aof.records")      // int64: record count
	AttrBytes        = attribute.Key("aof.bytes")        // int64: payload bytes
	AttrTier         = attribute.Key("aof.tier")         // int64: 0, 1 or 2
	AttrReasonCode   = attribute.Key("aof.reason_code")  // int64: manifest reason code 0-4
	AttrBackpressure = attribute.Key("aof.backpressure") // string: backpressure kind
)

// Metric attribute keys. Metric attributes stay low-cardinality: no stream
// or segment ids.
const (
	// MetricAttrState labels segment_residency.
	MetricAttrState = attribute.Key("state")
	// MetricAttrKind labels backpressure: admission, rollover, hydration,
	// flush or tail (backpressure.Kind.String()).
	MetricAttrKind = attribute.Key("kind")
)
