package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultBucket is the KV bucket of leases, heartbeats and archived-through
// records (config cluster.bucket).
const DefaultBucket = "AOF_CLUSTER"

// markerTTL is how long the server keeps the marker it writes when a key's
// TTL runs out (KeyValueConfig.LimitMarkerTTL). The marker is what tells
// watchers that a lease expired; a minute is far longer than any watcher's
// lag and short enough that markers do not pile up.
const markerTTL = time.Minute

// BucketOptions describe the AOF_CLUSTER bucket.
type BucketOptions struct {
	Name     string // "" = DefaultBucket
	Replicas int    // 0 = 1; 3 on a NATS cluster
}

// Bucket is the handle on the cluster's KV bucket. It keeps the JetStream
// context beside the KeyValue because one write the KeyValue API lacks, an
// update at an expected revision that also sets the key's TTL, is a plain
// JetStream publish to the key's subject (see updateTTL).
//
// The bucket must live in the connection's own JetStream domain: the key
// subjects are built as $KV.<bucket>.<key>.
type Bucket struct {
	js jetstream.JetStream
	kv jetstream.KeyValue
}

// EnsureBucket creates the bucket or brings an existing one to o; calling it
// again with the same options changes nothing. Per-key TTLs are switched on
// (LimitMarkerTTL), which needs nats-server 2.11 or later.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, o BucketOptions) (*Bucket, error) {
	if o.Name == "" {
		o.Name = DefaultBucket
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         o.Name,
		Description:    "bop-aof partition leases, node heartbeats and archived-through records",
		History:        1,
		Replicas:       o.Replicas,
		Storage:        jetstream.FileStorage,
		LimitMarkerTTL: markerTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("ensure kv bucket %s: %w", o.Name, err)
	}
	return &Bucket{js: js, kv: kv}, nil
}

// OpenBucket binds to an existing bucket without changing it, for readers
// such as `aof2-admin cluster`.
func OpenBucket(ctx context.Context, js jetstream.JetStream, name string) (*Bucket, error) {
	if name == "" {
		name = DefaultBucket
	}
	kv, err := js.KeyValue(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("open kv bucket %s: %w", name, err)
	}
	return &Bucket{js: js, kv: kv}, nil
}

// KV is the underlying KeyValue store.
func (b *Bucket) KV() jetstream.KeyValue { return b.kv }

// Keys of the bucket. Partitions are decimal numbers, node ids and stream
// names are single tokens of [A-Za-z0-9_-] (config.ValidStreamName), which
// are valid KV key tokens as they are: no escaping is needed.
func leaseKey(p int) string            { return "lease." + strconv.Itoa(p) }
func epochKey(p int) string            { return "epoch." + strconv.Itoa(p) }
func nodeKey(id string) string         { return "node." + id }
func archivedKey(stream string) string { return "archived." + stream }

// updateTTL writes value to key only if the key's last revision is rev,
// and gives the new revision a TTL: the server removes the key ttl after
// this write unless it is written again. kv.Update cannot set a TTL, so this
// publishes to the key's subject with the same two expectations the
// KeyValue implementation uses (last sequence per subject, message TTL).
// A revision mismatch wraps jetstream.ErrKeyRevisionMismatch.
func (b *Bucket) updateTTL(ctx context.Context, key string, value []byte, rev uint64, ttl time.Duration) (uint64, error) {
	return b.publish(ctx, key, value, ttl, jetstream.WithExpectLastSequencePerSubject(rev))
}

// putTTL writes value to key unconditionally with a TTL.
func (b *Bucket) putTTL(ctx context.Context, key string, value []byte, ttl time.Duration) (uint64, error) {
	return b.publish(ctx, key, value, ttl)
}

func (b *Bucket) publish(ctx context.Context, key string, value []byte, ttl time.Duration, opts ...jetstream.PublishOpt) (uint64, error) {
	msg := &nats.Msg{Subject: "$KV." + b.kv.Bucket() + "." + key, Header: nats.Header{}, Data: value}
	opts = append(opts, jetstream.WithMsgTTL(ttl), jetstream.WithExpectStream("KV_"+b.kv.Bucket()))
	ack, err := b.js.PublishMsg(ctx, msg, opts...)
	if err != nil {
		if isWrongLastSeq(err) {
			return 0, fmt.Errorf("%w: %w", err, jetstream.ErrKeyRevisionMismatch)
		}
		return 0, err
	}
	return ack.Sequence, nil
}

// isWrongLastSeq reports a failed revision expectation. A replicated (R3)
// stream answers 10164 instead of 10071, and kv.Create does not map every
// case to ErrKeyExists, so both codes are checked here.
func isWrongLastSeq(err error) bool {
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// docVersion is the version of every JSON document this package writes.
// A reader refuses a newer version instead of misreading it.
const docVersion = 1

func encode(doc any) []byte {
	b, err := json.Marshal(doc)
	if err != nil {
		panic(fmt.Sprintf("cluster: encode %T: %v", doc, err)) // plain structs always encode
	}
	return b
}

// decode reads a versioned document; v is the document's "v" field.
func decode(key string, data []byte, doc any, v *int) error {
	if err := json.Unmarshal(data, doc); err != nil {
		return fmt.Errorf("decode %s: %w", key, err)
	}
	if *v != docVersion {
		return fmt.Errorf("decode %s: document version %d, this gateway reads version %d", key, *v, docVersion)
	}
	return nil
}
