package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/bop-aof/aof/control"
	"github.com/bop-aof/aof/fsck"
	"github.com/bop-aof/aof/tiers"
)

func (a *app) statusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the running gateway's status: streams, budgets, queues",
		Long:  "status asks the running gateway for its store status: data root, streams, Tier 0 and Tier 1 budgets, background queue depths and hydration latency, plus the gateway's ingest status.",
		Example: `  aof2-admin status
  aof2-admin status --json --nats-url nats://10.0.0.5:4222`,
		Args: cobra.NoArgs,
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			res, err := answer(a, cmd, "", nil, func(ctx context.Context, c *control.Client) (control.StatusResponse, error) {
				return c.Status(ctx)
			})
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(res)
			}
			printStatus(a.stdout, res)
			return nil
		}),
	}
}

func (a *app) dumpCommand() *cobra.Command {
	var root, stream string
	var jsonOnly bool
	cmd := &cobra.Command{
		Use:   "dump",
		Short: "Residency of every segment per tier, then a JSON footer",
		Long: `dump prints one line per segment and tier it is resident in, like
  Tier 0 | stream demo | seg 42 | state active | bytes 134217728
(bytes are the segment file size in Tier 0 and the compressed size in Tiers 1
and 2), segments with no readable copy as "Tier - | ... | reason ...", and
ends with a one-line JSON footer: segment counts and bytes per tier, queue
depths and hydration latency p50/p90/p99 in milliseconds.

With --root it reads the data root of a stopped gateway instead of asking a
running one (queues are then 0 and latency is unknown: 0).`,
		Example: `  aof2-admin dump
  aof2-admin dump --stream demo
  aof2-admin dump --root /var/lib/aof --json-only | jq .tier2.segments`,
		Args: cobra.NoArgs,
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			res, err := answer(a, cmd, root,
				func(_ context.Context, s *tiers.Store) (control.DumpResponse, error) {
					return control.Dump(s, stream, nil)
				},
				func(ctx context.Context, c *control.Client) (control.DumpResponse, error) {
					return c.Dump(ctx, control.DumpRequest{Stream: stream})
				})
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(res)
			}
			printDump(a.stdout, res, jsonOnly)
			return nil
		}),
	}
	cmd.Flags().StringVar(&root, "root", "", "read this data root offline (gateway stopped) instead of asking the gateway")
	cmd.Flags().StringVar(&stream, "stream", "", "only this stream")
	cmd.Flags().BoolVar(&jsonOnly, "json-only", false, "print only the JSON footer")
	return cmd
}

func (a *app) sealCommand() *cobra.Command {
	var req control.SealRequest
	cmd := &cobra.Command{
		Use:   "seal",
		Short: "Force rollover of a stream's active segment",
		Long: `seal seals the active segment of a stream now (rollover on demand) so it is
compressed into Tier 1 and uploaded to Tier 2 without waiting for
segment.target_bytes or segment.max_age. An empty active segment is left
alone unless --force is given. --all seals every stream (before a rolling
upgrade, for example).`,
		Example: `  aof2-admin seal --stream demo
  aof2-admin seal --stream demo --force
  aof2-admin seal --all`,
		Args: cobra.NoArgs,
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			if req.Stream == "" && !req.All {
				return usagef("seal needs --stream or --all")
			}
			res, err := answer(a, cmd, "", nil, func(ctx context.Context, c *control.Client) (control.SealResponse, error) {
				return c.Seal(ctx, req)
			})
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(res)
			}
			for _, s := range res.Sealed {
				if s.Skipped {
					fmt.Fprintf(a.stdout, "stream %s: active segment empty, nothing sealed (use --force)\n", s.Stream)
				} else {
					fmt.Fprintf(a.stdout, "stream %s: sealed segment %d\n", s.Stream, s.Segment)
				}
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&req.Stream, "stream", "", "stream whose active segment to seal")
	cmd.Flags().BoolVar(&req.Force, "force", false, "seal even an empty active segment")
	cmd.Flags().BoolVar(&req.All, "all", false, "seal the active segment of every stream")
	return cmd
}

