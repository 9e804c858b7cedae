package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/bop-aof/aof/cluster"
	"github.com/bop-aof/aof/config"
	"github.com/bop-aof/aof/control"
)

// clusterView is what `aof2-admin cluster` shows; its JSON form is the
// --json output.
type clusterView struct {
	Partitions int              `json:"partitions"`
	LeaseTTL   string           `json:"lease_ttl"`
	Nodes      []clusterNode    `json:"nodes"`
	Leases     []clusterLease   `json:"leases"`
	Streams    []clusterStream  `json:"streams"`
	Unowned    []int            `json:"unowned_partitions"`
	now        time.Time        `json:"-"`
	byNode     map[string][]int `json:"-"`
}

type clusterNode struct {
	Node            string  `json:"node"`
	HeartbeatAgeSec float64 `json:"heartbeat_age_seconds"`
	StartedAt       string  `json:"started_at"`
	Owned           []int   `json:"owned_partitions"`
}

type clusterLease struct {
	Partition   int     `json:"partition"`
	Owner       string  `json:"owner"`
	Epoch       uint64  `json:"epoch"`
	LeaseAgeSec float64 `json:"lease_age_seconds"`
	HeldForSec  float64 `json:"held_for_seconds"`
}

type clusterStream struct {
	Stream    string `json:"stream"`
	Partition int    `json:"partition"`
	Owner     string `json:"owner,omitempty"`
	Epoch     uint64 `json:"epoch"`
	// ArchivedThrough is the last JetStream sequence archived in Tier 2.
	ArchivedThrough uint64 `json:"archived_through"`
	// InIngest is how many of the stream's messages AOF_INGEST holds:
	// the un-archived window, plus up to ingest.keep archived ones.
	InIngest uint64 `json:"messages_in_ingest"`
	// ArchiveLagSec is the age of the archived record while messages
	// wait in AOF_INGEST, 0 when none does.
	ArchiveLagSec float64 `json:"archive_lag_seconds"`
}

func (a *app) clusterCommand() *cobra.Command {
	c := a.clusterShowCommand()
	c.AddCommand(a.handoverCommand())
	return c
}

func (a *app) handoverCommand() *cobra.Command {
	var node string
	cmd := &cobra.Command{
		Use:   "handover",
		Short: "Have one gateway hand every partition it owns over, before stopping it",
		Long: `handover asks the gateway --node (its node.id, as aof2-admin cluster shows it)
to hand every partition it owns over, as a SIGTERM does: each pipeline stops,
every stream is sealed, the gateway waits until Tier 2 holds everything,
writes the archived-through records, purges AOF_INGEST and releases the
lease; the other gateways take the partitions at once, with nothing to
re-read. The gateway then takes no partition until it is restarted: stop it,
upgrade it, start it.`,
		Example: `  aof2-admin cluster handover --node gw-a
  aof2-admin cluster handover --node gw-a --json`,
		Args: cobra.NoArgs,
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			if node == "" {
				return usageError{fmt.Errorf("--node is required: the node id of the gateway to hand over (aof2-admin cluster lists them)")}
			}
			res, err := answer(a, cmd, "", nil, func(ctx context.Context, c *control.Client) (control.HandoverResponse, error) {
				return c.Handover(ctx, control.HandoverRequest{Node: node})
			})
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(res)
			}
			fmt.Fprintf(a.stdout, "gateway %s handed over partitions %s in %d ms; it takes none until it restarts\n", res.Node, ranges(res.Released), res.TookMS)
			return nil
		}),
	}
	cmd.Flags().StringVar(&node, "node", "", "node id of the gateway to hand over")
	return cmd
}

func (a *app) clusterShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "cluster",
		Short: "Show gateways, partition leases and each stream's archived-through position",
		Long: `cluster reads the cluster bucket (cluster.bucket, AOF_CLUSTER) and the ingest
stream and shows:
  nodes       each gateway's node id, heartbeat age and owned partitions
  partitions  owner, epoch and lease age of every partition (lease age above
              cluster.lease_ttl/3 means renewals are late); partitions without
              a lease are listed as unowned
  streams     per stream: partition, owner, the epoch of its archived record,
              the last JetStream sequence archived in Tier 2, the messages
              AOF_INGEST still holds for it (the un-archived window, plus up to
              ingest.keep archived ones) and the archive lag: how long the
              record has not moved while messages wait

It needs no gateway address: everything is read from NATS.`,
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
			v, err := readCluster(ctx, js, cfg)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(v)
			}
			printCluster(a.stdout, v)
			return nil
		}),
	}
}

