// Command aof-gateway is the bop AOF gateway daemon: it consumes producers'
// messages from NATS JetStream (subjects aof.ingest.<stream>), stores each
// one exactly once in the tiered store, acks it only once it is fsynced, and
// moves sealed segments to Tier 1 and Tier 2 in the background.
//
// Exit codes: 0 clean shutdown, 1 usage or configuration error (a bucket
// name the object store refuses among them), 3 NATS authentication failure
// or Tier 2 credentials the object store refuses, 4 I/O or connection
// error. An object store that is down at start is not an error: the
// gateway starts with Tier 2 degraded.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bop-aof/aof/config"
)

// Exit codes shared with aof2-admin (REFERENCE.md).
const (
	exitOK    = 0
	exitUsage = 1
	exitAuth  = 3
	exitIO    = 4
)

// exitError carries the process exit code of a failure.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// flagKeys maps the gateway's short flags onto configuration keys.
var flagKeys = map[string]string{
	"dev":            "nats.embedded.enabled",
	"dev-host":       "nats.embedded.host",
	"dev-port":       "nats.embedded.port",
	"nats-url":       "nats.url",
	"nats-creds":     "nats.creds",
	"nats-nkey":      "nats.nkey",
	"nats-user":      "nats.user",
	"nats-password":  "nats.password",
	"nats-ca":        "nats.tls.ca",
	"nats-cert":      "nats.tls.cert",
	"nats-key":       "nats.tls.key",
	"data-root":      "data_root",
	"node-id":        "node.id",
	"metrics-listen": "metrics.listen",
	"log-level":      "log.level",
	"log-format":     "log.format",
}

func newRootCommand() *cobra.Command {
	var sealOnShutdown, follower bool
	cmd := &cobra.Command{
		Use:   "aof-gateway",
		Short: "NATS JetStream ingestion gateway over the tiered append-only store",
		Long: `aof-gateway consumes messages published to aof.ingest.<stream> through a
durable JetStream consumer, appends each one to the stream's segmented log,
acks JetStream only once the record is fsynced, seals segments into seekable
zstd files (Tier 1), archives them to S3-compatible storage (Tier 2), and
publishes every tier transition on aof.manifest.<stream>.

Configuration: defaults < TOML file (--config, $AOF2_CONFIG or
~/.config/bop-aof/config.toml) < AOF2_* environment variables < flags.

HTTP (metrics.listen, default 127.0.0.1:9464): /healthz, /readyz, /metrics.
Several gateways on one NATS and one bucket share the partitions of the
streams (cluster.partitions) by leases in the KV bucket AOF_CLUSTER, each
owning its share; see aof2-admin cluster.

Signals: SIGINT/SIGTERM drain the gateway: every partition it owns is
sealed, archived to Tier 2 and handed over (the other gateways take them
at once, with nothing to re-read), then it exits (a second signal exits at
once); SIGHUP reloads the configuration.`,
		Example: `  # Local development: embedded NATS, data under ./data
  aof-gateway --dev --config examples/aof2-demo/config/local.toml

  # Production: an existing NATS cluster with a creds file
  aof-gateway --nats-url tls://nats.example.com:4222 --nats-creds /etc/aof/gw.creds \
      --config /etc/aof/config.toml`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd.Flags())
			if err != nil {
				return withCode(exitUsage, err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// After the first signal the default handling comes back, so a
			// second SIGINT or SIGTERM ends a shutdown that takes too long
			// (acked data is durable already; unacked is redelivered).
			go func() {
				<-ctx.Done()
				stop()
			}()
			return run(ctx, cfg, runOptions{
				SealOnShutdown: sealOnShutdown,
				Follower:       follower,
				ConfigLoader:   func() (*config.Config, error) { return loadConfig(cmd.Flags()) },
			})
		},
	}
	f := cmd.Flags()
	f.String(config.ConfigFlag, "", "configuration file (default ~/.config/bop-aof/config.toml, or $AOF2_CONFIG)")
	f.Bool("dev", false, "run an embedded JetStream nats-server on loopback (store under <data_root>/nats)")
	f.String("dev-host", "127.0.0.1", "embedded nats-server listen host (with --dev)")
	f.Int("dev-port", 4222, "embedded nats-server port (with --dev)")
	f.String("nats-url", "", "NATS server URL(s), comma separated; turns off an embedded server the configuration file enables (ignored with --dev)")
	f.String("nats-creds", "", "NATS credentials (.creds) file")
	f.String("nats-nkey", "", "NATS nkey seed file")
	f.String("nats-user", "", "NATS user")
	f.String("nats-password", "", "NATS password")
	f.String("nats-ca", "", "CA bundle to verify the NATS server")
	f.String("nats-cert", "", "client certificate for NATS TLS")
	f.String("nats-key", "", "client key for NATS TLS")
	f.String("data-root", "", "data root directory (tier0, tier1, manifest)")
	f.String("node-id", "", "this gateway's id in partition leases (default: host name and a hash of the data root)")
	f.String("metrics-listen", "", "HTTP listen address for /healthz, /readyz and /metrics (\"\" disables)")
	f.String("log-level", "", "log level: debug, info, warn, error")
	f.String("log-format", "", "log format: text or json")
	f.BoolVar(&sealOnShutdown, "seal-on-shutdown", false, "kept for compatibility: a SIGTERM always hands each owned partition over, which seals and archives it")
	f.BoolVar(&follower, "follower", false, "own no partition: serve reads of archived history from Tier 2 and forward the rest to the owners")
	cmd.Version = version
	return cmd
}

// loadConfig loads the configuration with the command line's flags on top.
// A --nats-url given on the command line without --dev names the broker to
// use: it turns off an embedded server the configuration file enables (the
// demo's does), which would otherwise win silently and leave this gateway
// alone on a broker of its own.
func loadConfig(flags *pflag.FlagSet) (*config.Config, error) {
	cfg, err := config.Load(config.LoadOptions{Flags: flags, FlagKeys: flagKeys})
	if err != nil {
		return nil, err
	}
	if flags.Changed("nats-url") && !flags.Changed("dev") {
		cfg.NATS.Embedded.Enabled = false
	}
	return cfg, nil
}

func main() {
	err := newRootCommand().ExecuteContext(context.Background())
	if err == nil {
		os.Exit(exitOK)
	}
	fmt.Fprintln(os.Stderr, "aof-gateway:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	os.Exit(exitUsage)
}
