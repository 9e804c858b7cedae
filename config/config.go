// Package config loads the gateway's configuration with koanf in four layers,
// each overriding the one before:
//
//	built-in defaults  <  TOML file  <  AOF2_* environment  <  changed flags
//
// # File
//
// The file is the LoadOptions.File path, else the value of a changed
// --config flag, else the path in AOF2_CONFIG, else
// ~/.config/bop-aof/config.toml when it exists. A missing default file is not
// an error; a missing file that was named explicitly is. Unknown keys in the
// file are errors, so a typo never silently falls back to a default.
//
// # Keys and environment names
//
// Every key is the dotted path of the TOML tables and names, for example
// tier0.cluster_max_bytes or tier2.retry.base_delay_ms. Its environment
// variable is AOF2_ followed by the key upper-cased with dots replaced by
// underscores: AOF2_TIER0_CLUSTER_MAX_BYTES, AOF2_TIER2_RETRY_BASE_DELAY_MS,
// AOF2_NATS_EMBEDDED_STORE_DIR, AOF2_TLS_CERT, AOF2_DATA_ROOT. Because key
// names contain underscores, an environment name is resolved by looking it
// up in the table of known keys (Keys), never by splitting it; the table is
// checked to be collision-free. An AOF2_ variable that names no key (other
// than AOF2_CONFIG) is an error. A map key (tracing.headers) is written in
// the environment as k1=v1,k2=v2.
//
// # Value forms
//
// Byte sizes (type Bytes) accept "64MiB", "1.5GB", "512KiB" or a plain
// integer number of bytes. Durations (type Duration) accept Go forms
// ("250ms", "30s", "5m", "1h30m") and a leading day count ("7d"); a plain
// integer is rejected because its unit would be a guess.
//
// # Secrets
//
// nats.password, an inline nats.nkey seed, tier2.access_key,
// tier2.secret_key and every tracing.headers value are secrets. They are
// printed as [REDACTED] by Config.String, Config.Redacted, Diff and in every
// error returned by Load and Validate.
package config

import (
	"path/filepath"
	"strings"
)

// Config is the whole gateway configuration. The koanf tag of each field is
// its key name; "secret" marks values that are never printed and "reload"
// marks keys that a running gateway may apply without a restart
// (see Reloadable).
type Config struct {
	// DataRoot holds tier0/, tier1/ and manifest/ (DESIGN.md on-disk layout).
	DataRoot  string    `koanf:"data_root"`
	NATS      NATS      `koanf:"nats"`
	Ingest    Ingest    `koanf:"ingest"`
	Tier0     Tier0     `koanf:"tier0"`
	Tier1     Tier1     `koanf:"tier1"`
	Tier2     Tier2     `koanf:"tier2"`
	Manifest  Manifest  `koanf:"manifest"`
	Segment   Segment   `koanf:"segment"`
	Tracing   Tracing   `koanf:"tracing"`
	Metrics   Metrics   `koanf:"metrics"`
	Retention Retention `koanf:"retention"`
	Control   Control   `koanf:"control"`
	Read      Read      `koanf:"read"`
	Log       Log       `koanf:"log"`
	Cluster   Cluster   `koanf:"cluster"`
	Node      Node      `koanf:"node"`
	// TLS applies to NATS and Tier 2 unless their own tls section is set;
	// see NATSTLS and Tier2TLS.
	TLS TLS `koanf:"tls"`

	// File is the configuration file that was loaded ("" if none). It is
	// not a key.
	File string `koanf:"-"`
}

// TLS names PEM files. CA alone verifies the server; Cert and Key together
// present a client certificate and must be set together.
type TLS struct {
	CA   string `koanf:"ca"`
	Cert string `koanf:"cert"`
	Key  string `koanf:"key"`
}

// IsZero reports whether no field is set.
func (t TLS) IsZero() bool { return t.CA == "" && t.Cert == "" && t.Key == "" }

// NATS is how the gateway reaches the broker, or runs one in process.
type NATS struct {
	// URL is one or more comma-separated server URLs. Ignored when
	// Embedded.Enabled (the gateway connects to the embedded server).
	URL   string `koanf:"url" secret:"userinfo"`
	Creds string `koanf:"creds"` // path to a .creds file
	// NKey is a path to an nkey seed file or the seed itself ("SU...");
	// an inline seed is a secret.
	NKey     string   `koanf:"nkey" secret:"seed"`
	User     string   `koanf:"user"`
	Password string   `koanf:"password" secret:"always"`
	TLS      TLS      `koanf:"tls"`
	Embedded Embedded `koanf:"embedded"`
}

// Embedded runs a JetStream-enabled nats-server inside the gateway process.
type Embedded struct {
	Enabled bool   `koanf:"enabled"`
	Host    string `koanf:"host"`
	Port    int    `koanf:"port"`
	// StoreDir is the JetStream store; "" means <data_root>/nats
	// (see Config.EmbeddedStoreDir).
	StoreDir string `koanf:"store_dir"`
}

