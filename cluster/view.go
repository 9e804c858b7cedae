package cluster

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// View is what `aof2-admin cluster` shows: the cluster bucket and the
// ingest stream as one look. Its JSON form is that command's --json output
// and the answer of the admin endpoint cluster.view.
type View struct {
	Partitions int              `json:"partitions"`
	LeaseTTL   string           `json:"lease_ttl"`
	Nodes      []NodeView       `json:"nodes"`
	Leases     []LeaseView      `json:"leases"`
	Streams    []StreamView     `json:"streams"`
	Unowned    []int            `json:"unowned_partitions"`
	now        time.Time        `json:"-"`
	byNode     map[string][]int `json:"-"`
}

type NodeView struct {
	Node            string  `json:"node"`
	HeartbeatAgeSec float64 `json:"heartbeat_age_seconds"`
	StartedAt       string  `json:"started_at"`
	Owned           []int   `json:"owned_partitions"`
	// State is "active", "draining" (giving every partition away, taking
	// none), "failing" (out of the shares after its partitions failed
	// several times in a row) or "follower" (owns nothing, serves reads).
	State string `json:"state"`
	// Share is how many partitions the node aims at by its own view of
	// the members (P/n, see package cluster); Owned differs from it while
	// partitions move.
	Share int `json:"share"`
	// Moving are the partitions it is handing over now.
	Moving []int `json:"moving_partitions,omitempty"`
}

type LeaseView struct {
	Partition   int     `json:"partition"`
	Owner       string  `json:"owner"`
	Epoch       uint64  `json:"epoch"`
	LeaseAgeSec float64 `json:"lease_age_seconds"`
	HeldForSec  float64 `json:"held_for_seconds"`
}

type StreamView struct {
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

// ViewOptions name what ReadView reads.
type ViewOptions struct {
	Bucket        string // cluster.bucket
	IngestStream  string // ingest.stream_name
	SubjectPrefix string // ingest.subject_prefix
	// Partitions and LeaseTTL are the configuration's; the ingest
	// stream's transform, which fixed the partition count, wins.
	Partitions int
	LeaseTTL   time.Duration
}

// ReadView gathers the view from the cluster bucket and the ingest stream.
func ReadView(ctx context.Context, js jetstream.JetStream, o ViewOptions) (View, error) {
	v := View{Partitions: o.Partitions, LeaseTTL: o.LeaseTTL.String(), now: time.Now(), byNode: map[string][]int{}}
	b, err := OpenBucket(ctx, js, o.Bucket)
	if err != nil {
		return v, fmt.Errorf("open cluster bucket %s (is a gateway running?): %w", o.Bucket, err)
	}
	leases, err := b.ListLeases(ctx)
	if err != nil {
		return v, err
	}
	owner := map[int]LeaseView{}
	for _, l := range leases {
		cl := LeaseView{Partition: l.Partition, Owner: l.Node, Epoch: l.Epoch,
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
		v.Nodes = append(v.Nodes, NodeView{Node: n.Node, HeartbeatAgeSec: age(v.now, n.Written),
			StartedAt: n.StartedAt.UTC().Format(time.RFC3339), Owned: v.byNode[n.Node],
			State: n.state(), Share: n.Share, Moving: n.Moving})
	}
	inIngest, err := ingestCounts(ctx, js, o, &v)
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
		p := PartitionOf(s, v.Partitions)
		rec := archived[s]
		cs := StreamView{Stream: s, Partition: p, Owner: owner[p].Owner, Epoch: rec.Epoch,
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
func ingestCounts(ctx context.Context, js jetstream.JetStream, o ViewOptions, v *View) (map[string]uint64, error) {
	st, err := js.Stream(ctx, o.IngestStream)
	if err != nil {
		return nil, fmt.Errorf("ingest stream %s: %w", o.IngestStream, err)
	}
	if n, ok := PartitionsOf(st.CachedInfo().Config.SubjectTransform, o.SubjectPrefix); ok {
		v.Partitions = n
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(o.SubjectPrefix+".>"))
	if err != nil {
		return nil, fmt.Errorf("ingest stream %s subjects: %w", o.IngestStream, err)
	}
	out := map[string]uint64{}
	prefix := o.SubjectPrefix + "."
	for subject, n := range info.State.Subjects {
		rest := strings.TrimPrefix(subject, prefix)
		toks := strings.Split(rest, ".")
		out[toks[len(toks)-1]] += n
	}
	return out, nil
}

func (n NodeInfo) state() string {
	switch {
	case n.Follower:
		return "follower"
	case n.Draining:
		return "draining"
	case n.Failing:
		return "failing"
	}
	return "active"
}

func age(now, t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return now.Sub(t).Round(100 * time.Millisecond).Seconds()
}
