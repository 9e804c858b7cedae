package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Validate checks c and returns every problem joined with errors.Join, each
// an *Error naming the key; nil when c is usable. Secrets never appear in
// the messages.
func (c *Config) Validate() error {
	if errs := c.problems(); len(errs) > 0 {
		return joinScrubbed(errs, c.secrets())
	}
	return nil
}

type checker struct{ errs []*Error }

func (v *checker) add(key, format string, args ...any) {
	v.errs = append(v.errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (v *checker) positive(key string, n int64, shown string) {
	if n <= 0 {
		v.add(key, "%s must be > 0, got %s", key, shown)
	}
}

func (v *checker) nonNegative(key string, n int64, shown string) {
	if n < 0 {
		v.add(key, "%s must be >= 0, got %s", key, shown)
	}
}

func (v *checker) bytes(key string, b Bytes)       { v.positive(key, int64(b), b.String()) }
func (v *checker) duration(key string, d Duration) { v.positive(key, int64(d), d.String()) }
func (v *checker) count(key string, n int)         { v.positive(key, int64(n), strconv.Itoa(n)) }

func (v *checker) between(key string, n, lo, hi int) {
	if n < lo || n > hi {
		v.add(key, "%s must be between %d and %d, got %d", key, lo, hi, n)
	}
}

func (v *checker) oneOf(key, got string, allowed ...string) {
	if !slices.Contains(allowed, got) {
		v.add(key, "%s %q must be one of %s", key, got, strings.Join(allowed, ", "))
	}
}

func (v *checker) required(key, got string) {
	if strings.TrimSpace(got) == "" {
		v.add(key, "%s is required", key)
	}
}

func (v *checker) name(key, got, what string) {
	if err := ValidStreamName(got); err != nil {
		msg := strings.Replace(err.Error(), "stream name", what, 1)
		v.add(key, "%s: %s", key, msg)
	}
}

func (v *checker) prefix(key, got string) {
	if err := ValidSubjectPrefix(got); err != nil {
		v.add(key, "%s: %s", key, err.Error())
	}
}

func (v *checker) tls(section string, t TLS) {
	if (t.Cert == "") != (t.Key == "") {
		v.add(section+".cert", "%s.cert and %s.key must be set together", section, section)
	}
}

func (c *Config) problems() []*Error {
	v := &checker{}
	v.required("data_root", c.DataRoot)

	// NATS
	n := c.NATS
	if !n.Embedded.Enabled {
		if strings.TrimSpace(n.URL) == "" {
			v.add("nats.url", "nats.url is required unless nats.embedded.enabled is true")
		}
	} else {
		v.required("nats.embedded.host", n.Embedded.Host)
		v.between("nats.embedded.port", n.Embedded.Port, 1, 65535)
	}
	if n.Password != "" && n.User == "" {
		v.add("nats.password", "nats.password is set but nats.user is empty")
	}
	if n.Creds != "" && n.NKey != "" {
		v.add("nats.creds", "nats.creds and nats.nkey are mutually exclusive")
	}
	v.tls("nats.tls", n.TLS)
	v.tls("tls", c.TLS)

	// Ingest
	in := c.Ingest
	v.prefix("ingest.subject_prefix", in.SubjectPrefix)
	v.prefix("ingest.deadletter_prefix", in.DeadletterPrefix)
	v.name("ingest.stream_name", in.StreamName, "JetStream stream name")
	v.name("ingest.consumer_name", in.ConsumerName, "consumer name")
	v.count("ingest.batch_size", in.BatchSize)
	v.bytes("ingest.max_record_bytes", in.MaxRecordBytes)
	v.count("ingest.max_streams", in.MaxStreams)
	v.duration("ingest.ack_wait", in.AckWait)
	v.count("ingest.max_ack_pending", in.MaxAckPending)
	v.nonNegative("ingest.stream_max_bytes", int64(in.StreamMaxBytes), in.StreamMaxBytes.String())
	v.nonNegative("ingest.stream_max_age", int64(in.StreamMaxAge), in.StreamMaxAge.String())
	if in.StreamMaxAge > 0 && in.StreamMaxAge.D() < IngestDuplicateWindow {
		// JetStream refuses a stream whose duplicate window exceeds its
		// max age; the window is not shortened instead, because producer
		// retries rely on it and an age this short drops messages the
		// gateway has not stored whenever admission waits that long.
		v.add("ingest.stream_max_age", "ingest.stream_max_age (%s) must be 0 (unlimited) or at least %s, the duplicate window of ingest.stream_name %q",
			in.StreamMaxAge, Duration(IngestDuplicateWindow), in.StreamName)
	}
	if in.Discard != "new" {
		// The ingest stream is the write-ahead log of what is not archived
		// yet: discard old would drop such messages when it is full.
		v.add("ingest.discard", "ingest.discard %q is no longer supported: the ingest stream always refuses producers when full (discard new), "+
			"because it holds the messages not yet archived in Tier 2; remove the key", in.Discard)
	}
	v.nonNegative("ingest.keep", int64(in.Keep), strconv.Itoa(in.Keep))
	v.between("ingest.replicas", in.Replicas, 1, 5)

	// Tier 0 / Tier 1 / segment
	v.bytes("tier0.cluster_max_bytes", c.Tier0.ClusterMaxBytes)
	v.nonNegative("tier0.activation_queue_warn_threshold", int64(c.Tier0.ActivationQueueWarnThreshold),
		strconv.Itoa(c.Tier0.ActivationQueueWarnThreshold))
	v.bytes("segment.target_bytes", c.Segment.TargetBytes)
	v.nonNegative("segment.max_age", int64(c.Segment.MaxAge), c.Segment.MaxAge.String())
	t1 := c.Tier1
	v.bytes("tier1.max_bytes", t1.MaxBytes)
	if t1.MaxBytes > 0 && c.Segment.TargetBytes > 0 && t1.MaxBytes < c.Segment.TargetBytes {
		v.add("tier1.max_bytes", "tier1.max_bytes (%s) must be at least one segment (segment.target_bytes = %s)",
			t1.MaxBytes, c.Segment.TargetBytes)
	}
	if c.Tier0.ClusterMaxBytes > 0 && c.Segment.TargetBytes > 0 && c.Tier0.ClusterMaxBytes < c.Segment.TargetBytes {
		v.add("tier0.cluster_max_bytes", "tier0.cluster_max_bytes (%s) must be at least one segment (segment.target_bytes = %s)",
			c.Tier0.ClusterMaxBytes, c.Segment.TargetBytes)
	}
	v.bytes("tier1.frame_bytes", t1.FrameBytes)
	v.nonNegative("tier1.max_retries", int64(t1.MaxRetries), strconv.Itoa(t1.MaxRetries))
	v.nonNegative("tier1.retry_backoff", int64(t1.RetryBackoff), t1.RetryBackoff.String())
	v.count("tier1.compression_workers", t1.CompressionWorkers)
	v.count("tier1.hydration_workers", t1.HydrationWorkers)
	v.between("tier1.compression_level", t1.CompressionLevel, 1, 22)
	v.nonNegative("tier1.compression_defer", int64(t1.CompressionDefer), t1.CompressionDefer.String())

	c.checkTier2(v)

	// Manifest
	m := c.Manifest
	v.bytes("manifest.chunk_capacity", m.ChunkCapacity)
	v.duration("manifest.rotation_period", m.RotationPeriod)
	v.duration("manifest.snapshot_interval", m.SnapshotInterval)
	v.prefix("manifest.subject_prefix", m.SubjectPrefix)
	v.name("manifest.stream_name", m.StreamName, "JetStream stream name")
	if m.StreamName == in.StreamName {
		v.add("manifest.stream_name", "manifest.stream_name %q must differ from ingest.stream_name", m.StreamName)
	}

	// Subject spaces must be disjoint, or one JetStream stream captures
	// another's messages (the ingest stream would re-ingest dead letters).
	prefixes := []struct{ key, val string }{
		{"ingest.subject_prefix", in.SubjectPrefix},
		{"ingest.deadletter_prefix", in.DeadletterPrefix},
		{"manifest.subject_prefix", m.SubjectPrefix},
		{"control.subject_prefix", c.Control.SubjectPrefix},
		{"read.subject_prefix", c.Read.SubjectPrefix},
	}
	for i := range prefixes {
		for j := 0; j < i; j++ {
			a, b := prefixes[i], prefixes[j]
			if a.val != "" && b.val != "" && subjectsOverlap(a.val, b.val) {
				v.add(a.key, "%s %q overlaps %s %q; subject prefixes must be disjoint", a.key, a.val, b.key, b.val)
			}
		}
	}

	// Observability, retention, control, log
	tr := c.Tracing
	if tr.Exporter != "" { // unset: OTEL_TRACES_EXPORTER and OTEL_EXPORTER_OTLP_* decide
		v.oneOf("tracing.exporter", tr.Exporter, "none", "stdout", "otlp-grpc", "otlp-http")
	}
	if tr.SamplingRatio < 0 || tr.SamplingRatio > 1 {
		v.add("tracing.sampling_ratio", "tracing.sampling_ratio must be between 0 and 1, got %g", tr.SamplingRatio)
	}
	if c.Metrics.Listen != "" {
		if _, port, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
			v.add("metrics.listen", "metrics.listen %q must be host:port (\"\" disables metrics)", c.Metrics.Listen)
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			v.add("metrics.listen", "metrics.listen %q has an invalid port", c.Metrics.Listen)
		}
	}
	v.nonNegative("retention.max_age", int64(c.Retention.MaxAge), c.Retention.MaxAge.String())
	v.nonNegative("retention.max_bytes", int64(c.Retention.MaxBytes), c.Retention.MaxBytes.String())
	v.prefix("control.subject_prefix", c.Control.SubjectPrefix)
	v.name("control.service_name", c.Control.ServiceName, "service name")
	v.prefix("read.subject_prefix", c.Read.SubjectPrefix)
	v.between("read.max_concurrent", c.Read.MaxConcurrent, 1, 4096)
	v.between("read.prefetch_segments", c.Read.PrefetchSegments, 0, 64)
	v.bytes("read.prefetch_bytes", c.Read.PrefetchBytes)
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "text", "json")
	c.checkCluster(v)
	return v.errs
}