func (a *app) flushCommand() *cobra.Command {
	var stream string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "flush",
		Short: "Force a stream's pending writes durable",
		Long: `flush fsyncs everything appended to a stream and reports the next offset.
It fails with exit code 4 when the write is not durable within --timeout
(Flush backpressure: the disk is slow or failing).`,
		Example: `  aof2-admin flush --stream demo
  aof2-admin flush --stream demo --timeout 5s`,
		Args: cobra.NoArgs,
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			if stream == "" {
				return usagef("flush needs --stream")
			}
			c, err := a.client(cmd)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), max(a.timeout, timeout+time.Second))
			defer cancel()
			res, err := c.Flush(ctx, control.FlushRequest{Stream: stream, TimeoutMS: timeout.Milliseconds()})
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(res)
			}
			fmt.Fprintf(a.stdout, "stream %s: durable through offset %d (%d ms)\n", res.Stream, res.NextOffset, res.DurationMS)
			return nil
		}),
	}
	cmd.Flags().StringVar(&stream, "stream", "", "stream to flush")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "give up when not durable within this time")
	return cmd
}

func (a *app) hydrateCommand() *cobra.Command {
	var stream, tier1Path string
	var segment uint64
	var maxRetries int
	cmd := &cobra.Command{
		Use:   "hydrate",
		Short: "Bring a segment back into Tier 1 from Tier 2, with progress",
		Long: `hydrate brings a segment whose local copies were evicted back into Tier 1
from Tier 2 and waits for it. On a terminal it draws a progress bar of the
bytes downloaded from Tier 2 (elapsed time against the timeout until the
download starts); otherwise it prints one progress line per attempt and
per second, with the bytes so far.
Transient failures (Tier 2 unavailable, timeouts) are retried up to
--max-retries times with exponential backoff; a missing segment (exit 2)
or a Tier 2 authentication failure (exit 3) is not retried.`,
		Example: `  aof2-admin hydrate --stream demo --segment 3
  aof2-admin hydrate --segment 3 --max-retries 5 --timeout 2m`,
		Args: cobra.NoArgs,
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			if !changed(cmd.Flags(), "segment") {
				return usagef("hydrate needs --segment")
			}
			if maxRetries < 0 {
				return usagef("--max-retries must be >= 0")
			}
			c, err := a.client(cmd)
			if err != nil {
				return err
			}
			return a.hydrate(cmd, c, control.HydrateRequest{Stream: stream, Segment: segment}, maxRetries)
		}),
	}
	cmd.Flags().StringVar(&stream, "stream", "", "stream of the segment (needed when the id exists in several streams)")
	cmd.Flags().Uint64Var(&segment, "segment", 0, "segment id to hydrate")
	cmd.Flags().IntVar(&maxRetries, "max-retries", 3, "retries of transient failures")
	cmd.Flags().StringVar(&tier1Path, "tier1-path", "", "ignored: the gateway keeps Tier 1 under <data_root>/tier1")
	_ = cmd.Flags().MarkDeprecated("tier1-path", "the gateway keeps Tier 1 under <data_root>/tier1")
	return cmd
}

