package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/cluster"
	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/ownership"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/backpressure"
)

// The adapters below join the engines to package ownership's ports: the
// cluster bucket's records, the store, and a pipeline per partition.

// records is the cluster bucket as ownership.Records.
type records struct{ b *cluster.Bucket }

func (r records) Get(ctx context.Context, stream string) (ownership.Record, uint64, error) {
	a, rev, err := r.b.GetArchived(ctx, stream)
	return recordOf(a), rev, err
}

func (r records) Update(ctx context.Context, stream string, rev uint64, rec ownership.Record) (uint64, error) {
	n, err := r.b.UpdateArchived(ctx, stream, rev, cluster.Archived{Epoch: rec.Epoch, Through: rec.Through, Offset: rec.NextOffset,
		Manifest: cluster.ManifestPosition{Epoch: rec.Manifest.Epoch, Chunk: rec.Manifest.Chunk, Offset: uint64(rec.Manifest.Offset)}})
	if errors.Is(err, cluster.ErrFenced) {
		return 0, fmt.Errorf("%w: %w", ownership.ErrFenced, err)
	}
	return n, err
}

func (r records) List(ctx context.Context) ([]string, error) {
	all, err := r.b.ListArchived(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(all))
	for s := range all {
		names = append(names, s)
	}
	return names, nil
}

func recordOf(a cluster.Archived) ownership.Record {
	return ownership.Record{Epoch: a.Epoch, Through: a.Through, NextOffset: a.Offset,
		Manifest: ownership.ManifestPosition{Epoch: a.Manifest.Epoch, Chunk: a.Manifest.Chunk, Offset: int64(a.Manifest.Offset)}}
}

// staleCopies returns the Discard rule of a store opening now: a copy is
// dropped when the cluster's record shows another owner archived past it.
func staleCopies(ctx context.Context, b *cluster.Bucket) (func(stream string, epoch uint64) bool, error) {
	all, err := b.ListArchived(ctx)
	if err != nil {
		return nil, fmt.Errorf("read archived records: %w", err)
	}
	return func(stream string, epoch uint64) bool {
		a, ok := all[stream]
		return ok && ownership.Stale(recordOf(a), epoch)
	}, nil
}

// ownedStore is the tiered store as ownership.Store.
type ownedStore struct{ s *tiers.Store }

func (o ownedStore) Streams() []string                          { return o.s.Streams() }
func (o ownedStore) LocalEpoch(stream string) (uint64, bool)    { return o.s.LocalEpoch(stream) }
func (o ownedStore) SetEpoch(stream string, epoch uint64) error { return o.s.SetEpoch(stream, epoch) }
func (o ownedStore) Seal(ctx context.Context, stream string, force bool) (uint64, error) {
	return o.s.Seal(ctx, stream, force)
}

func (o ownedStore) Adopt(ctx context.Context, stream string, r ownership.Record, epoch uint64) error {
	return o.s.Adopt(ctx, stream, adoptable(r), epoch)
}

// adoptable is a stream's archived record as the archived state a store
// adopts (a takeover, or a replica's copy): with the epoch of the chain
// the record's position is in, not the record's writer's.
func adoptable(r ownership.Record) manifest.Archived {
	return manifest.Archived{Epoch: r.Manifest.Epoch, Through: r.Through, NextOffset: r.NextOffset,
		Position: manifest.Position{Chunk: r.Manifest.Chunk, Offset: r.Manifest.Offset}}
}

func (o ownedStore) Archived(stream string) (ownership.Archived, error) {
	a, err := o.s.Archived(stream)
	return ownership.Archived{Through: a.Through, NextOffset: a.NextOffset,
		Manifest: ownership.ManifestPosition{Epoch: a.Epoch, Chunk: a.Position.Chunk, Offset: a.Position.Offset}}, err
}

func (o ownedStore) ArchiveNow(stream string) error { return o.s.ArchiveNow(stream) }

func (o ownedStore) NextOffset(stream string) (uint64, error) {
	for _, s := range o.s.Streams() {
		if s == stream {
			l, err := o.s.Log(context.Background(), stream)
			if err != nil {
				return 0, err
			}
			return l.NextOffset(), nil
		}
	}
	return 0, tiers.ErrStreamNotFound
}

func (o ownedStore) LastExtID(stream string) (uint64, error) {
	d, err := o.s.DedupeView(stream)
	return d.Last, err
}