// MaxPartitions bounds cluster.partitions: every gateway scans and may hold
// a lease per partition.
const MaxPartitions = 1024

// MinLeaseTTL bounds cluster.lease_ttl: an owner renews every third of it,
// and a shorter lease would be lost to one slow round trip.
const MinLeaseTTL = time.Second

func (c *Config) checkCluster(v *checker) {
	cl := c.Cluster
	v.between("cluster.partitions", cl.Partitions, 1, MaxPartitions)
	v.name("cluster.bucket", cl.Bucket, "KV bucket name")
	v.between("cluster.replicas", cl.Replicas, 1, 5)
	if cl.LeaseTTL.D() < MinLeaseTTL {
		v.add("cluster.lease_ttl", "cluster.lease_ttl must be at least %s, got %s", Duration(MinLeaseTTL), cl.LeaseTTL)
	}
	if cl.RebalancePause.D() < 0 {
		v.add("cluster.rebalance_pause", "cluster.rebalance_pause must not be negative, got %s", cl.RebalancePause)
	}
	if c.Node.ID != "" {
		// The id is one token of the KV keys node.<id> and of lease values.
		v.name("node.id", c.Node.ID, "node id")
	}
}

// IngestDuplicateWindow is the JetStream duplicate window of the ingest
// stream (ingest.stream_name): a producer's retry with the same
// Nats-Msg-Id within it is stored once.
const IngestDuplicateWindow = 2 * time.Minute