func (a *app) segmentsCommand() *cobra.Command {
	seg := &cobra.Command{
		Use:   "segments",
		Short: "List or delete segments",
		Long:  "segments lists segments with their tiers and sizes, or deletes the local copies of retired segments.",
		Example: `  aof2-admin segments list --stream demo
  aof2-admin segments delete --stream demo --segment 3 --tier 1`,
		Args: cobra.NoArgs,
	}
	var root, stream string
	var tier int
	list := &cobra.Command{
		Use:   "list",
		Short: "Segments with state, tiers and sizes",
		Long: `segments list prints every segment (oldest first per stream) with its state
(active, sealed, needs_recovery), the tiers holding it, its records, its
Tier 0 bytes and its compressed bytes. --tier keeps the segments resident in
that tier. With --root it reads a stopped gateway's data root.`,
		Example: `  aof2-admin segments list
  aof2-admin segments list --stream demo --tier 2
  aof2-admin segments list --root ./data --json`,
		Args: cobra.NoArgs,
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			req := control.SegmentsListRequest{Stream: stream}
			if changed(cmd.Flags(), "tier") {
				if tier < 0 || tier > 2 {
					return usagef("--tier must be 0, 1 or 2")
				}
				req.Tier = &tier
			}
			res, err := answer(a, cmd, root,
				func(_ context.Context, s *tiers.Store) (control.SegmentsListResponse, error) {
					return control.ListSegments(s, req)
				},
				func(ctx context.Context, c *control.Client) (control.SegmentsListResponse, error) {
					return c.SegmentsList(ctx, req)
				})
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(res)
			}
			printSegments(a.stdout, res.Segments)
			return nil
		}),
	}
	list.Flags().StringVar(&root, "root", "", "read this data root offline (gateway stopped)")
	list.Flags().StringVar(&stream, "stream", "", "only this stream")
	list.Flags().IntVar(&tier, "tier", 0, "only segments resident in this tier (0, 1 or 2)")

	var del control.SegmentsDeleteRequest
	remove := &cobra.Command{
		Use:   "delete",
		Short: "Remove copies of a sealed segment from Tier 0, Tier 1 or all tiers",
		Long: `segments delete removes copies of a sealed segment, down to the given tier:

  --tier 0  only the Tier 0 file; the segment must have a Tier 1 copy, which
            then serves reads
  --tier 1  the Tier 0 and Tier 1 copies (the default); the segment must be
            confirmed in Tier 2, and reads hydrate it back when needed
  --tier 2  retire the segment: its Tier 2 object and every local copy are
            deleted, the deletion is recorded in the manifest, and its records
            are gone for good

The active segment is always refused (seal it first), and so is a deletion
that would remove the only copy: --tier 2 of a segment not confirmed in Tier 2
is refused unless --acknowledge-data-loss is given (--force does not do it).
Without --force the newest sealed segment of a stream and a segment being
hydrated are refused as still in use. The gateway logs every deletion
(segment_deleted) with who asked: user@host of this machine, as stated by
aof2-admin, not checked by NATS.`,
		Example: `  aof2-admin segments delete --stream demo --segment 3
  aof2-admin segments delete --stream demo --segment 3 --tier 0
  aof2-admin segments delete --stream demo --segment 7 --tier 2 --force
  aof2-admin segments delete --stream demo --segment 5 --tier 2 --acknowledge-data-loss`,
		Args: cobra.NoArgs,
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			if !changed(cmd.Flags(), "segment") {
				return usagef("segments delete needs --segment")
			}
			del.RequestedBy = requester()
			res, err := answer(a, cmd, "", nil, func(ctx context.Context, c *control.Client) (control.SegmentsDeleteResponse, error) {
				return c.SegmentsDelete(ctx, del)
			})
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(res)
			}
			switch {
			case del.Tier == 2:
				fmt.Fprintf(a.stdout, "stream %s segment %d: retired, copies removed from tiers %v\n", res.Stream, res.Segment, res.Removed)
			case del.Tier == 1:
				fmt.Fprintf(a.stdout, "stream %s segment %d: local copies removed from tiers %v; Tier 2 keeps the durable copy\n", res.Stream, res.Segment, res.Removed)
			default:
				fmt.Fprintf(a.stdout, "stream %s segment %d: Tier 0 file removed; Tier 1 serves reads\n", res.Stream, res.Segment)
			}
			return nil
		}),
	}
	remove.Flags().StringVar(&del.Stream, "stream", "", "stream of the segment (needed when the id exists in several streams)")
	remove.Flags().Uint64Var(&del.Segment, "segment", 0, "segment id")
	remove.Flags().IntVar(&del.Tier, "tier", 1, "tier to delete down to: 0 the Tier 0 file, 1 the local copies (Tier 0 and Tier 1), 2 retire the segment from every tier")
	remove.Flags().BoolVar(&del.Force, "force", false, "also delete the newest sealed segment or one being hydrated")
	remove.Flags().BoolVar(&del.AcknowledgeDataLoss, "acknowledge-data-loss", false, "with --tier 2, retire a segment not confirmed in Tier 2: its records are lost")
	seg.AddCommand(list, remove)
	return seg
}

