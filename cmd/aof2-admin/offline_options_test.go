package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/bop-aof/aof/config"
	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/internal/options"
	"github.com/bop-aof/aof/tiers/tier2"
)

// offlineApp is aof2-admin with the configuration file file, as a command
// run with --config would see it.
func offlineApp(t *testing.T, file string, env ...string) (*app, *cobra.Command) {
	t.Helper()
	a := &app{stdout: new(bytes.Buffer), stderr: new(bytes.Buffer), env: append([]string{"HOME=" + t.TempDir()}, env...),
		configFile: file, timeout: 30 * time.Second}
	cmd := &cobra.Command{}
	cmd.SetContext(testCtx(t))
	return a, cmd
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestOfflineAdminUsesConfiguredBudgets: an offline command (--root) opens
// the data root with the budgets and workers of the configuration, the
// very options the gateway builds from the same file. With library
// defaults, a root configured with more Tier 1 than 8 GiB would have its
// artifacts evicted by a dump.
func TestOfflineAdminUsesConfiguredBudgets(t *testing.T) {
	root := stoppedRoot(t)
	file := writeConfig(t, `
[tier0]
cluster_max_bytes = "3GiB"
[tier1]
max_bytes = "20GiB"
compression_workers = 3
hydration_workers = 5
[tier2]
enabled = false
concurrency = 6
`)
	a, cmd := offlineApp(t, file)
	s, err := a.openRoot(cmd, root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	cfg, err := config.Load(config.LoadOptions{File: file, Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	gw := options.Store(cfg) // what the gateway opens the root with
	if gw.Tier1MaxBytes != 20<<30 || gw.Tier0MaxBytes != 3<<30 {
		t.Fatalf("the gateway's options do not carry the file: %+v", gw)
	}
	if got := s.Tier1Stats().MaxBytes; got != gw.Tier1MaxBytes {
		t.Errorf("offline Tier 1 budget %d, the gateway's %d", got, gw.Tier1MaxBytes)
	}
	if got := s.Tier0Stats().MaxBytes; got != gw.Tier0MaxBytes {
		t.Errorf("offline Tier 0 budget %d, the gateway's %d", got, gw.Tier0MaxBytes)
	}
	c, u, h := s.Workers()
	if c != gw.CompressionWorkers || u != gw.Tier2Concurrency || h != gw.HydrationWorkers {
		t.Errorf("offline workers compression %d, upload %d, hydration %d; the gateway's %d, %d, %d",
			c, u, h, gw.CompressionWorkers, gw.Tier2Concurrency, gw.HydrationWorkers)
	}
}

// TestOfflineTier2CommandsUseConfiguredRetryPolicy: recover and manifest
// check talk to Tier 2 with the retry policy and breaker of the
// configuration, not a policy of their own.
func TestOfflineTier2CommandsUseConfiguredRetryPolicy(t *testing.T) {
	s3 := harness.StartS3(t)
	file := writeConfig(t, `
[tier2]
endpoint = "`+s3.Endpoint+`"
bucket = "`+s3.Bucket+`"
[tier2.retry]
max_attempts = 9
base_delay_ms = 40
jitter = 0.1
`)
	a, cmd := offlineApp(t, file, "AOF2_TIER2_ACCESS_KEY="+s3.AccessKey, "AOF2_TIER2_SECRET_KEY="+s3.SecretKey)
	so, err := a.storeOptions(cmd, t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	if so.Tier2 == nil {
		t.Fatal("no Tier 2 client although the configuration names one")
	}
	c, ok := so.Tier2.(*tier2.Client)
	if !ok {
		t.Fatalf("offline Tier 2 is a %T, want the minio client", so.Tier2)
	}
	got := c.Retry()
	if got.MaxAttempts != 9 || got.BaseDelay != 40*time.Millisecond || got.Jitter != 0.1 {
		t.Fatalf("offline Tier 2 retry policy %+v, want the configured 9 attempts, 40ms, jitter 0.1", got)
	}
}