// The store's record limits, for Warnings. config imports no store
// package; TestWarningLimitsMatchTheSegmentFormat keeps these equal to
// segment.RecordHeaderSize and segment.MaxPayloadBytes.
const (
	recordHeaderBytes = 36
	segmentMaxPayload = 64 * MiB
)

// Warnings returns the settings that validate but will not do what they
// seem to, each an *Error naming the key; the gateway logs them at start.
// A message the store can never admit is dead-lettered with its reason, so
// these are not errors.
func (c *Config) Warnings() []*Error {
	v := &checker{}
	rec := c.Ingest.MaxRecordBytes
	if fit := c.Tier0.ClusterMaxBytes - recordHeaderBytes; rec > fit {
		v.add("ingest.max_record_bytes", "ingest.max_record_bytes (%s) is more than tier0.cluster_max_bytes (%s) can ever admit "+
			"(%d bytes per record after its %d-byte header): larger messages are dead-lettered",
			rec, c.Tier0.ClusterMaxBytes, int64(fit), recordHeaderBytes)
	}
	if rec > segmentMaxPayload {
		v.add("ingest.max_record_bytes", "ingest.max_record_bytes (%s) is more than a segment record can hold (%s): larger messages are dead-lettered",
			rec, Bytes(segmentMaxPayload))
	}
	in := c.Ingest
	if in.BatchSize > 0 && in.MaxAckPending > 2*in.BatchSize {
		// Measured by the end-to-end benchmark (docs/performance.md): the
		// client's pull buffer holds 2 x batch_size messages; a larger
		// window overflows it and every drop restarts the pipeline.
		v.add("ingest.max_ack_pending", "ingest.max_ack_pending (%d) is more than twice ingest.batch_size (%d): the pull buffer "+
			"overflows under load (nats: slow consumer, messages dropped) and the pipeline restarts from its ack floor each time; "+
			"raise ingest.batch_size with it", in.MaxAckPending, in.BatchSize)
	}
	return v.errs
}

