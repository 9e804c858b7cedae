// Package memory is an in-memory tier2.Bucket for tests of the layers
// above Tier 2 (the store, the manifest uploader, disaster recovery, the
// offline checks): same contract as the minio client (TestBucketContract),
// no server. Fault hooks make the next uploads or reads fail and damage a
// stored object's bytes behind its metadata, as a disk of the object store
// would.
//
// It has no retries and no circuit breaker: a failure it is told to inject
// reaches the caller at once.
package memory

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bop-aof/aof/tiers/tier2"
)

// ErrInjected is the default error of an injected failure. tier2.Reason
// classifies it as transient (reason 0), like a failing server.
var ErrInjected = errors.New("memory bucket: injected failure")

// Bucket is an in-memory tier2.Bucket. It is safe for concurrent use.
type Bucket struct {
	mu      sync.Mutex
	objects map[string]object
	puts    faults
	gets    faults
	deletes faults
	// refuse, when set, fails every put of a key it returns an error for
	// (FailPutsWhere).
	refuse func(key string) error
	now    func() time.Time
}

type object struct {
	data     []byte
	meta     tier2.ObjectMeta
	etag     string
	modified time.Time
}

// faults are the failures still to inject into one kind of call.
type faults struct {
	n   int
	err error
}

// take consumes one injected failure, if any is left.
func (f *faults) take() error {
	if f.n == 0 {
		return nil
	}
	f.n--
	return f.err
}

var _ tier2.Bucket = (*Bucket)(nil)

// New returns an empty bucket.
func New() *Bucket {
	return &Bucket{objects: map[string]object{}, now: time.Now}
}

// FailPuts makes the next n Upload and Replace calls fail with err
// (ErrInjected when nil) without storing anything.
func (b *Bucket) FailPuts(n int, err error) { b.inject(&b.puts, n, err) }

// FailGets makes the next n Get, GetRange and Attributes calls fail with
// err (ErrInjected when nil).
func (b *Bucket) FailGets(n int, err error) { b.inject(&b.gets, n, err) }

// FailDeletes makes the next n Delete calls fail with err (ErrInjected
// when nil) without deleting anything.
func (b *Bucket) FailDeletes(n int, err error) { b.inject(&b.deletes, n, err) }

// FailPutsWhere makes every Upload and Replace of a key for which refuse
// returns an error fail with that error, without storing anything, until
// it is called again (nil: no longer). refuse runs under the bucket's
// lock: it must not call the bucket.
func (b *Bucket) FailPutsWhere(refuse func(key string) error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refuse = refuse
}

func (b *Bucket) inject(f *faults, n int, err error) {
	if err == nil {
		err = ErrInjected
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	f.n, f.err = n, err
}

// Corrupt flips the bits of the byte at off of key's object and keeps its
// metadata, so the metadata claims a crc64 the bytes no longer have: a
// following Get fails with a *tier2.CorruptionError. It reports whether
// the object exists and holds that byte.
func (b *Bucket) Corrupt(key string, off int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.objects[key]
	if !ok || off < 0 || off >= int64(len(o.data)) {
		return false
	}
	data := append([]byte(nil), o.data...)
	data[off] ^= 0xff
	o.data = data
	b.objects[key] = o
	return true
}

// Bytes returns a copy of key's object bytes, as stored.
func (b *Bucket) Bytes(key string) ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.objects[key]
	return append([]byte(nil), o.data...), ok
}

