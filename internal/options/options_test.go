package options

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bop-aof/aof/config"
)

// optionCase says where one configuration key lands: set changes it in a
// configuration away from its default, got reads the option it must set.
type optionCase struct {
	key  string
	set  func(*config.Config)
	got  func(*config.Config) any
	want any
}

var optionCases = []optionCase{
	{"data_root", func(c *config.Config) { c.DataRoot = "/srv/aof" }, func(c *config.Config) any { return Store(c).Root }, "/srv/aof"},
	{"tier0.cluster_max_bytes", func(c *config.Config) { c.Tier0.ClusterMaxBytes = 3 * config.GiB }, func(c *config.Config) any { return Store(c).Tier0MaxBytes }, int64(3 << 30)},
	{"tier0.activation_queue_warn_threshold", func(c *config.Config) { c.Tier0.ActivationQueueWarnThreshold = 17 }, func(c *config.Config) any { return Store(c).ActivationQueueWarnThreshold }, 17},
	{"tier0.seal_on_pressure", func(c *config.Config) { c.Tier0.SealOnPressure = false }, func(c *config.Config) any { return Store(c).SealOnPressure }, false},
	{"segment.target_bytes", func(c *config.Config) { c.Segment.TargetBytes = 8 * config.MiB }, func(c *config.Config) any { return Store(c).SegmentTargetBytes }, int64(8 << 20)},
	{"segment.max_age", func(c *config.Config) { c.Segment.MaxAge = config.Duration(time.Minute) }, func(c *config.Config) any { return Store(c).SegmentMaxAge }, time.Minute},
	{"tier1.max_bytes", func(c *config.Config) { c.Tier1.MaxBytes = 20 * config.GiB }, func(c *config.Config) any { return Store(c).Tier1MaxBytes }, int64(20 << 30)},
	{"tier1.frame_bytes", func(c *config.Config) { c.Tier1.FrameBytes = 256 * config.KiB }, func(c *config.Config) any { return Store(c).FrameBytes }, 256 << 10},
	{"tier1.compression_level", func(c *config.Config) { c.Tier1.CompressionLevel = 9 }, func(c *config.Config) any { return Store(c).CompressionLevel }, 9},
	{"tier1.compression_defer", func(c *config.Config) { c.Tier1.CompressionDefer = config.Duration(7 * time.Second) }, func(c *config.Config) any { return Store(c).CompressDefer }, 7 * time.Second},
	{"tier1.compression_workers", func(c *config.Config) { c.Tier1.CompressionWorkers = 6 }, func(c *config.Config) any { return Store(c).CompressionWorkers }, 6},
	{"tier1.hydration_workers", func(c *config.Config) { c.Tier1.HydrationWorkers = 5 }, func(c *config.Config) any { return Store(c).HydrationWorkers }, 5},
	{"tier1.retry_backoff", func(c *config.Config) { c.Tier1.RetryBackoff = config.Duration(time.Second) }, func(c *config.Config) any { return Store(c).JobRetryBackoff }, time.Second},
	{"tier1.max_retries", func(c *config.Config) { c.Tier1.MaxRetries = 9 }, func(c *config.Config) any { return Store(c).JobMaxRetries }, 9},
	{"tier2.concurrency", func(c *config.Config) { c.Tier2.Concurrency = 7 }, func(c *config.Config) any { return Store(c).Tier2Concurrency }, 7},
	{"manifest.chunk_capacity", func(c *config.Config) { c.Manifest.ChunkCapacity = 1 * config.MiB }, func(c *config.Config) any { return Store(c).ManifestChunkCapacity }, int64(1 << 20)},
	{"manifest.rotation_period", func(c *config.Config) { c.Manifest.RotationPeriod = config.Duration(time.Hour) }, func(c *config.Config) any { return Store(c).ManifestRotationPeriod }, time.Hour},
	{"manifest.snapshot_interval", func(c *config.Config) { c.Manifest.SnapshotInterval = config.Duration(0) }, func(c *config.Config) any { return Store(c).SnapshotInterval }, time.Duration(0)},
	{"retention.max_age", func(c *config.Config) { c.Retention.MaxAge = config.Duration(48 * time.Hour) }, func(c *config.Config) any { return Store(c).RetentionMaxAge }, 48 * time.Hour},
	{"read.prefetch_segments", func(c *config.Config) { c.Read.PrefetchSegments = 0 }, func(c *config.Config) any { return Store(c).PrefetchSegments }, 0},
	{"read.prefetch_bytes", func(c *config.Config) { c.Read.PrefetchBytes = 64 * config.MiB }, func(c *config.Config) any { return Store(c).PrefetchBytes }, int64(64 << 20)},
	{"retention.max_bytes", func(c *config.Config) { c.Retention.MaxBytes = 100 * config.GiB }, func(c *config.Config) any { return Store(c).RetentionMaxBytes }, int64(100 << 30)},

	{"tier2.endpoint", func(c *config.Config) { c.Tier2.Endpoint = "https://s3.example.com" }, func(c *config.Config) any { return Tier2(c).Endpoint }, "https://s3.example.com"},
	{"tier2.bucket", func(c *config.Config) { c.Tier2.Bucket = "aof-prod" }, func(c *config.Config) any { return Tier2(c).Bucket }, "aof-prod"},
	{"tier2.access_key", func(c *config.Config) { c.Tier2.AccessKey = "AKIA" }, func(c *config.Config) any { return Tier2(c).AccessKey }, "AKIA"},
	{"tier2.secret_key", func(c *config.Config) { c.Tier2.SecretKey = "s3cret" }, func(c *config.Config) any { return Tier2(c).SecretKey }, "s3cret"},
	{"tier2.region", func(c *config.Config) { c.Tier2.Region = "eu-west-1" }, func(c *config.Config) any { return Tier2(c).Region }, "eu-west-1"},
	{"tier2.create_bucket", func(c *config.Config) { c.Tier2.CreateBucket = true }, func(c *config.Config) any { return Tier2(c).CreateBucket }, true},
	{"tier2.prefix", func(c *config.Config) { c.Tier2.Prefix = "cluster-a/" }, func(c *config.Config) any { return Tier2(c).Prefix }, "cluster-a/"},
	{"tier2.tls.ca", func(c *config.Config) { c.Tier2.TLS.CA = "/etc/aof/s3-ca.pem" }, func(c *config.Config) any { return Tier2(c).CAFile }, "/etc/aof/s3-ca.pem"},
	{"tier2.tls.cert", func(c *config.Config) { c.Tier2.TLS.Cert = "/etc/aof/s3.crt" }, func(c *config.Config) any { return Tier2(c).CertFile }, "/etc/aof/s3.crt"},
	{"tier2.tls.key", func(c *config.Config) { c.Tier2.TLS.Key = "/etc/aof/s3.key" }, func(c *config.Config) any { return Tier2(c).KeyFile }, "/etc/aof/s3.key"},
	{"tls.ca", func(c *config.Config) { c.TLS.CA = "/etc/aof/ca.pem" }, func(c *config.Config) any { return Tier2(c).CAFile }, "/etc/aof/ca.pem"},
	{"tier2.retry.max_attempts", func(c *config.Config) { c.Tier2.Retry.MaxAttempts = 8 }, func(c *config.Config) any { return Tier2(c).Retry.MaxAttempts }, 8},
	{"tier2.retry.base_delay_ms", func(c *config.Config) { c.Tier2.Retry.BaseDelayMS = 250 }, func(c *config.Config) any { return Tier2(c).Retry.BaseDelay }, 250 * time.Millisecond},
	{"tier2.retry.jitter", func(c *config.Config) { c.Tier2.Retry.Jitter = 0.5 }, func(c *config.Config) any { return Tier2(c).Retry.Jitter }, 0.5},
	{"tier2.breaker.failures", func(c *config.Config) { c.Tier2.Breaker.Failures = 11 }, func(c *config.Config) any { return Tier2(c).Breaker.Failures }, 11},
	{"tier2.breaker.cooldown", func(c *config.Config) { c.Tier2.Breaker.Cooldown = config.Duration(time.Minute) }, func(c *config.Config) any { return Tier2(c).Breaker.Cooldown }, time.Minute},

	{"ingest.stream_name", func(c *config.Config) { c.Ingest.StreamName = "IN" }, func(c *config.Config) any {
		return []string{IngestStream(c).Name, Ingest(c).Consumer.Stream, DeadLetterStream(c)}
	}, []string{"IN", "IN", "IN_DEADLETTER"}},
	{"ingest.subject_prefix", func(c *config.Config) { c.Ingest.SubjectPrefix = "in" }, func(c *config.Config) any {
		return []string{IngestStream(c).Subjects[0], Ingest(c).SubjectPrefix}
	}, []string{"in.>", "in"}},
	{"ingest.stream_max_bytes", func(c *config.Config) { c.Ingest.StreamMaxBytes = 10 * config.GiB }, func(c *config.Config) any { return IngestStream(c).MaxBytes }, int64(10 << 30)},
	{"ingest.stream_max_age", func(c *config.Config) { c.Ingest.StreamMaxAge = config.Duration(72 * time.Hour) }, func(c *config.Config) any { return IngestStream(c).MaxAge }, 72 * time.Hour},
	{"ingest.keep", func(c *config.Config) { c.Ingest.Keep = 500 }, func(c *config.Config) any { return IngestPurger(c).Keep }, 500},
	{"ingest.replicas", func(c *config.Config) { c.Ingest.Replicas = 3 }, func(c *config.Config) any { return IngestStream(c).Replicas }, 3},
	{"ingest.replicas (manifest)", func(c *config.Config) { c.Ingest.Replicas = 3 }, func(c *config.Config) any { return ManifestStream(c).Replicas }, 3},
	{"manifest.stream_name", func(c *config.Config) { c.Manifest.StreamName = "MAN" }, func(c *config.Config) any { return ManifestStream(c).Name }, "MAN"},
	{"manifest.subject_prefix", func(c *config.Config) { c.Manifest.SubjectPrefix = "man" }, func(c *config.Config) any { return ManifestStream(c).Prefix }, "man"},
	{"ingest.consumer_name", func(c *config.Config) { c.Ingest.ConsumerName = "gw-b" }, func(c *config.Config) any { return Ingest(c).Consumer.Durable }, "gw-b"},
	{"ingest.ack_wait", func(c *config.Config) { c.Ingest.AckWait = config.Duration(time.Minute) }, func(c *config.Config) any { return Ingest(c).Consumer.AckWait }, time.Minute},
	{"ingest.max_ack_pending", func(c *config.Config) { c.Ingest.MaxAckPending = 99 }, func(c *config.Config) any { return Ingest(c).Consumer.MaxAckPending }, 99},
	{"ingest.deadletter_prefix", func(c *config.Config) { c.Ingest.DeadletterPrefix = "dl" }, func(c *config.Config) any { return Ingest(c).DeadLetterPrefix }, "dl"},
	{"ingest.batch_size", func(c *config.Config) { c.Ingest.BatchSize = 64 }, func(c *config.Config) any { return Ingest(c).BatchSize }, 64},
	{"ingest.max_streams", func(c *config.Config) { c.Ingest.MaxStreams = 7 }, func(c *config.Config) any { return Ingest(c).MaxStreams }, 7},
	{"ingest.max_record_bytes", func(c *config.Config) { c.Ingest.MaxRecordBytes = 4 * config.MiB }, func(c *config.Config) any { return Ingest(c).MaxRecordBytes }, 4 << 20},

	{"cluster.partitions", func(c *config.Config) { c.Cluster.Partitions = 64 }, func(c *config.Config) any {
		return []int{ClusterManager(c).Partitions, IngestStream(c).Partitions}
	}, []int{64, 64}},
	{"cluster.lease_ttl", func(c *config.Config) { c.Cluster.LeaseTTL = config.Duration(30 * time.Second) }, func(c *config.Config) any { return ClusterManager(c).LeaseTTL }, 30 * time.Second},
	{"cluster.rebalance_pause", func(c *config.Config) { c.Cluster.RebalancePause = config.Duration(5 * time.Second) }, func(c *config.Config) any { return ClusterManager(c).MovePause }, 5 * time.Second},
	{"cluster.bucket", func(c *config.Config) { c.Cluster.Bucket = "LEASES" }, func(c *config.Config) any { return ClusterBucket(c).Name }, "LEASES"},
	{"cluster.replicas", func(c *config.Config) { c.Cluster.Replicas = 3 }, func(c *config.Config) any { return ClusterBucket(c).Replicas }, 3},
	{"node.id", func(c *config.Config) { c.Node.ID = "gw-7" }, func(c *config.Config) any { return ClusterManager(c).Node }, "gw-7"},

	{"tracing.exporter", func(c *config.Config) { c.Tracing.Exporter = "otlp-grpc" }, func(c *config.Config) any { return Tracing(c, "v", "i").Exporter }, "otlp-grpc"},
	{"tracing.endpoint", func(c *config.Config) { c.Tracing.Endpoint = "collector:4317" }, func(c *config.Config) any { return Tracing(c, "v", "i").Endpoint }, "collector:4317"},
	{"tracing.traces_endpoint", func(c *config.Config) { c.Tracing.TracesEndpoint = "http://collector:4318/v1/traces" }, func(c *config.Config) any { return Tracing(c, "v", "i").TracesEndpoint }, "http://collector:4318/v1/traces"},
	{"tracing.headers", func(c *config.Config) { c.Tracing.Headers = map[string]string{"k": "v"} }, func(c *config.Config) any { return Tracing(c, "v", "i").Headers }, map[string]string{"k": "v"}},
	{"tracing.insecure", func(c *config.Config) { c.Tracing.Insecure = true }, func(c *config.Config) any { return Tracing(c, "v", "i").Insecure }, true},
	{"tracing.sampling_ratio", func(c *config.Config) { c.Tracing.SamplingRatio = 0.25 }, func(c *config.Config) any { return Tracing(c, "v", "i").SamplingRatio }, 0.25},
	{"tracing.service_name", func(c *config.Config) { c.Tracing.ServiceName = "gw" }, func(c *config.Config) any { return Tracing(c, "v", "i").ServiceName }, "gw"},
}