// partitionStore is the store as one partition's pipeline sees it: a
// restart resumes only the partition's own streams. The pipelines of
// other partitions restart on their own, and a stream resumed behind its
// pipeline's back would take appends after a failed fsync.
type partitionStore struct {
	*tiers.Store
	partition   int
	partitionOf func(string) int
	log         *slog.Logger
}

func (p partitionStore) Resume() error {
	var errs []error
	for _, s := range p.Store.Streams() {
		if p.partitionOf(s) != p.partition {
			continue
		}
		err := p.Store.ResumeStream(s)
		if backpressure.Is(err, backpressure.Flush) || backpressure.Is(err, backpressure.Rollover) {
			p.log.Warn("stream_resume_failed", "stream", s, "err", err)
			continue
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// partitionIngest runs a pipeline per partition and purges what is
// archived.
type partitionIngest struct {
	js     jetstream.JetStream
	store  *tiers.Store
	opts   ingest.Options // the gateway's, Partition unset
	purger *ingest.Purger
	log    *slog.Logger
	// pipelines are the running ones, for /readyz.
	pipelines *pipelineSet
}

// Run runs partition p's pipeline from the first message AOF_INGEST still
// holds of it: the takeover adopted what is archived, and sequence dedupe
// skips what the store holds.
func (pi partitionIngest) Run(ctx context.Context, p int, mayAck func() bool) error {
	opts := pi.opts
	opts.Partition = p
	opts.Consumer.StartSequence = 1
	opts.MayAck = mayAck
	opts.OnBacklog = pi.store.IngestBacklog
	ps := partitionStore{Store: pi.store, partition: p, partitionOf: opts.PartitionOf, log: pi.log}
	pl, err := ingest.NewPipeline(pi.js, ps, opts)
	if err != nil {
		return err
	}
	pi.pipelines.add(p, pl)
	defer pi.pipelines.remove(p, pl)
	return pl.Run(ctx)
}

func (pi partitionIngest) Purge(ctx context.Context, stream string, through uint64) error {
	return pi.purger.PurgeArchived(ctx, stream, through)
}

// leaseOf is a cluster lease as ownership.Lease; Valid checks the lease's
// own deadline synchronously (cluster.Valid).
type leaseOf struct {
	l   cluster.Lease
	ctx context.Context
}

func (l leaseOf) Partition() int { return l.l.Partition }
func (l leaseOf) Epoch() uint64  { return l.l.Epoch }
func (l leaseOf) Valid() bool    { return cluster.Valid(l.ctx) == nil }

// pipelineSet is the running pipelines by partition.
type pipelineSet struct {
	mu sync.Mutex
	m  map[int]*ingest.Pipeline
}

func newPipelineSet() *pipelineSet { return &pipelineSet{m: map[int]*ingest.Pipeline{}} }

func (ps *pipelineSet) add(p int, pl *ingest.Pipeline) {
	ps.mu.Lock()
	ps.m[p] = pl
	ps.mu.Unlock()
}

func (ps *pipelineSet) remove(p int, pl *ingest.Pipeline) {
	ps.mu.Lock()
	if ps.m[p] == pl {
		delete(ps.m, p)
	}
	ps.mu.Unlock()
}

// positioned reports whether partition p's pipeline runs and has
// positioned its consumer.
func (ps *pipelineSet) positioned(p int) bool {
	ps.mu.Lock()
	pl := ps.m[p]
	ps.mu.Unlock()
	return pl != nil && pl.Status().StartSequence > 0
}

// status sums the pipelines' status; nil when none runs. StartSequence is
// the lowest of them.
func (ps *pipelineSet) status() *ingest.Status {
	ps.mu.Lock()
	pls := make([]*ingest.Pipeline, 0, len(ps.m))
	for _, pl := range ps.m {
		pls = append(pls, pl)
	}
	ps.mu.Unlock()
	if len(pls) == 0 {
		return nil
	}
	var sum ingest.Status
	for i, pl := range pls {
		st := pl.Status()
		sum.AdmissionBlocked = sum.AdmissionBlocked || st.AdmissionBlocked
		if i == 0 || st.StartSequence < sum.StartSequence {
			sum.StartSequence = st.StartSequence
		}
		sum.Stored += st.Stored
		sum.Duplicates += st.Duplicates
		sum.DeadLetters += st.DeadLetters
		sum.HeldStreams = append(sum.HeldStreams, st.HeldStreams...)
	}
	return &sum
}