func (c *Config) checkTier2(v *checker) {
	t := c.Tier2
	v.tls("tier2.tls", t.TLS)
	v.count("tier2.concurrency", t.Concurrency)
	v.count("tier2.retry.max_attempts", t.Retry.MaxAttempts)
	v.nonNegative("tier2.retry.base_delay_ms", int64(t.Retry.BaseDelayMS), strconv.Itoa(t.Retry.BaseDelayMS))
	if t.Retry.Jitter < 0 || t.Retry.Jitter > 1 {
		v.add("tier2.retry.jitter", "tier2.retry.jitter must be between 0 and 1, got %g", t.Retry.Jitter)
	}
	v.count("tier2.breaker.failures", t.Breaker.Failures)
	v.duration("tier2.breaker.cooldown", t.Breaker.Cooldown)
	if strings.HasPrefix(t.Prefix, "/") {
		v.add("tier2.prefix", "tier2.prefix %q must not start with /", t.Prefix)
	}
	if !t.Enabled {
		return
	}
	if t.Endpoint == "" {
		v.add("tier2.endpoint", "tier2.endpoint is required when tier2 is enabled")
	} else {
		lower := strings.ToLower(t.Endpoint)
		if !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") {
			v.add("tier2.endpoint", "tier2.endpoint %q must start with http:// or https://", t.Endpoint)
		} else if u, err := url.Parse(t.Endpoint); err != nil || u.Host == "" {
			v.add("tier2.endpoint", "tier2.endpoint %q has no host", t.Endpoint)
		} else if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
			v.add("tier2.endpoint", "tier2.endpoint %q must be scheme://host[:port] only (no path, query or credentials)", t.Endpoint)
		} else if t.Secure && !t.UseTLS() {
			v.add("tier2.secure", "tier2.secure is true but tier2.endpoint %q is not https://", t.Endpoint)
		}
	}
	if t.Bucket == "" {
		v.add("tier2.bucket", "tier2.bucket is required when tier2 is enabled")
	} else if msg := bucketProblem(t.Bucket); msg != "" {
		v.add("tier2.bucket", "tier2.bucket %q is not a valid bucket name: %s", t.Bucket, msg)
	}
	if t.AccessKey == "" || t.SecretKey == "" {
		v.add("tier2.access_key", "tier2.access_key and tier2.secret_key are required when tier2 is enabled")
	}
}

// bucketProblem applies the S3 bucket naming rules that matter in practice.
func bucketProblem(b string) string {
	if len(b) < 3 || len(b) > 63 {
		return "it must be 3-63 characters long"
	}
	for i := 0; i < len(b); i++ {
		ch := b[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '-') {
			return fmt.Sprintf("%q at byte %d; only lowercase letters, digits, '.' and '-' are allowed", ch, i)
		}
	}
	first, last := b[0], b[len(b)-1]
	if first == '.' || first == '-' || last == '.' || last == '-' {
		return "it must start and end with a letter or digit"
	}
	if strings.Contains(b, "..") {
		return "it must not contain \"..\""
	}
	return ""
}