func (a *app) manifestCommand() *cobra.Command {
	m := &cobra.Command{
		Use:   "manifest",
		Short: "Check or inspect the manifest",
		Long:  "manifest checks the integrity of the manifest and every file it names, or prints its chunks, segment states and recent records.",
		Example: `  aof2-admin manifest check --root ./data --repair
  aof2-admin manifest inspect --stream demo --recent 20`,
		Args: cobra.NoArgs,
	}
	var root, stream string
	var repair bool
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate manifest integrity and every checksum",
		Long: `manifest check verifies every manifest chunk and record checksum, every
snapshot, every Tier 0 segment (record CRC-32C, footer CRC-64 against the
manifest), every Tier 1 artifact the manifest names (all frames decoded) and,
when Tier 2 is configured, every Tier 2 object's presence and crc64. Each
problem is printed with its stream, segment or chunk and reason. The exit
code is 4 when problems remain, 3 when Tier 2 refuses the credentials.

--repair trims torn manifest tails and removes temp files of unfinished
writes (only offline, with --root: the gateway must be stopped), and drops
damaged local segment copies that Tier 2 holds and hydrates them back.
Online (without --root) the check runs inside the gateway against its live
files.`,
		Example: `  aof2-admin manifest check
  aof2-admin manifest check --root ./data
  AOF2_TIER2_ENDPOINT=http://127.0.0.1:7070 aof2-admin manifest check --root ./data --repair`,
		Args: cobra.NoArgs,
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			var rep control.CheckReport
			if root != "" {
				so, err := a.storeOptions(cmd, root, true)
				if err != nil {
					return err
				}
				offline, err := fsck.CheckOffline(cmd.Context(), so, stream, repair)
				if err != nil {
					return err
				}
				rep = control.CheckReportOf(offline)
			} else {
				c, err := a.client(cmd)
				if err != nil {
					return err
				}
				ctx, cancel := a.requestCtx(cmd)
				defer cancel()
				if rep, err = c.ManifestCheck(ctx, control.ManifestCheckRequest{Stream: stream, Repair: repair}); err != nil {
					return err
				}
			}
			if a.jsonOut {
				if err := a.printJSON(rep); err != nil {
					return err
				}
			} else {
				printCheck(a.stdout, rep)
			}
			if n := rep.Remaining(); n > 0 {
				return problemsRemain{n}
			}
			return nil
		}),
	}
	check.Flags().StringVar(&root, "root", "", "check this data root offline (gateway stopped)")
	check.Flags().StringVar(&stream, "stream", "", "only this stream")
	check.Flags().BoolVar(&repair, "repair", false, "repair what can be repaired (torn tails, temp files, local copies Tier 2 holds)")

	var iroot, istream string
	var recent int
	inspect := &cobra.Command{
		Use:   "inspect",
		Short: "Print manifest chunks, segment states and recent records",
		Long: `manifest inspect prints, per stream, the manifest chunk files (base record,
records, committed bytes, sealed and uploaded flags), the folded state of
every segment (tiers, sizes, failures, pending jobs) and, with --recent N,
the last N manifest records decoded. With --root it reads a stopped
gateway's data root.`,
		Example: `  aof2-admin manifest inspect --stream demo
  aof2-admin manifest inspect --stream demo --recent 20
  aof2-admin manifest inspect --root ./data --json`,
		Args: cobra.NoArgs,
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			if recent < 0 {
				return usagef("--recent must be >= 0")
			}
			req := control.ManifestInspectRequest{Stream: istream, Recent: recent}
			res, err := answer(a, cmd, iroot,
				func(_ context.Context, s *tiers.Store) (control.ManifestInspectResponse, error) {
					return control.Inspect(s, req)
				},
				func(ctx context.Context, c *control.Client) (control.ManifestInspectResponse, error) {
					return c.ManifestInspect(ctx, req)
				})
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(res)
			}
			printInspect(a.stdout, res)
			return nil
		}),
	}
	inspect.Flags().StringVar(&iroot, "root", "", "read this data root offline (gateway stopped)")
	inspect.Flags().StringVar(&istream, "stream", "", "only this stream")
	inspect.Flags().IntVar(&recent, "recent", 10, "print the last N manifest records (0: none)")
	m.AddCommand(check, inspect)
	return m
}