// Keys returns every key in order.
func (b *Bucket) Keys() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	keys := make([]string, 0, len(b.objects))
	for k := range b.objects {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Upload stores the object unless key already holds one of the same size
// and crc64.
func (b *Bucket) Upload(ctx context.Context, key string, r io.ReadSeeker, size int64, meta tier2.ObjectMeta) (tier2.UploadResult, error) {
	return b.put(ctx, key, r, size, meta, false)
}

// Replace always stores the object.
func (b *Bucket) Replace(ctx context.Context, key string, r io.ReadSeeker, size int64, meta tier2.ObjectMeta) (tier2.UploadResult, error) {
	return b.put(ctx, key, r, size, meta, true)
}

func (b *Bucket) put(ctx context.Context, key string, r io.ReadSeeker, size int64, meta tier2.ObjectMeta, replace bool) (tier2.UploadResult, error) {
	res := tier2.UploadResult{Attempts: 1}
	if err := ctx.Err(); err != nil {
		return res, opError("upload", key, err)
	}
	crc, err := tier2.Checksum(r, size)
	if err != nil {
		return res, opError("upload", key, err)
	}
	if meta.CRC64 != 0 && meta.CRC64 != crc {
		return res, opError("upload", key, &tier2.CorruptionError{Key: key, Want: meta.CRC64, Got: crc})
	}
	meta.CRC64 = crc
	data := make([]byte, size)
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return res, opError("upload", key, fmt.Errorf("rewind source: %w", err))
	}
	if _, err := io.ReadFull(r, data); err != nil {
		return res, opError("upload", key, fmt.Errorf("read source: %w", err))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.puts.take(); err != nil {
		return res, opError("upload", key, err)
	}
	if b.refuse != nil {
		if err := b.refuse(key); err != nil {
			return res, opError("upload", key, err)
		}
	}
	if old, ok := b.objects[key]; ok && !replace && old.meta.CRC64 == crc && int64(len(old.data)) == size {
		res.ETag, res.Skipped = old.etag, true
		return res, nil
	}
	sum := md5.Sum(data)
	o := object{data: data, meta: meta, etag: hex.EncodeToString(sum[:]), modified: b.now()}
	b.objects[key] = o
	res.ETag = o.etag
	return res, nil
}

// lookup returns key's object after the read faults.
func (b *Bucket) lookup(ctx context.Context, op, key string) (object, error) {
	if err := ctx.Err(); err != nil {
		return object{}, opError(op, key, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.gets.take(); err != nil {
		return object{}, opError(op, key, err)
	}
	o, ok := b.objects[key]
	if !ok {
		return object{}, opError(op, key, tier2.ErrNotFound)
	}
	return o, nil // o.data is never written in place
}

// Get writes the object to w and verifies its crc64.
func (b *Bucket) Get(ctx context.Context, key string, w io.Writer) (tier2.ObjectMeta, error) {
	o, err := b.lookup(ctx, "download", key)
	if err != nil {
		return tier2.ObjectMeta{}, err
	}
	if _, err := w.Write(o.data); err != nil {
		return tier2.ObjectMeta{}, opError("download", key, err)
	}
	if got := crc64.Checksum(o.data, tier2.CRC64Table); got != o.meta.CRC64 {
		return tier2.ObjectMeta{}, opError("download", key, &tier2.CorruptionError{Key: key, Want: o.meta.CRC64, Got: got})
	}
	return o.meta, nil
}

// GetRange returns n bytes from off.
func (b *Bucket) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	if off < 0 || n <= 0 {
		return nil, opError("get-range", key, fmt.Errorf("invalid range off=%d n=%d", off, n))
	}
	o, err := b.lookup(ctx, "get-range", key)
	if err != nil {
		return nil, err
	}
	if off+n > int64(len(o.data)) {
		return nil, opError("get-range", key, fmt.Errorf("range [%d, %d) past end of object of %d bytes", off, off+n, len(o.data)))
	}
	return append([]byte(nil), o.data[off:off+n]...), nil
}

// Attributes returns the object's size, ETag and metadata.
func (b *Bucket) Attributes(ctx context.Context, key string) (tier2.ObjectInfo, error) {
	o, err := b.lookup(ctx, "stat", key)
	if err != nil {
		return tier2.ObjectInfo{}, err
	}
	return tier2.ObjectInfo{Key: key, Size: int64(len(o.data)), ETag: o.etag, LastModified: o.modified, Meta: o.meta}, nil
}

// Exists says whether key holds an object.
func (b *Bucket) Exists(ctx context.Context, key string) (bool, error) {
	_, err := b.Attributes(ctx, key)
	if errors.Is(err, tier2.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Delete removes the object; a missing one is not an error.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return opError("delete", key, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.deletes.take(); err != nil {
		return opError("delete", key, err)
	}
	delete(b.objects, key)
	return nil
}

// Iter calls f for every object under prefix in key order. It works on a
// snapshot of the listing, so f may call the bucket.
func (b *Bucket) Iter(ctx context.Context, prefix string, f func(tier2.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return opError("list", prefix, err)
	}
	b.mu.Lock()
	var objs []tier2.ObjectInfo
	for k, o := range b.objects {
		if strings.HasPrefix(k, prefix) {
			objs = append(objs, tier2.ObjectInfo{Key: k, Size: int64(len(o.data)), ETag: o.etag, LastModified: o.modified})
		}
	}
	b.mu.Unlock()
	sort.Slice(objs, func(i, j int) bool { return objs[i].Key < objs[j].Key })
	for _, o := range objs {
		if err := f(o); err != nil {
			return err
		}
	}
	return nil
}

// opError gives memory errors the shape of the minio client's, so
// tier2.Reason and errors.As(*tier2.OpError) read them alike.
func opError(op, key string, err error) error {
	return tier2.NewOpError(op, "memory", key, 1, err)
}
