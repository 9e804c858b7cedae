package main

import (
	"context"
	"path/filepath"
	"sync"

	"github.com/bop-aof/aof/cluster"
	"github.com/bop-aof/aof/internal/options"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/readservice"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tracing"
)

// replicaDir is the replica's directory under the data root: copies of
// streams this gateway does not own, emptied at every start.
const replicaDir = "replica"

// replicaShare is the part of the Tier 1 budget the replica's copies get
// on a gateway that also owns partitions; a follower gives them all of it.
const replicaShare = 4

// replicaStreams is how many streams have a copy open at once.
const replicaStreams = 4

// openReplica opens the read-only replica the read service answers the
// archived history of other gateways' streams from (readservice
// Options.Replica). Without Tier 2 there is nothing to replicate: every
// read of another gateway's stream goes to its owner.
func (g *gateway) openReplica() error {
	if g.store == nil || g.store.Tier2() == nil {
		return nil
	}
	so := options.Store(g.cfg)
	so.Tier2 = g.store.Tier2()
	so.Logger, so.Tracer = g.log, g.prov.Tracer(tracing.InstrumentationName)
	// Each copy has its own store, so the budgets below are per copy,
	// with at most replicaStreams copies open: a quarter of Tier 1 each
	// on a follower (a sixteenth on an owner), half of the read-ahead
	// memory (a cold scan still fetches whole segments ahead).
	so.Tier1MaxBytes /= replicaStreams
	if !g.follower {
		so.Tier1MaxBytes /= replicaShare
	}
	so.PrefetchBytes /= 2
	so.Tier0MaxBytes = 64 << 20 // a copy appends nothing
	r, err := tiers.OpenReplica(tiers.ReplicaOptions{
		Root:       filepath.Join(g.cfg.DataRoot, replicaDir),
		Store:      so,
		Record:     archivedRecord{g.bucket}.get,
		MaxStreams: replicaStreams,
	})
	if err != nil {
		return err
	}
	g.replica = r
	return nil
}

// closeReplica closes the copies once the read service has stopped.
func (g *gateway) closeReplica() {
	if g.replica != nil {
		g.replica.Close()
		g.replica = nil
	}
}

// archivedRecord reads a stream's archived-through record from the
// cluster bucket as the manifest position a copy adopts.
type archivedRecord struct{ b *cluster.Bucket }

func (r archivedRecord) get(ctx context.Context, stream string) (manifest.Archived, error) {
	a, _, err := r.b.GetArchived(ctx, stream)
	if err != nil {
		return manifest.Archived{}, err
	}
	return adoptable(recordOf(a)), nil
}

// takeoverRouter is the read service's view of the owners: a partition
// this gateway holds counts as its own only once its takeover is done
// (the pipeline has positioned its consumer in this term). Before that
// the store may still hold a stale copy of a stream, opened before the
// lease was taken and not yet dropped or adopted again, which would
// answer a reader with an end short of the archived one; meanwhile reads
// go to the replica (archived history) or are answered unavailable, as
// while no one owns the partition. A term stays done while its pipeline
// stops for a handover: the store is then the newest copy there is.
type takeoverRouter struct {
	readservice.Router
	partitionOf func(stream string) int
	done        func(p int) bool
}

func (r takeoverRouter) Owner(stream string) string {
	owner := r.Router.Owner(stream)
	if owner == r.Self() && !r.done(r.partitionOf(stream)) {
		return ""
	}
	return owner
}

// termsDone remembers, per partition, the term (lease epoch) whose
// pipeline has positioned its consumer.
type termsDone struct {
	term       func(p int) (uint64, bool) // the epoch of the lease held, if any
	positioned func(p int) bool
	mu         sync.Mutex
	done       map[int]uint64
}

func (d *termsDone) isDone(p int) bool {
	epoch, held := d.term(p)
	if !held {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done[p] == epoch {
		return true
	}
	if !d.positioned(p) {
		return false
	}
	d.done[p] = epoch
	return true
}

// readRouter is router as the read service should see it.
func (g *gateway) readRouter(router readservice.Router) readservice.Router {
	if router == nil || g.ingest == nil {
		return router
	}
	d := &termsDone{term: g.heldTerm, positioned: g.ingest.pipelines.positioned, done: map[int]uint64{}}
	return takeoverRouter{Router: router, partitionOf: g.partitionOf, done: d.isDone}
}

// heldTerm is the epoch of this gateway's lease of partition p.
func (g *gateway) heldTerm(p int) (uint64, bool) {
	g.mu.Lock()
	m := g.manager
	g.mu.Unlock()
	if m == nil {
		return 0, false
	}
	for _, l := range m.Owned() {
		if l.Partition == p {
			return l.Epoch, true
		}
	}
	return 0, false
}