func (a *app) snapshotCommand() *cobra.Command {
	s := &cobra.Command{
		Use:     "snapshot",
		Short:   "Create or list manifest snapshots",
		Long:    "snapshot writes a manifest snapshot of a stream now, or lists the snapshot files of the running gateway.",
		Example: "  aof2-admin snapshot create --stream demo\n  aof2-admin snapshot list",
		Args:    cobra.NoArgs,
	}
	var stream string
	create := &cobra.Command{
		Use:     "create",
		Short:   "Write a manifest snapshot of a stream now",
		Long:    "snapshot create folds the stream's manifest into a snapshot file (AOF2SNAP), so replay at the next start begins there, and prints its id.",
		Example: "  aof2-admin snapshot create --stream demo",
		Args:    cobra.NoArgs,
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			if stream == "" {
				return usagef("snapshot create needs --stream")
			}
			res, err := answer(a, cmd, "", nil, func(ctx context.Context, c *control.Client) (control.SnapshotResponse, error) {
				return c.SnapshotCreate(ctx, control.SnapshotRequest{Stream: stream})
			})
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(res)
			}
			fmt.Fprintf(a.stdout, "stream %s: snapshot %d written\n", res.Stream, res.SnapshotID)
			return nil
		}),
	}
	create.Flags().StringVar(&stream, "stream", "", "stream to snapshot")
	var lstream string
	list := &cobra.Command{
		Use:     "list",
		Short:   "List manifest snapshot files",
		Long:    "snapshot list prints every snapshot file of the running gateway with the manifest position it covers and whether it verifies.",
		Example: "  aof2-admin snapshot list\n  aof2-admin snapshot list --stream demo --json",
		Args:    cobra.NoArgs,
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			res, err := answer(a, cmd, "", nil, func(ctx context.Context, c *control.Client) (control.SnapshotListResponse, error) {
				return c.SnapshotList(ctx, control.StreamRequest{Stream: lstream})
			})
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(res)
			}
			printSnapshots(a.stdout, res.Snapshots)
			return nil
		}),
	}
	list.Flags().StringVar(&lstream, "stream", "", "only this stream")
	s.AddCommand(create, list)
	return s
}

func (a *app) configCommand() *cobra.Command {
	c := &cobra.Command{
		Use:     "config",
		Short:   "Manage the running gateway's configuration",
		Long:    "config acts on the configuration of the running gateway.",
		Example: "  aof2-admin config reload",
		Args:    cobra.NoArgs,
	}
	reload := &cobra.Command{
		Use:   "reload",
		Short: "Make the gateway re-read its configuration",
		Long: `config reload asks the running gateway to re-read its configuration file and
environment and apply the keys that can change at runtime (budgets, retry
policies, retention, log level); it prints what the gateway reports.`,
		Example: "  aof2-admin config reload",
		Args:    cobra.NoArgs,
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			res, err := answer(a, cmd, "", nil, func(ctx context.Context, c *control.Client) (control.ReloadResponse, error) {
				return c.ConfigReload(ctx)
			})
			if err != nil {
				return err
			}
			return a.printJSON(res.Result)
		}),
	}
	c.AddCommand(reload)
	return c
}
