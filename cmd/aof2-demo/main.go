// Command aof2-demo shows the gateway's whole pipeline on a running
// gateway: it publishes N records to aof.ingest.<stream> through NATS
// JetStream, waits (following aof.manifest.<stream>) until they are sealed,
// compressed and uploaded, evicts one segment's local copies and hydrates
// it back from Tier 2, reads records back from each tier through the
// gateway's aof-admin control service, and prints a summary table.
//
// Exit codes: 0 every check passed, 1 usage error, 3 authentication
// failure, 4 the run could not complete (no gateway, NATS error, timeout),
// 5 the run completed but a check failed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/bop-aof/aof/config"
	"github.com/bop-aof/aof/control"
)

// Exit codes.
const (
	exitOK     = 0
	exitUsage  = 1
	exitAuth   = 3
	exitIO     = 4
	exitFailed = 5
)

type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func newRootCommand(stdout, stderr io.Writer, terminal bool) *cobra.Command {
	o := Options{}
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "aof2-demo",
		Short: "Publish records through the gateway and watch them move through the tiers",
		Long: `aof2-demo runs against a running aof-gateway (for example the one
` + "`make run`" + ` starts). It:

  1. publishes --records records of --record-bytes bytes to aof.ingest.<stream>
     with async JetStream publishes (a progress bar on a terminal);
  2. waits until the gateway has stored them, reads the newest one back
     from the active segment (Tier 0);
  3. seals the stream through the aof-admin control service and follows
     aof.manifest.<stream> until every segment holding the records is
     sealed (SealSegment), compressed (CompressionDone) and uploaded
     (UploadDone);
  4. deletes the local copies of the oldest of those segments
     (segments.delete) and hydrates it back from Tier 2 (HydrationStarted,
     HydrationDone);
  5. reads a record of a Tier 1 segment and one of the hydrated segment and
     checks each against what was published (body, headers, JetStream
     sequence);
  6. prints a summary table: counts, sizes, compression ratio, timings and
     OK/FAIL per check.

Exit codes: 0 all checks OK, 1 usage error, 3 authentication failure,
4 the run could not complete (no gateway, NATS error, timeout),
5 a check failed.`,
		Example: `  # against make run's gateway (embedded NATS on 127.0.0.1:4222)
  aof2-demo --records 20000 --stream demo

  # bigger records, every manifest event printed
  aof2-demo --records 5000 --record-bytes 4096 --stream big --verbose`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Records <= 0 {
				return &exitError{exitUsage, fmt.Errorf("--records must be at least 1, got %d", o.Records)}
			}
			if o.RecordBytes < MinRecordBytes || o.RecordBytes > MaxRecordBytes {
				return &exitError{exitUsage, fmt.Errorf("--record-bytes must be %d to %d, got %d", MinRecordBytes, MaxRecordBytes, o.RecordBytes)}
			}
			if err := config.ValidStreamName(o.Stream); err != nil {
				return &exitError{exitUsage, fmt.Errorf("--stream: %w", err)}
			}
			if o.Timeout <= 0 {
				return &exitError{exitUsage, fmt.Errorf("--timeout must be positive")}
			}
			o.Progress, o.ProgressTerminal = stderr, terminal
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			sum, err := Run(ctx, o)
			if err != nil {
				return &exitError{codeOf(err), err}
			}
			if jsonOut {
				b, _ := json.MarshalIndent(sum, "", "  ")
				fmt.Fprintln(stdout, string(b))
			} else {
				PrintSummary(stdout, sum)
			}
			if !sum.OK {
				return &exitError{exitFailed, fmt.Errorf("%d checks failed", len(sum.Failed))}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Records, "records", 20000, "records to publish")
	f.StringVar(&o.Stream, "stream", "demo", "store stream (records go to <ingest-prefix>.<stream>)")
	f.StringVar(&o.NATSURL, "nats-url", envOr("AOF2_NATS_URL", nats.DefaultURL), "NATS server URL (default $AOF2_NATS_URL, else nats://127.0.0.1:4222)")
	f.IntVar(&o.RecordBytes, "record-bytes", 256, "body size of each record in bytes")
	f.DurationVar(&o.Timeout, "timeout", 3*time.Minute, "give up when the whole run takes longer")
	f.StringVar(&o.IngestPrefix, "ingest-prefix", "aof.ingest", "ingest subject prefix (ingest.subject_prefix)")
	f.StringVar(&o.ControlPrefix, "control-prefix", control.DefaultSubjectPrefix, "subject prefix of the aof-admin service (control.subject_prefix)")
	f.StringVar(&o.ManifestPrefix, "manifest-prefix", "aof.manifest", "manifest event subject prefix (manifest.subject_prefix)")
	f.StringVar(&o.ManifestStream, "manifest-stream", "AOF_MANIFEST", "JetStream stream holding manifest events (manifest.stream_name)")
	f.BoolVar(&o.Verbose, "verbose", false, "print every manifest event as it arrives")
	f.BoolVar(&jsonOut, "json", false, "print the summary as JSON instead of a table")
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &exitError{exitUsage, err} })
	return cmd
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// codeOf maps a failed run to its exit code.
func codeOf(err error) int {
	if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrPermissionViolation) {
		return exitAuth
	}
	var ce *control.Error
	if errors.As(err, &ce) && ce.Code == control.CodeUnauthorized {
		return exitAuth
	}
	return exitIO
}

// run executes the command line and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, terminal bool) int {
	cmd := newRootCommand(stdout, stderr, terminal)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "aof2-demo:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitUsage
}

func main() {
	terminal := false
	if st, err := os.Stderr.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
		terminal = true
	}
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, terminal))
}
