package cluster

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// LeaseInfo is a lease as `aof2-admin cluster` shows it.
type LeaseInfo struct {
	Lease
	AcquiredAt time.Time
	RenewedAt  time.Time
	// Written is the server's time of the key's last write; the lease
	// expires one TTL after it unless renewed.
	Written time.Time
}

// NodeInfo is a node's last heartbeat.
type NodeInfo struct {
	Node      string
	StartedAt time.Time
	Owned     []int
	Share     int   // partitions it aims at, by its own view of the members
	Draining  bool  // giving every partition away, taking none
	Follower  bool  // owns nothing, serves reads
	Moving    []int // partitions it is handing over now
	Failing   bool  // out of the shares after failed terms in a row
	// Written is the server's time of the heartbeat; now minus Written is
	// the heartbeat age.
	Written time.Time
}

// nodeDoc is the value of node.<id>.
type nodeDoc struct {
	V         int       `json:"v"`
	Node      string    `json:"node"`
	StartedAt time.Time `json:"started_at"`
	Owned     []int     `json:"owned"`
	// Added within version 1 (older readers ignore them, older writers
	// leave them zero: an active node of unknown share).
	Share    int   `json:"share"`              // partitions the node aims at
	Draining bool  `json:"draining,omitempty"` // giving all away, taking none
	Follower bool  `json:"follower,omitempty"` // serves reads only
	Moving   []int `json:"moving,omitempty"`   // partitions it is handing over now
	Resting  []int `json:"resting,omitempty"`  // partitions it gave up and will not take for a TTL
	Failing  bool  `json:"failing,omitempty"`  // out of the shares after failed terms in a row
}

// ListLeases returns the live leases by partition.
func (b *Bucket) ListLeases(ctx context.Context) ([]LeaseInfo, error) {
	var out []LeaseInfo
	err := b.each(ctx, "lease.*", func(e jetstream.KeyValueEntry) error {
		p, err := strconv.Atoi(strings.TrimPrefix(e.Key(), "lease."))
		if err != nil {
			return nil // not a key this package writes
		}
		var doc leaseDoc
		if err := decode(e.Key(), e.Value(), &doc, &doc.V); err != nil {
			return err
		}
		out = append(out, LeaseInfo{
			Lease:      Lease{Partition: p, Node: doc.Node, Epoch: doc.Epoch, Revision: e.Revision()},
			AcquiredAt: doc.AcquiredAt, RenewedAt: doc.RenewedAt, Written: e.Created(),
		})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition })
	return out, err
}

// ListNodes returns the nodes whose heartbeat has not expired, by id.
func (b *Bucket) ListNodes(ctx context.Context) ([]NodeInfo, error) {
	var out []NodeInfo
	err := b.each(ctx, "node.*", func(e jetstream.KeyValueEntry) error {
		var doc nodeDoc
		if err := decode(e.Key(), e.Value(), &doc, &doc.V); err != nil {
			return err
		}
		out = append(out, NodeInfo{Node: doc.Node, StartedAt: doc.StartedAt, Owned: doc.Owned, Share: doc.Share,
			Draining: doc.Draining, Follower: doc.Follower, Moving: doc.Moving, Failing: doc.Failing, Written: e.Created()})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, err
}