// Keys whose value is not an option built here, and where it goes instead.
var keysUsedElsewhere = map[string]string{
	"tier2.enabled":  "whether the caller builds a Tier 2 client at all",
	"tier2.secure":   "validation only (tier2.endpoint must then be https://)",
	"ingest.discard": "validation only (deprecated: the ingest stream always discards new)",
}

func TestEachKeySetsItsOption(t *testing.T) {
	for _, tc := range optionCases {
		t.Run(tc.key, func(t *testing.T) {
			cfg := config.Default()
			before := tc.got(cfg)
			tc.set(cfg)
			got := tc.got(cfg)
			if reflect.DeepEqual(before, tc.want) {
				t.Fatalf("the case sets %s to its default %v: it could not fail", tc.key, tc.want)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("%s: option = %#v, want %#v", tc.key, got, tc.want)
			}
		})
	}
}

// TestEveryStoreIngestTier2AndTracingKeyIsCovered keeps the table whole: a
// key added to one of these sections must either reach an option here or
// say where it goes, or an offline command would open the store without it.
func TestEveryStoreIngestTier2AndTracingKeyIsCovered(t *testing.T) {
	covered := map[string]bool{}
	for _, tc := range optionCases {
		covered[tc.key] = true
	}
	for _, k := range config.Keys() {
		section, _, _ := strings.Cut(k, ".")
		if !slices.Contains([]string{"data_root", "tier0", "tier1", "tier2", "segment", "manifest", "retention", "ingest", "tracing", "cluster", "node"}, section) {
			continue
		}
		if !covered[k] && keysUsedElsewhere[k] == "" {
			t.Errorf("key %s reaches no option: add a case to optionCases, or to keysUsedElsewhere with where it goes", k)
		}
	}
}

func TestTier2SectionTLSWinsOverTopLevelTLS(t *testing.T) {
	cfg := config.Default()
	cfg.TLS.CA = "/etc/aof/ca.pem"
	cfg.Tier2.TLS.CA = "/etc/aof/s3-ca.pem"
	if got := Tier2(cfg).CAFile; got != "/etc/aof/s3-ca.pem" {
		t.Fatalf("CAFile = %q, want tier2.tls.ca", got)
	}
}
