// Package options turns a loaded configuration into the options of the
// tiered store, the Tier 2 client, the ingest pipeline and the tracing
// providers. It is the one place where a configuration key meets the option
// it sets: the gateway at start, its configuration reload and every offline
// aof2-admin command build their options here, so an offline command opens a
// data root with the budgets and retry policy of the gateway that wrote it
// (library defaults would evict Tier 1 artifacts of a root configured
// larger).
//
// The functions set what the configuration says and nothing else: the
// logger, tracer, instruments, manifest publisher and Tier 2 client are run
// time dependencies that the caller adds.
package options

import (
	"os"
	"time"

	"github.com/bop-aof/aof/cluster"
	"github.com/bop-aof/aof/config"
	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/manifest/natsmanifest"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tracing"
)

// Store returns the options of the store at cfg.DataRoot. Tier2 is left
// nil: the caller builds the client (Tier2) when cfg.Tier2.Enabled.
func Store(cfg *config.Config) tiers.Options {
	return tiers.Options{
		Root:                         cfg.DataRoot,
		Tier0MaxBytes:                int64(cfg.Tier0.ClusterMaxBytes),
		SegmentTargetBytes:           int64(cfg.Segment.TargetBytes),
		SegmentMaxAge:                cfg.Segment.MaxAge.D(),
		Tier1MaxBytes:                int64(cfg.Tier1.MaxBytes),
		FrameBytes:                   int(cfg.Tier1.FrameBytes),
		CompressionLevel:             cfg.Tier1.CompressionLevel,
		CompressionWorkers:           cfg.Tier1.CompressionWorkers,
		CompressDefer:                cfg.Tier1.CompressionDefer.D(),
		HydrationWorkers:             cfg.Tier1.HydrationWorkers,
		JobRetryBackoff:              cfg.Tier1.RetryBackoff.D(),
		JobMaxRetries:                cfg.Tier1.MaxRetries,
		ActivationQueueWarnThreshold: cfg.Tier0.ActivationQueueWarnThreshold,
		SealOnPressure:               cfg.Tier0.SealOnPressure,
		Tier2Concurrency:             cfg.Tier2.Concurrency,
		PrefetchSegments:             cfg.Read.PrefetchSegments,
		PrefetchBytes:                int64(cfg.Read.PrefetchBytes),
		ManifestChunkCapacity:        int64(cfg.Manifest.ChunkCapacity),
		ManifestRotationPeriod:       cfg.Manifest.RotationPeriod.D(),
		SnapshotInterval:             cfg.Manifest.SnapshotInterval.D(),
		RetentionMaxAge:              cfg.Retention.MaxAge.D(),
		RetentionMaxBytes:            int64(cfg.Retention.MaxBytes),
	}
}

// Tier2 returns the options of the Tier 2 client.
func Tier2(cfg *config.Config) tier2.Options {
	t, tlsFiles := cfg.Tier2, cfg.Tier2TLS()
	return tier2.Options{
		Endpoint:     t.Endpoint,
		Bucket:       t.Bucket,
		AccessKey:    t.AccessKey,
		SecretKey:    t.SecretKey,
		Region:       t.Region,
		CAFile:       tlsFiles.CA,
		CertFile:     tlsFiles.Cert,
		KeyFile:      tlsFiles.Key,
		CreateBucket: t.CreateBucket,
		Prefix:       t.Prefix,
		Retry:        Tier2Retry(cfg),
		Breaker:      Tier2Breaker(cfg),
	}
}

// Tier2Retry is the Tier 2 retry policy (tier2.retry.*), also applied on
// reload.
func Tier2Retry(cfg *config.Config) tier2.RetryPolicy {
	r := cfg.Tier2.Retry
	return tier2.RetryPolicy{
		MaxAttempts: r.MaxAttempts,
		BaseDelay:   time.Duration(r.BaseDelayMS) * time.Millisecond,
		Jitter:      r.Jitter,
	}
}

// Tier2Breaker is the Tier 2 circuit breaker policy (tier2.breaker.*), also
// applied on reload.
func Tier2Breaker(cfg *config.Config) tier2.BreakerPolicy {
	return tier2.BreakerPolicy{Failures: cfg.Tier2.Breaker.Failures, Cooldown: cfg.Tier2.Breaker.Cooldown.D()}
}

