package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/bop-aof/aof/cluster"
	"github.com/bop-aof/aof/control"
)

func (a *app) clusterCommand() *cobra.Command {
	c := a.clusterShowCommand()
	c.AddCommand(a.drainCommand())
	return c
}

func (a *app) drainCommand() *cobra.Command {
	var node string
	var off bool
	cmd := &cobra.Command{
		Use:     "drain",
		Aliases: []string{"handover"},
		Short:   "Have one gateway hand every partition it owns over and take none",
		Long: `drain asks the gateway --node (its node.id, as aof2-admin cluster shows it) to
give every partition it owns away, as a SIGTERM does before the gateway
exits: each pipeline stops, every stream is sealed, the gateway waits until
Tier 2 holds everything, writes the archived-through records, purges
AOF_INGEST and releases the lease. The other gateways count the drained one
out of their shares and take the partitions at once, with nothing to
re-read. The gateway keeps serving reads and takes no partition until
'drain --off' or a restart; then the others hand its share back to it, one
partition per cluster.rebalance_pause.

Use it before stopping a gateway for an upgrade, or to move load off a
machine. 'handover' is the command's older name.`,
		Example: `  aof2-admin cluster drain --node gw-a
  aof2-admin cluster drain --node gw-a --off
  aof2-admin cluster drain --node gw-a --json`,
		Args: cobra.NoArgs,
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			if node == "" {
				return usageError{fmt.Errorf("--node is required: the node id of the gateway to drain (aof2-admin cluster lists them)")}
			}
			res, err := answer(a, cmd, "", nil, func(ctx context.Context, c *control.Client) (control.DrainResponse, error) {
				return c.Drain(ctx, control.DrainRequest{Node: node, Off: off})
			})
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(res)
			}
			if off {
				fmt.Fprintf(a.stdout, "gateway %s takes its share of the partitions again\n", res.Node)
				return nil
			}
			fmt.Fprintf(a.stdout, "gateway %s handed over partitions %s in %d ms; it takes none until 'drain --off' or a restart\n",
				res.Node, ranges(res.Released), res.TookMS)
			if res.Warning != "" {
				fmt.Fprintf(a.stderr, "warning: %s\n", res.Warning)
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&node, "node", "", "node id of the gateway to drain")
	cmd.Flags().BoolVar(&off, "off", false, "lift the drain: the gateway takes its share again")
	return cmd
}

func (a *app) clusterShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "cluster",
		Short: "Show gateways, partition leases and each stream's archived-through position",
		Long: `cluster reads the cluster bucket (cluster.bucket, AOF_CLUSTER) and the ingest
stream and shows:
  nodes       each gateway's node id; its state (active, draining: giving
              every partition away, follower: serves reads only); how many
              partitions it owns against its share (partitions / active
              gateways, see cluster.rebalance_pause); heartbeat age; the
              partitions it owns and those it is handing over now
  partitions  owner, epoch and lease age of every partition (lease age above
              cluster.lease_ttl/3 means renewals are late); partitions without
              a lease are listed as unowned
  streams     per stream: partition, owner, the epoch of its archived record,
              the last JetStream sequence archived in Tier 2, the messages
              AOF_INGEST still holds for it (the un-archived window, plus up to
              ingest.keep archived ones) and the archive lag: how long the
              record has not moved while messages wait

It needs no gateway address: a running gateway answers it (admin endpoint
cluster.view, so an operator's account needs only the admin service); with
no gateway running, it reads the bucket and the ingest stream itself.`,
		Example: `  aof2-admin cluster
  aof2-admin cluster --json | jq '.streams[] | select(.messages_in_ingest > 0)'`,
		Args: cobra.NoArgs,
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.config(cmd)
			if err != nil {
				return err
			}
			nc, err := a.connect(cmd)
			if err != nil {
				return err
			}
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			ctx, cancel := a.requestCtx(cmd)
			defer cancel()
			// A running gateway answers it (an operator's account needs
			// only the admin service); with none running, it is read from
			// the bucket and the ingest stream directly.
			var v cluster.View
			c, err := a.client(cmd)
			if err == nil {
				err = c.ClusterView(ctx, &v)
			}
			if err != nil {
				if v, err = cluster.ReadView(ctx, js, cluster.ViewOptions{Bucket: cfg.Cluster.Bucket, IngestStream: cfg.Ingest.StreamName,
					SubjectPrefix: cfg.Ingest.SubjectPrefix, Partitions: cfg.Cluster.Partitions, LeaseTTL: cfg.Cluster.LeaseTTL.D()}); err != nil {
					return err
				}
			}
			if a.jsonOut {
				return a.printJSON(v)
			}
			printCluster(a.stdout, v)
			return nil
		}),
	}
}

func printCluster(w io.Writer, v cluster.View) {
	fmt.Fprintf(w, "partitions %d, lease TTL %s, nodes %d, unowned partitions %d\n\n", v.Partitions, v.LeaseTTL, len(v.Nodes), len(v.Unowned))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tOWNED/SHARE\tHEARTBEAT AGE\tSTARTED\tPARTITIONS\tHANDING OVER")
	for _, n := range v.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%.1fs\t%s\t%s\t%s\n", n.Node, orDash(n.State), len(n.Owned), n.Share,
			n.HeartbeatAgeSec, n.StartedAt, ranges(n.Owned), ranges(n.Moving))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tOWNER\tEPOCH\tLEASE AGE\tHELD FOR")
	for _, l := range v.Leases {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%.1fs\t%.0fs\n", l.Partition, l.Owner, l.Epoch, l.LeaseAgeSec, l.HeldForSec)
	}
	for _, p := range v.Unowned {
		fmt.Fprintf(tw, "%d\t-\t-\t-\t-\n", p)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tPARTITION\tOWNER\tEPOCH\tARCHIVED THROUGH\tIN AOF_INGEST\tARCHIVE LAG")
	for _, s := range v.Streams {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%.1fs\n", s.Stream, s.Partition, orDash(s.Owner), s.Epoch, s.ArchivedThrough, s.InIngest, s.ArchiveLagSec)
	}
	tw.Flush()
}

// ranges prints sorted partitions as "0-3,7".
func ranges(ps []int) string {
	if len(ps) == 0 {
		return "-"
	}
	sort.Ints(ps)
	var parts []string
	for i := 0; i < len(ps); {
		j := i
		for j+1 < len(ps) && ps[j+1] == ps[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, fmt.Sprint(ps[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", ps[i], ps[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