// Ingest describes the JetStream stream and durable pull consumer that feed
// the store.
type Ingest struct {
	SubjectPrefix  string   `koanf:"subject_prefix"` // subjects are <prefix>.<stream>
	StreamName     string   `koanf:"stream_name"`
	ConsumerName   string   `koanf:"consumer_name"`
	BatchSize      int      `koanf:"batch_size"`       // most messages appended per group fsync
	MaxRecordBytes Bytes    `koanf:"max_record_bytes"` // larger messages go to dead letters
	AckWait        Duration `koanf:"ack_wait"`
	MaxAckPending  int      `koanf:"max_ack_pending"`
	// MaxStreams bounds the store's streams: each keeps files open for
	// good, so a producer inventing subjects must not exhaust them.
	// Messages for a new stream beyond it go to dead letters.
	MaxStreams int `koanf:"max_streams"`
	// DeadletterPrefix: rejected messages go to <prefix>.<stream>.
	DeadletterPrefix string `koanf:"deadletter_prefix"`
	// StreamMaxBytes and StreamMaxAge bound AOF_INGEST; 0 means unlimited.
	// They must cover the Tier 2 upload lag (DESIGN.md, failover); a
	// StreamMaxAge must also be at least IngestDuplicateWindow.
	StreamMaxBytes Bytes    `koanf:"stream_max_bytes"`
	StreamMaxAge   Duration `koanf:"stream_max_age"`
	// Discard is deprecated: the ingest stream always discards new
	// messages when full (producer backpressure), since it holds every
	// message not archived yet. Only "new" validates.
	Discard  string `koanf:"discard"`
	Replicas int    `koanf:"replicas"`
	// Keep is how many of the newest archived messages of each stream stay
	// in the ingest stream after the purge, for other consumers; 0 keeps
	// none, so the ingest stream holds only what is not archived yet.
	Keep int `koanf:"keep"`
}

// Tier0 is the hot budget of uncompressed segments.
type Tier0 struct {
	ClusterMaxBytes Bytes `koanf:"cluster_max_bytes" reload:"true"`
	// ActivationQueueWarnThreshold: warn when more activations than this
	// are queued (0 warns on any queued activation, like the original alert).
	ActivationQueueWarnThreshold int `koanf:"activation_queue_warn_threshold" reload:"true"`
	// SealOnPressure seals the largest active segment when Tier 0 cannot
	// admit a write, so that it can move to Tier 1 and free its bytes
	// instead of waiting for segment.max_age.
	SealOnPressure bool `koanf:"seal_on_pressure"`
}

// Tier1 is the warm cache of seekable zstd artifacts.
type Tier1 struct {
	MaxBytes           Bytes    `koanf:"max_bytes" reload:"true"`
	FrameBytes         Bytes    `koanf:"frame_bytes"` // uncompressed bytes per seekable frame
	MaxRetries         int      `koanf:"max_retries" reload:"true"`
	RetryBackoff       Duration `koanf:"retry_backoff" reload:"true"`
	CompressionWorkers int      `koanf:"compression_workers" reload:"true"`
	HydrationWorkers   int      `koanf:"hydration_workers" reload:"true"`
	CompressionLevel   int      `koanf:"compression_level"` // zstd level 1-22
	// CompressionDefer is how long a sealed segment's compression may wait
	// while ingest has a backlog, so that a burst is drained at the rate
	// ingest alone allows; 0 compresses at once.
	CompressionDefer Duration `koanf:"compression_defer"`
}

// Tier2 is the S3-compatible object store holding the durable copy.
type Tier2 struct {
	// Enabled is true by default and should stay so: Tier 2 is the durable
	// copy (REFERENCE.md). Switching it off is for tests of the store
	// without an object store; a lab points it at a local S3 server.
	Enabled bool `koanf:"enabled"`
	// Endpoint keeps its scheme: http://host:port or https://host:port.
	// Host and UseTLS derive the minio-go arguments from it.
	Endpoint  string `koanf:"endpoint" secret:"userinfo"`
	Bucket    string `koanf:"bucket"`
	AccessKey string `koanf:"access_key" secret:"always"`
	SecretKey string `koanf:"secret_key" secret:"always"`
	// Secure requires TLS: with Secure set an http:// endpoint is an error.
	Secure       bool    `koanf:"secure"`
	Region       string  `koanf:"region"`
	Concurrency  int     `koanf:"concurrency" reload:"true"` // parallel uploads/downloads
	CreateBucket bool    `koanf:"create_bucket"`
	Prefix       string  `koanf:"prefix"` // prepended to every object key
	Retry        Retry   `koanf:"retry"`
	Breaker      Breaker `koanf:"breaker"`
	TLS          TLS     `koanf:"tls"`
}