// readCluster gathers the view from the cluster bucket and AOF_INGEST.
func readCluster(ctx context.Context, js jetstream.JetStream, cfg *config.Config) (clusterView, error) {
	v := clusterView{Partitions: cfg.Cluster.Partitions, LeaseTTL: cfg.Cluster.LeaseTTL.D().String(), now: time.Now(), byNode: map[string][]int{}}
	b, err := cluster.OpenBucket(ctx, js, cfg.Cluster.Bucket)
	if err != nil {
		return v, fmt.Errorf("open cluster bucket %s (is a gateway running?): %w", cfg.Cluster.Bucket, err)
	}
	leases, err := b.ListLeases(ctx)
	if err != nil {
		return v, err
	}
	owner := map[int]clusterLease{}
	for _, l := range leases {
		cl := clusterLease{Partition: l.Partition, Owner: l.Node, Epoch: l.Epoch,
			LeaseAgeSec: age(v.now, l.Written), HeldForSec: age(v.now, l.AcquiredAt)}
		v.Leases = append(v.Leases, cl)
		owner[l.Partition] = cl
		v.byNode[l.Node] = append(v.byNode[l.Node], l.Partition)
	}
	nodes, err := b.ListNodes(ctx)
	if err != nil {
		return v, err
	}
	for _, n := range nodes {
		v.Nodes = append(v.Nodes, clusterNode{Node: n.Node, HeartbeatAgeSec: age(v.now, n.Written),
			StartedAt: n.StartedAt.UTC().Format(time.RFC3339), Owned: v.byNode[n.Node]})
	}
	inIngest, err := ingestCounts(ctx, js, cfg, &v)
	if err != nil {
		return v, err
	}
	archived, err := b.ListArchived(ctx)
	if err != nil {
		return v, err
	}
	names := map[string]bool{}
	for s := range archived {
		names[s] = true
	}
	for s := range inIngest {
		names[s] = true
	}
	for s := range names {
		p := cluster.PartitionOf(s, v.Partitions)
		rec := archived[s]
		cs := clusterStream{Stream: s, Partition: p, Owner: owner[p].Owner, Epoch: rec.Epoch,
			ArchivedThrough: rec.Through, InIngest: inIngest[s]}
		if cs.InIngest > 0 && !rec.UpdatedAt.IsZero() {
			cs.ArchiveLagSec = age(v.now, rec.UpdatedAt)
		}
		v.Streams = append(v.Streams, cs)
	}
	sort.Slice(v.Streams, func(i, j int) bool { return v.Streams[i].Stream < v.Streams[j].Stream })
	for p := range v.Partitions {
		if _, ok := owner[p]; !ok {
			v.Unowned = append(v.Unowned, p)
		}
	}
	return v, nil
}

// ingestCounts returns how many messages AOF_INGEST holds per stream,
// whether stored under the partitioned subject or the plain one, and sets
// v's partition count from the stream's subject transform, which fixed it
// when the stream was provisioned.
func ingestCounts(ctx context.Context, js jetstream.JetStream, cfg *config.Config, v *clusterView) (map[string]uint64, error) {
	st, err := js.Stream(ctx, cfg.Ingest.StreamName)
	if err != nil {
		return nil, fmt.Errorf("ingest stream %s: %w", cfg.Ingest.StreamName, err)
	}
	if n, ok := cluster.PartitionsOf(st.CachedInfo().Config.SubjectTransform, cfg.Ingest.SubjectPrefix); ok {
		v.Partitions = n
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(cfg.Ingest.SubjectPrefix+".>"))
	if err != nil {
		return nil, fmt.Errorf("ingest stream %s subjects: %w", cfg.Ingest.StreamName, err)
	}
	out := map[string]uint64{}
	prefix := cfg.Ingest.SubjectPrefix + "."
	for subject, n := range info.State.Subjects {
		rest := strings.TrimPrefix(subject, prefix)
		toks := strings.Split(rest, ".")
		out[toks[len(toks)-1]] += n
	}
	return out, nil
}

func age(now, t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return now.Sub(t).Round(100 * time.Millisecond).Seconds()
}

func printCluster(w io.Writer, v clusterView) {
	fmt.Fprintf(w, "partitions %d, lease TTL %s, nodes %d, unowned partitions %d\n\n", v.Partitions, v.LeaseTTL, len(v.Nodes), len(v.Unowned))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tHEARTBEAT AGE\tSTARTED\tPARTITIONS")
	for _, n := range v.Nodes {
		fmt.Fprintf(tw, "%s\t%.1fs\t%s\t%s\n", n.Node, n.HeartbeatAgeSec, n.StartedAt, ranges(n.Owned))
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
