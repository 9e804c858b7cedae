package cluster

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Owners tells which node owns the partition of a stream, for requests
// that must be answered by the owner (control.Router). Partitions this
// node holds are read from its Manager; the others from the bucket's
// leases, refreshed by Run, so an answer may be one refresh period old:
// a request routed to a former owner is refused there and retried.
type Owners struct {
	b          *Bucket
	partitions int
	self       string
	held       func() []Lease
	log        *slog.Logger

	mu     sync.Mutex
	owners map[int]string
}

// NewOwners returns the owner view of a deployment of partitions
// partitions, seen from node self, whose own leases held returns (a
// Manager's Owned).
func NewOwners(b *Bucket, partitions int, self string, held func() []Lease, log *slog.Logger) *Owners {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Owners{b: b, partitions: partitions, self: self, held: held, log: log, owners: map[int]string{}}
}

// Self is this node's id.
func (o *Owners) Self() string { return o.self }

// Owner is the node that owns stream's partition, "" when none does.
func (o *Owners) Owner(stream string) string {
	p := PartitionOf(stream, o.partitions)
	for _, l := range o.held() {
		if l.Partition == p {
			return o.self
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if n := o.owners[p]; n != o.self {
		return n
	}
	// The bucket still shows a lease this node no longer holds.
	return ""
}

// Run refreshes the view every period until ctx ends.
func (o *Owners) Run(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		o.refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (o *Owners) refresh(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	leases, err := o.b.ListLeases(rctx)
	if err != nil {
		if ctx.Err() == nil {
			o.log.Warn("cluster_owners_refresh_failed", "err", err)
		}
		return
	}
	owners := make(map[int]string, len(leases))
	for _, l := range leases {
		owners[l.Partition] = l.Node
	}
	o.mu.Lock()
	o.owners = owners
	o.mu.Unlock()
}