// Retry is the Tier 2 retry policy: attempt n waits about
// base_delay_ms * 2^(n-1), scaled by a random factor in [1-jitter, 1+jitter].
type Retry struct {
	MaxAttempts int     `koanf:"max_attempts" reload:"true"`
	BaseDelayMS int     `koanf:"base_delay_ms" reload:"true"`
	Jitter      float64 `koanf:"jitter" reload:"true"`
}

// Breaker opens after Failures consecutive Tier 2 failures and lets one
// probe through after Cooldown.
type Breaker struct {
	Failures int      `koanf:"failures" reload:"true"`
	Cooldown Duration `koanf:"cooldown" reload:"true"`
}

// Manifest configures the manifest log and its NATS mirror.
type Manifest struct {
	ChunkCapacity    Bytes    `koanf:"chunk_capacity"`
	RotationPeriod   Duration `koanf:"rotation_period"`
	SnapshotInterval Duration `koanf:"snapshot_interval"`
	SubjectPrefix    string   `koanf:"subject_prefix"` // events on <prefix>.<stream>
	StreamName       string   `koanf:"stream_name"`
}

// Segment sets when the active segment is sealed: at TargetBytes or after
// MaxAge (0 = no age limit), whichever comes first.
type Segment struct {
	TargetBytes Bytes    `koanf:"target_bytes"`
	MaxAge      Duration `koanf:"max_age"`
}

// Tracing configures the OpenTelemetry trace exporter.
//
// Empty Exporter, Endpoint, TracesEndpoint, Headers and ServiceName leave
// the choice to the standard OTEL_* environment (OTEL_TRACES_EXPORTER,
// OTEL_EXPORTER_OTLP_*, OTEL_SERVICE_NAME): see the tracing package.
type Tracing struct {
	Exporter string `koanf:"exporter"` // "" (OTEL_* env, else none) | none | stdout | otlp-grpc | otlp-http
	// Endpoint is a base endpoint (OTLP/HTTP appends /v1/traces);
	// TracesEndpoint is a full URL used as is and wins over Endpoint.
	Endpoint       string `koanf:"endpoint" secret:"userinfo"`
	TracesEndpoint string `koanf:"traces_endpoint" secret:"userinfo"`
	// Headers are sent with every OTLP export; their values often carry
	// API keys and are secrets.
	Headers       map[string]string `koanf:"headers" secret:"values"`
	Insecure      bool              `koanf:"insecure"`
	SamplingRatio float64           `koanf:"sampling_ratio"`
	ServiceName   string            `koanf:"service_name"`
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	Listen string `koanf:"listen"` // host:port; "" disables the endpoint
}

// Retention bounds sealed history per stream; 0 disables a bound.
type Retention struct {
	MaxAge   Duration `koanf:"max_age" reload:"true"`
	MaxBytes Bytes    `koanf:"max_bytes" reload:"true"`
}

// Control configures the NATS micro admin service.
type Control struct {
	SubjectPrefix string `koanf:"subject_prefix"` // endpoints under <prefix>.>
	ServiceName   string `koanf:"service_name"`
}

// Read configures the read API (docs/reading.md), served by every
// gateway in one queue group.
type Read struct {
	SubjectPrefix string `koanf:"subject_prefix"` // requests on <prefix>.<stream>
	MaxConcurrent int    `koanf:"max_concurrent"` // requests served at once; more answer 503
	// PrefetchSegments is how many cold segments a sequential read fetches
	// from Tier 2 ahead of the reader; 0 turns read-ahead off.
	PrefetchSegments int `koanf:"prefetch_segments"`
	// PrefetchBytes bounds the memory of the segments fetched ahead, shared
	// by every reader of the gateway.
	PrefetchBytes Bytes `koanf:"prefetch_bytes"`
}

// Log configures log/slog output.
type Log struct {
	Level  string `koanf:"level" reload:"true"` // debug | info | warn | error
	Format string `koanf:"format"`              // text | json
}

// Cluster configures ownership of partitions among gateways that share one
// NATS and one Tier 2 bucket (DESIGN.md, "Ownership, failover and
// scale-out"; package cluster).
type Cluster struct {
	// Partitions is how many partitions streams are hashed into. It is
	// fixed when the ingest stream is provisioned: every gateway of a
	// deployment must use the same value.
	Partitions int      `koanf:"partitions"`
	Bucket     string   `koanf:"bucket"`    // JetStream KV bucket of leases, heartbeats and archived-through records
	Replicas   int      `koanf:"replicas"`  // replicas of that bucket (3 on a NATS cluster)
	LeaseTTL   Duration `koanf:"lease_ttl"` // a dead owner's partitions are free after this
	// RebalancePause is the least time between two partitions a gateway
	// hands over to even out the spread, so that a gateway joining (or a
	// rolling restart) moves partitions one at a time.
	RebalancePause Duration `koanf:"rebalance_pause"`
}

