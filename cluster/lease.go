package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Lease is one term of ownership of a partition.
type Lease struct {
	Partition int
	Node      string
	// Epoch is unique to this term and larger than every earlier owner's.
	Epoch uint64
	// Revision is the lease key's revision after this node's last write; the
	// next renewal or the release is expected at it.
	Revision uint64
}

// ErrLeaseLost wraps every error that means another node may own the
// partition now: the lease key was not at the revision this node last
// wrote, or this node could not renew it before its validity ran out.
var ErrLeaseLost = errors.New("lease lost")

// errLeaseHeld means a live lease exists: not an error, just not ours.
var errLeaseHeld = errors.New("lease held by another node")

// leaseDoc is the value of lease.<p>.
type leaseDoc struct {
	V          int       `json:"v"`
	Node       string    `json:"node"`
	Epoch      uint64    `json:"epoch"` // 0 between the Create and the epoch bump
	AcquiredAt time.Time `json:"acquired_at"`
	RenewedAt  time.Time `json:"renewed_at"`
}

// epochDoc is the value of epoch.<p>, which has no TTL.
type epochDoc struct {
	V         int       `json:"v"`
	Epoch     uint64    `json:"epoch"`
	Node      string    `json:"node"`
	UpdatedAt time.Time `json:"updated_at"`
}

// acquire tries to take partition p for node. It returns errLeaseHeld when
// a live lease exists, and the time the last lease write was sent, from
// which the caller's validity runs (see validUntil).
func (b *Bucket) acquire(ctx context.Context, p int, node string, ttl time.Duration) (Lease, time.Time, error) {
	now := time.Now()
	doc := leaseDoc{V: docVersion, Node: node, AcquiredAt: now.UTC(), RenewedAt: now.UTC()}
	rev, err := b.kv.Create(ctx, leaseKey(p), encode(doc), jetstream.KeyTTL(ttl))
	if isWrongLastSeq(err) {
		return Lease{}, time.Time{}, errLeaseHeld
	}
	if err != nil {
		return Lease{}, time.Time{}, fmt.Errorf("create %s: %w", leaseKey(p), err)
	}
	epoch, err := b.bumpEpoch(ctx, p, node)
	if err != nil {
		b.abandon(ctx, p, rev)
		return Lease{}, time.Time{}, err
	}
	doc.Epoch = epoch
	sent := time.Now()
	// The term starts with this write: renewals repeat its acquired_at.
	doc.AcquiredAt, doc.RenewedAt = sent.UTC(), sent.UTC()
	rev, err = b.updateTTL(ctx, leaseKey(p), encode(doc), rev, ttl)
	if err != nil {
		// The lease expired and was taken between the Create and now.
		return Lease{}, time.Time{}, fmt.Errorf("write epoch %d into %s: %w", epoch, leaseKey(p), lostIfMismatch(err))
	}
	return Lease{Partition: p, Node: node, Epoch: epoch, Revision: rev}, sent, nil
}

// abandon deletes a lease this node created but could not complete, at the
// Create's revision, so others need not wait for its TTL. Nothing ran under
// it, so deleting is safe; if it fails the TTL removes the key.
func (b *Bucket) abandon(ctx context.Context, p int, rev uint64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_ = b.kv.Delete(ctx, leaseKey(p), jetstream.LastRevision(rev))
}

// bumpEpoch raises epoch.<p> by one at its expected revision. Only the
// winner of the lease Create calls it, so a mismatch means this node's
// Create has expired and another winner bumped first: it lost.
func (b *Bucket) bumpEpoch(ctx context.Context, p int, node string) (uint64, error) {
	key := epochKey(p)
	var cur epochDoc
	var rev uint64
	e, err := b.kv.Get(ctx, key)
	switch {
	case err == nil:
		if err := decode(key, e.Value(), &cur, &cur.V); err != nil {
			return 0, err
		}
		rev = e.Revision()
	case !errors.Is(err, jetstream.ErrKeyNotFound):
		return 0, fmt.Errorf("read %s: %w", key, err)
	}
	next := epochDoc{V: docVersion, Epoch: cur.Epoch + 1, Node: node, UpdatedAt: time.Now().UTC()}
	if rev == 0 {
		_, err = b.kv.Create(ctx, key, encode(next))
	} else {
		_, err = b.kv.Update(ctx, key, encode(next), rev)
	}
	if err != nil {
		return 0, fmt.Errorf("bump %s to %d: %w", key, next.Epoch, lostIfMismatch(err))
	}
	return next.Epoch, nil
}

// renew extends l by one TTL from now. It returns ErrLeaseLost when the key
// is no longer at l.Revision, and the time the renewal was sent.
func (b *Bucket) renew(ctx context.Context, l Lease, acquiredAt time.Time, ttl time.Duration) (Lease, time.Time, error) {
	sent := time.Now()
	doc := leaseDoc{V: docVersion, Node: l.Node, Epoch: l.Epoch, AcquiredAt: acquiredAt.UTC(), RenewedAt: sent.UTC()}
	rev, err := b.updateTTL(ctx, leaseKey(l.Partition), encode(doc), l.Revision, ttl)
	if err != nil {
		return l, sent, fmt.Errorf("renew %s at revision %d: %w", leaseKey(l.Partition), l.Revision, lostIfMismatch(err))
	}
	l.Revision = rev
	return l, sent, nil
}

// adoptRevision resolves an ambiguous renewal: a renew whose reply was lost
// may have been stored, so the next one fails on a revision this node wrote
// itself. If the key still holds this very term (node and epoch, which no
// other term shares), l continues at the key's revision.
func (b *Bucket) adoptRevision(ctx context.Context, l Lease) (Lease, bool) {
	e, err := b.kv.Get(ctx, leaseKey(l.Partition))
	if err != nil {
		return l, false
	}
	var doc leaseDoc
	if decode(e.Key(), e.Value(), &doc, &doc.V) != nil || doc.Node != l.Node || doc.Epoch != l.Epoch || l.Epoch == 0 {
		return l, false
	}
	l.Revision = e.Revision()
	return l, true
}

// release deletes the lease at its revision, so a standby's Create
// succeeds at once instead of after the TTL.
func (b *Bucket) release(ctx context.Context, l Lease) error {
	if err := b.kv.Delete(ctx, leaseKey(l.Partition), jetstream.LastRevision(l.Revision)); err != nil {
		return fmt.Errorf("release %s at revision %d: %w", leaseKey(l.Partition), l.Revision, lostIfMismatch(err))
	}
	return nil
}

func lostIfMismatch(err error) error {
	if isWrongLastSeq(err) {
		return fmt.Errorf("%w: %w", ErrLeaseLost, err)
	}
	return err
}