// IngestStream returns the settings of the JetStream stream producers
// publish to.
func IngestStream(cfg *config.Config) ingest.StreamSettings {
	in := cfg.Ingest
	return ingest.StreamSettings{
		Name:     in.StreamName,
		Subjects: []string{in.SubjectPrefix + ".>"},
		MaxBytes: int64(in.StreamMaxBytes),
		MaxAge:   in.StreamMaxAge.D(),
		Replicas: in.Replicas,
		// Used when the stream is first provisioned; an existing
		// stream keeps the count it was provisioned with.
		Partitions: cfg.Cluster.Partitions,
	}
}

// IngestPurger returns the options of the purge of archived messages from
// the ingest stream. Partitions and PartitionOf are the caller's, from the
// cluster settings.
func IngestPurger(cfg *config.Config) ingest.PurgerOptions {
	return ingest.PurgerOptions{
		Stream:        cfg.Ingest.StreamName,
		SubjectPrefix: cfg.Ingest.SubjectPrefix,
		Keep:          cfg.Ingest.Keep,
	}
}

// DeadLetterStream is the name of the JetStream stream of dead letters.
func DeadLetterStream(cfg *config.Config) string { return cfg.Ingest.StreamName + "_DEADLETTER" }

// Ingest returns the options of the ingest pipeline. ReplayFromStart and
// OnReplayStarted depend on the data root's recovery marker and are the
// caller's.
func Ingest(cfg *config.Config) ingest.Options {
	in := cfg.Ingest
	return ingest.Options{
		Consumer: ingest.ConsumerSettings{
			Stream:        in.StreamName,
			Durable:       in.ConsumerName,
			AckWait:       in.AckWait.D(),
			MaxAckPending: in.MaxAckPending,
		},
		SubjectPrefix:    in.SubjectPrefix,
		DeadLetterPrefix: in.DeadletterPrefix,
		BatchSize:        in.BatchSize,
		MaxRecordBytes:   int(in.MaxRecordBytes),
		MaxStreams:       in.MaxStreams,
	}
}

// ManifestStream returns the settings of the JetStream stream that mirrors
// every manifest record; its publisher uses the same name and prefix.
func ManifestStream(cfg *config.Config) natsmanifest.StreamConfig {
	return natsmanifest.StreamConfig{
		Name:     cfg.Manifest.StreamName,
		Prefix:   cfg.Manifest.SubjectPrefix,
		Replicas: cfg.Ingest.Replicas,
	}
}

// Tracing returns the configuration of the tracing providers of a process
// of version serviceVersion and instance id instanceID.
func Tracing(cfg *config.Config, serviceVersion, instanceID string) tracing.Config {
	t := cfg.Tracing
	return tracing.Config{
		Exporter:       t.Exporter,
		Endpoint:       t.Endpoint,
		TracesEndpoint: t.TracesEndpoint,
		Headers:        t.Headers,
		Insecure:       t.Insecure,
		SamplingRatio:  t.SamplingRatio,
		ServiceName:    t.ServiceName,
		ServiceVersion: serviceVersion,
		InstanceID:     instanceID,
	}
}

// ClusterBucket returns the settings of the KV bucket of leases,
// heartbeats and archived-through records.
func ClusterBucket(cfg *config.Config) cluster.BucketOptions {
	return cluster.BucketOptions{Name: cfg.Cluster.Bucket, Replicas: cfg.Cluster.Replicas}
}

// NodeID is the gateway's node id: node.id, or one derived from the host
// name and the data root, stable across restarts of the same root.
func NodeID(cfg *config.Config) string {
	if cfg.Node.ID != "" {
		return cfg.Node.ID
	}
	host, err := os.Hostname()
	if err != nil {
		host = "gateway"
	}
	return cluster.DefaultNodeID(host, cfg.DataRoot)
}

// ClusterManager returns the options of the partition lease manager; the
// logger is the caller's.
func ClusterManager(cfg *config.Config) cluster.ManagerOptions {
	return cluster.ManagerOptions{Node: NodeID(cfg), Partitions: cfg.Cluster.Partitions, LeaseTTL: cfg.Cluster.LeaseTTL.D(),
		MovePause: cfg.Cluster.RebalancePause.D()}
}