// Node names this gateway among the others.
type Node struct {
	// ID is the gateway's node id in leases and heartbeats; "" derives one
	// from the host name and the data root (cluster.DefaultNodeID).
	ID string `koanf:"id"`
}

// Default returns the built-in defaults. Tier 2 is enabled but has no
// endpoint or credentials, so Default alone does not validate: an operator
// must say where the durable copy lives.
func Default() *Config {
	return &Config{
		DataRoot: "./data",
		NATS: NATS{
			URL:      "nats://127.0.0.1:4222",
			Embedded: Embedded{Host: "127.0.0.1", Port: 4222},
		},
		Ingest: Ingest{
			SubjectPrefix:    "aof.ingest",
			StreamName:       "AOF_INGEST",
			ConsumerName:     "aof-gateway",
			BatchSize:        2048,
			MaxRecordBytes:   1 * MiB,
			MaxStreams:       10000,
			AckWait:          Duration(30e9),
			MaxAckPending:    4096,
			DeadletterPrefix: "aof.deadletter",
			Discard:          "new",
			Replicas:         1,
		},
		Tier0: Tier0{ClusterMaxBytes: 2 * GiB, SealOnPressure: true},
		Tier1: Tier1{
			MaxBytes:           8 * GiB,
			FrameBytes:         1 * MiB,
			MaxRetries:         3,
			RetryBackoff:       Duration(200e6),
			CompressionWorkers: 2,
			HydrationWorkers:   2,
			// zstd level 1 (klauspost SpeedFastest): about twice the speed of level
			// 3 at the same ratio on record data (docs/performance.md), and
			// compression was two thirds of the default gateway's CPU.
			CompressionLevel: 1,
			// A burst of a minute is drained before its compression;
			// docs/performance.md (issue 18).
			CompressionDefer: Duration(60e9),
		},
		Tier2: Tier2{
			Enabled:     true,
			Concurrency: 4,
			Retry:       Retry{MaxAttempts: 5, BaseDelayMS: 100, Jitter: 0.2},
			Breaker:     Breaker{Failures: 5, Cooldown: Duration(5e9)},
		},
		Manifest: Manifest{
			ChunkCapacity:    256 * KiB,
			RotationPeriod:   Duration(5 * 60e9),
			SnapshotInterval: Duration(10 * 60e9),
			SubjectPrefix:    "aof.manifest",
			StreamName:       "AOF_MANIFEST",
		},
		Segment: Segment{TargetBytes: 64 * MiB, MaxAge: Duration(5 * 60e9)},
		Tracing: Tracing{SamplingRatio: 1.0},
		Metrics: Metrics{Listen: "127.0.0.1:9464"},
		Control: Control{SubjectPrefix: "aof.admin", ServiceName: "aof-admin"},
		Read:    Read{SubjectPrefix: "aof.read", MaxConcurrent: 64, PrefetchSegments: 2, PrefetchBytes: 256 * MiB},
		Log:     Log{Level: "info", Format: "text"},
		Cluster: Cluster{Partitions: 16, Bucket: "AOF_CLUSTER", Replicas: 1, LeaseTTL: Duration(10e9), RebalancePause: Duration(2e9)},
	}
}

// NATSTLS returns the TLS files for the NATS connection: nats.tls when any
// of its fields is set, else the top-level tls. The section is taken whole,
// never mixed field by field, so a client certificate is never paired with
// another section's key.
func (c *Config) NATSTLS() TLS {
	if !c.NATS.TLS.IsZero() {
		return c.NATS.TLS
	}
	return c.TLS
}

// Tier2TLS returns the TLS files for Tier 2, with the same rule as NATSTLS.
func (c *Config) Tier2TLS() TLS {
	if !c.Tier2.TLS.IsZero() {
		return c.Tier2.TLS
	}
	return c.TLS
}

// EmbeddedStoreDir is nats.embedded.store_dir, or <data_root>/nats when unset.
func (c *Config) EmbeddedStoreDir() string {
	if c.NATS.Embedded.StoreDir != "" {
		return c.NATS.Embedded.StoreDir
	}
	return filepath.Join(c.DataRoot, "nats")
}

// Host is the endpoint without scheme and trailing slash ("127.0.0.1:7070"),
// the form minio-go's New expects.
func (t Tier2) Host() string {
	h := t.Endpoint
	if i := strings.Index(h, "://"); i >= 0 {
		h = h[i+3:]
	}
	return strings.TrimRight(h, "/")
}

// UseTLS reports whether the endpoint is https://.
func (t Tier2) UseTLS() bool {
	return strings.HasPrefix(strings.ToLower(t.Endpoint), "https://")
}
