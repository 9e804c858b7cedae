package tier2

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc64"
	"io"
	"os"
)

// Bucket is Tier 2 as the layers above it see it: a flat key space of
// immutable objects that carry ObjectMeta, in the shape of Thanos'
// objstore.Bucket. The store, the manifest uploader, disaster recovery and
// the offline checks depend on it alone, so their logic is tested against
// an in-memory bucket (package tier2/memory) with no object server; Client,
// the minio-go client, is the production implementation, and
// TestBucketContract holds both to the contract below.
//
// Every implementation must:
//   - compute the crc64 (CRC64Table) of what Upload and Replace store,
//     refuse a caller's non-zero ObjectMeta.CRC64 that disagrees with a
//     *CorruptionError (reason 1), and store the computed one;
//   - skip an Upload whose key already holds an object of the same size and
//     crc64 (UploadResult.Skipped), so a replayed upload is idempotent;
//     Replace always writes, atomically (a reader sees the old object or
//     the new one);
//   - verify the crc64 in Get, returning a *CorruptionError on mismatch;
//   - report a missing object with an error wrapping ErrNotFound (reason 4)
//     from Get, GetRange and Attributes; Exists answers false, Delete
//     succeeds;
//   - list keys relative to the bucket's prefix, in key order.
//
// Retries and the circuit breaker are Client's own, for a server that is
// down or failing; an in-memory bucket has no outage to ride out.
type Bucket interface {
	// Upload stores size bytes from r (re-read from its start) under key.
	Upload(ctx context.Context, key string, r io.ReadSeeker, size int64, meta ObjectMeta) (UploadResult, error)
	// Replace is Upload without the skip: it always writes the object.
	Replace(ctx context.Context, key string, r io.ReadSeeker, size int64, meta ObjectMeta) (UploadResult, error)
	// Get writes the object to w, verifies its crc64 and returns its
	// metadata. On a *CorruptionError w holds bad bytes to discard.
	Get(ctx context.Context, key string, w io.Writer) (ObjectMeta, error)
	// GetRange returns n bytes of the object from off; a range past the
	// object's end is an error.
	GetRange(ctx context.Context, key string, off, n int64) ([]byte, error)
	// Attributes returns the object's size, ETag and metadata.
	Attributes(ctx context.Context, key string) (ObjectInfo, error)
	// Exists says whether key holds an object.
	Exists(ctx context.Context, key string) (bool, error)
	// Delete removes the object; deleting a missing object succeeds.
	Delete(ctx context.Context, key string) error
	// Iter calls f for every object whose key starts with prefix, in key
	// order, with Meta zero; an error from f stops it and is returned.
	Iter(ctx context.Context, prefix string, f func(ObjectInfo) error) error
}

var _ Bucket = (*Client)(nil)

// UploadBytes is Bucket.Upload for bytes in memory.
func UploadBytes(ctx context.Context, b Bucket, key string, data []byte, meta ObjectMeta) (UploadResult, error) {
	return b.Upload(ctx, key, bytes.NewReader(data), int64(len(data)), meta)
}

// ReplaceFile is Bucket.Replace for a local file.
func ReplaceFile(ctx context.Context, b Bucket, key, path string, meta ObjectMeta) (UploadResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return UploadResult{}, fmt.Errorf("tier2 upload %s: %w", key, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return UploadResult{}, fmt.Errorf("tier2 upload %s: %w", key, err)
	}
	return b.Replace(ctx, key, f, st.Size(), meta)
}

// List collects Iter's objects.
func List(ctx context.Context, b Bucket, prefix string) ([]ObjectInfo, error) {
	var out []ObjectInfo
	err := b.Iter(ctx, prefix, func(o ObjectInfo) error {
		out = append(out, o)
		return nil
	})
	return out, err
}

// Checksum is the crc64 of size bytes of r read from its start, the
// checksum every Bucket computes for what it uploads.
func Checksum(r io.ReadSeeker, size int64) (uint64, error) {
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("rewind source: %w", err)
	}
	h := crc64.New(CRC64Table)
	if n, err := io.Copy(h, io.LimitReader(r, size)); err != nil {
		return 0, fmt.Errorf("read source: %w", err)
	} else if n != size {
		return 0, fmt.Errorf("read source: %d bytes, want %d", n, size)
	}
	return h.Sum64(), nil
}

// Get is Download under the Bucket name.
func (c *Client) Get(ctx context.Context, key string, w io.Writer) (ObjectMeta, error) {
	return c.Download(ctx, key, w)
}

// Attributes is Stat under the Bucket name.
func (c *Client) Attributes(ctx context.Context, key string) (ObjectInfo, error) {
	return c.Stat(ctx, key)
}

// Exists says whether key holds an object (a HEAD request under the retry
// policy).
func (c *Client) Exists(ctx context.Context, key string) (bool, error) {
	_, err := c.Stat(ctx, key)
	if Reason(err) == ReasonMissing {
		return false, nil
	}
	return err == nil, err
}

// Iter lists under the retry policy, then calls f: a listing retried after
// a failed page never shows f a key twice.
func (c *Client) Iter(ctx context.Context, prefix string, f func(ObjectInfo) error) error {
	objs, err := c.List(ctx, prefix)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := f(o); err != nil {
			return err
		}
	}
	return nil
}
