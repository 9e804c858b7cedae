package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/bop-aof/aof/config"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/tier2"
)

func TestFlagKeysNameConfigurationKeys(t *testing.T) {
	keys := config.Keys()
	for flag, key := range flagKeys {
		if !slices.Contains(keys, key) {
			t.Errorf("flag --%s maps to unknown key %q", flag, key)
		}
		if newRootCommand().Flags().Lookup(flag) == nil {
			t.Errorf("flag --%s is mapped but not defined", flag)
		}
	}
}

func TestRedactURLHidesUserInfo(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":          "nats://127.0.0.1:4222",
		"nats://user:s3cret@host:4222":   "nats://[REDACTED]@host:4222",
		"tls://a:4222,nats://tok@b:4222": "tls://a:4222,nats://[REDACTED]@b:4222",
		"nats://u:p@w@host:4222":         "nats://[REDACTED]@host:4222",
	} {
		if got := redactURL(in); got != want || strings.Contains(got, "s3cret") {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReloadAppliesRuntimeKeysAndRefusesOthersByName(t *testing.T) {
	ctx := context.Background()
	cfg := config.Default()
	cfg.DataRoot = t.TempDir()
	store, err := tiers.Open(ctx, tiers.Options{Root: cfg.DataRoot, Tier0MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var level slog.LevelVar
	g := &gateway{cfg: cfg, store: store, level: &level, log: slog.New(slog.DiscardHandler)}

	next := *cfg
	next.Tier0.ClusterMaxBytes = 64 << 20
	next.Log.Level = "debug"
	next.Retention.MaxAge = config.Duration(24 * time.Hour)
	next.Ingest.BatchSize = 999 // not reloadable
	next.Tier1.CompressionWorkers = 7
	next.Tier1.HydrationWorkers = 5
	next.Tier2.Concurrency = 3
	next.Tier1.MaxRetries = 9
	next.Tier1.RetryBackoff = config.Duration(time.Second)
	next.Tier0.ActivationQueueWarnThreshold = 17
	res, err := g.reload(func() (*config.Config, error) { return &next, nil })
	if err == nil || !strings.Contains(err.Error(), "ingest.batch_size") || strings.Contains(err.Error(), "tier1.") {
		t.Fatalf("reload error %v: want only the refused key named", err)
	}
	// A pool shrinks as its surplus workers go idle and leave.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		c, u, h := store.Workers()
		if c == 7 && u == 3 && h == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers after reload: compression %d, upload %d, hydration %d; want 7, 3 and 5", c, u, h)
		}
	}
	applied := map[string]bool{}
	for _, c := range res.Applied {
		applied[c.Key] = true
	}
	for _, k := range []string{"tier0.cluster_max_bytes", "log.level", "retention.max_age", "tier1.compression_workers", "tier1.hydration_workers", "tier2.concurrency",
		"tier1.max_retries", "tier1.retry_backoff", "tier0.activation_queue_warn_threshold"} {
		if !applied[k] {
			t.Errorf("%s not applied: %+v", k, res.Applied)
		}
	}
	if got := store.Tier0Stats().MaxBytes; got != 64<<20 {
		t.Errorf("tier 0 budget after reload = %d, want 64 MiB", got)
	}
	if level.Level() != slog.LevelDebug {
		t.Errorf("log level after reload = %v", level.Level())
	}
	if g.cfg.Ingest.BatchSize == 999 {
		t.Error("a refused key changed the running configuration")
	}
}

func TestTier2RefusalsExitWithTheirCodeAndNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
		keys []string
	}{
		{minio.ErrorResponse{Code: "InvalidAccessKeyId", StatusCode: 403}, exitAuth, []string{"tier2.access_key", "tier2.secret_key"}},
		{minio.ErrorResponse{Code: "SignatureDoesNotMatch", StatusCode: 403}, exitAuth, []string{"tier2.access_key", "tier2.secret_key"}},
		{minio.ErrorResponse{Code: "AccessDenied", StatusCode: 403}, exitAuth, []string{"tier2.access_key", "tier2.bucket"}},
		{minio.ErrorResponse{Code: "InvalidBucketName", StatusCode: 400}, exitUsage, []string{"tier2.bucket"}},
		{fmt.Errorf("tier2: %w", tier2.ErrInvalidBucketName), exitUsage, []string{"tier2.bucket"}},
		{errors.New("tier2: read CA file: no such file"), exitUsage, []string{"tier2.tls"}},
	} {
		err := tier2ConfigError(tc.err)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != tc.code {
			t.Errorf("%v: exit %v, want %d", tc.err, err, tc.code)
			continue
		}
		for _, k := range tc.keys {
			if !strings.Contains(err.Error(), k) {
				t.Errorf("%v: message %q does not name %s", tc.err, err, k)
			}
		}
	}
}

// The demo's configuration file enables the embedded server. A second
// gateway started with that file and --nats-url must join the broker the
// flag names, not start a broker of its own; --dev still wins.
func TestNATSURLFlagTurnsOffAnEmbeddedServerTheFileEnables(t *testing.T) {
	file := filepath.Join("..", "..", "examples", "aof2-demo", "config", "local.toml")
	for _, c := range []struct {
		args     []string
		embedded bool
	}{
		{[]string{"--config", file}, true},
		{[]string{"--config", file, "--nats-url", "nats://10.0.0.1:4222"}, false},
		{[]string{"--config", file, "--nats-url", "nats://10.0.0.1:4222", "--dev"}, true},
	} {
		cmd := newRootCommand()
		if err := cmd.ParseFlags(c.args); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadConfig(cmd.Flags())
		if err != nil {
			t.Fatal(err)
		}
		if cfg.NATS.Embedded.Enabled != c.embedded {
			t.Errorf("%v: embedded server %v, want %v", c.args, cfg.NATS.Embedded.Enabled, c.embedded)
		}
	}
}
