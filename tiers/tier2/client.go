// Package tier2 is the object store of the tiered store: Tier 2 is the
// durable copy of every sealed segment and of the manifest. The layers
// above depend on the Bucket interface (bucket.go); Client implements it
// for any S3-compatible server through minio-go, with its own retry policy
// and circuit breaker (minio-go's internal retries are turned off so
// attempts are counted and bounded here), and package tier2/memory
// implements it in memory for tests.
//
// # Object metadata
//
// Every uploaded object carries user metadata (x-amz-meta-*):
//
//	aof-crc64         CRC-64/NVME of the object bytes, 16 lowercase hex digits
//	aof-records       record count, decimal
//	aof-first-offset  first logical offset, decimal
//	aof-last-offset   last logical offset, decimal
//
// Upload computes the crc of the bytes it sends and refuses (reason 1) if
// the caller's ObjectMeta.CRC64 disagrees; Download checks it again. An
// upload whose key already holds an object with the same crc is skipped, so
// replaying an upload after a crash is idempotent. Replace skips that check
// and always writes: metadata can claim the right crc over damaged bytes.
//
// # Keys
//
// Keys passed to Client methods are relative to Options.Prefix (see
// SegmentKey, ManifestKey, SnapshotKey); List returns relative keys too.
//
// # Retries and the circuit breaker
//
// An attempt that fails because the store is failing or unreachable (reason
// 0 or 3) is retried up to Retry.MaxAttempts attempts in all, sleeping
// BaseDelay*2^(n-1) (capped at MaxDelay) scaled by a random factor in
// [1-Jitter, 1+Jitter]. The same failures feed a circuit breaker shared by
// all calls: after Breaker.Failures consecutive failures it opens and calls
// fail fast with ErrBreakerOpen (reason 3); after Cooldown one probe call
// goes through (half-open) and its outcome closes or reopens the breaker.
// Auth errors, missing objects and crc mismatches are answers, not outages:
// they are returned at once and reset the failure count.
package tier2

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/bop-aof/aof/tracing"
)

// CRC64Table is CRC-64/NVME, the checksum used across the store.
var CRC64Table = crc64.MakeTable(0x9a6c9329ac4bc9b5)

// RetryPolicy bounds retries of one call. Zero values take the defaults.
type RetryPolicy struct {
	MaxAttempts int           // attempts in all, including the first; default 5
	BaseDelay   time.Duration // delay before the 2nd attempt; default 100 ms
	MaxDelay    time.Duration // cap on one delay; default 5 s
	Jitter      float64       // 0..1, fraction of randomisation; default 0.2
	// AttemptTimeout bounds one attempt, so a stalled server counts as a
	// failure instead of hanging; default 60 s.
	AttemptTimeout time.Duration
}

// BreakerPolicy configures the circuit breaker. Zero values take the defaults.
type BreakerPolicy struct {
	Failures int           // consecutive failed attempts that open it; default 5
	Cooldown time.Duration // time open before a probe; default 10 s
}

// Options configures a Client.
type Options struct {
	// Endpoint is the server URL, http:// or https://, without a path.
	Endpoint  string
	Bucket    string
	AccessKey string
	SecretKey string
	// Region defaults to us-east-1.
	Region string
	// TLS configures https connections; CAFile adds a PEM CA bundle to it,
	// CertFile and KeyFile a client certificate (PEM, both or neither).
	TLS      *tls.Config
	CAFile   string
	CertFile string
	KeyFile  string
	// CreateBucket makes New create the bucket when it does not exist.
	CreateBucket bool
	// Prefix is prepended to every key, e.g. "cluster-a/".
	Prefix  string
	Retry   RetryPolicy
	Breaker BreakerPolicy
	Logger  *slog.Logger
	// Instruments counts retries and failures (shared with the rest of
	// the gateway, so the figures reach /metrics); nil counts nothing.
	Instruments *tracing.Instruments
}

// ObjectMeta is the user metadata of an object.
type ObjectMeta struct {
	CRC64       uint64
	Records     uint64
	FirstOffset uint64
	LastOffset  uint64
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key          string // relative to Options.Prefix
	Size         int64
	ETag         string
	LastModified time.Time
	Meta         ObjectMeta // zero in List results
}

// UploadResult is what Upload reports.
type UploadResult struct {
	ETag string
	// Skipped is true when the object was already there with the same crc.
	Skipped  bool
	Attempts int
}

const (
	metaCRC   = "aof-crc64"
	metaRecs  = "aof-records"
	metaFirst = "aof-first-offset"
	metaLast  = "aof-last-offset"
)

// Client is a Tier 2 client. It is safe for concurrent use.
type Client struct {
	mc     *minio.Client
	bucket string
	prefix string
	region string
	// access and secret are kept only to redact them from error messages.
	access       string
	secret       string
	createBucket bool
	health       health

	retryMu sync.RWMutex
	retry   RetryPolicy // guarded by retryMu after New
	breaker *breaker
	log     *slog.Logger

	// inst counts upload_retry_attempts, upload_failures and
	// delete_retry_attempts; nil counts nothing.
	inst *tracing.Instruments
}

// New builds a client (Open) and checks the bucket (CheckBucket). It fails
// with reason 2 for bad credentials and reason 3 for a missing bucket or an
// unreachable server.
func New(ctx context.Context, opts Options) (*Client, error) {
	c, err := Open(opts)
	if err != nil {
		return nil, err
	}
	if err := c.CheckBucket(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Open builds a client without contacting the store, so it works while the
// store is down. It fails only for options that can never work: an empty
// or invalid bucket name (ErrInvalidBucketName), a malformed endpoint, an
// unreadable CA file.
func Open(opts Options) (*Client, error) {
	c := &Client{bucket: opts.Bucket, prefix: opts.Prefix, access: opts.AccessKey, secret: opts.SecretKey,
		retry: opts.Retry, log: opts.Logger, createBucket: opts.CreateBucket}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.retry.MaxAttempts <= 0 {
		c.retry.MaxAttempts = 5
	}
	if c.retry.BaseDelay <= 0 {
		c.retry.BaseDelay = 100 * time.Millisecond
	}
	if c.retry.MaxDelay <= 0 {
		c.retry.MaxDelay = 5 * time.Second
	}
	if c.retry.Jitter < 0 || c.retry.Jitter > 1 {
		return nil, fmt.Errorf("tier2: retry jitter %v outside [0, 1]", c.retry.Jitter)
	} else if c.retry.Jitter == 0 {
		c.retry.Jitter = 0.2
	}
	if c.retry.AttemptTimeout <= 0 {
		c.retry.AttemptTimeout = 60 * time.Second
	}
	bp := opts.Breaker
	if bp.Failures <= 0 {
		bp.Failures = 5
	}
	if bp.Cooldown <= 0 {
		bp.Cooldown = 10 * time.Second
	}
	c.breaker = newBreaker(bp)
	if opts.Bucket == "" {
		return nil, fmt.Errorf("tier2: %w: bucket name is empty", ErrInvalidBucketName)
	}
	// minio-go refuses such a name before sending anything; saying so here
	// keeps it from reading as a transient failure retried forever.
	if err := s3utils.CheckValidBucketName(opts.Bucket); err != nil {
		return nil, fmt.Errorf("tier2: %w %q: %v", ErrInvalidBucketName, opts.Bucket, err)
	}

	u, err := url.Parse(opts.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("tier2: endpoint %q must be http://host[:port] or https://host[:port]", opts.Endpoint)
	}
	secure := u.Scheme == "https"
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = c.retry.AttemptTimeout
	if secure {
		tc := opts.TLS
		if tc == nil {
			tc = &tls.Config{MinVersion: tls.VersionTLS12}
		} else {
			tc = tc.Clone()
		}
		if opts.CAFile != "" {
			pem, err := os.ReadFile(opts.CAFile)
			if err != nil {
				return nil, fmt.Errorf("tier2: read CA file: %w", err)
			}
			pool := tc.RootCAs
			if pool == nil {
				if pool, err = x509.SystemCertPool(); err != nil {
					pool = x509.NewCertPool()
				}
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("tier2: CA file %s holds no PEM certificates", opts.CAFile)
			}
			tc.RootCAs = pool
		}
		if opts.CertFile != "" || opts.KeyFile != "" {
			cert, err := tls.LoadX509KeyPair(opts.CertFile, opts.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("tier2: client certificate: %w", err)
			}
			tc.Certificates = append(tc.Certificates, cert)
		}
		tr.TLSClientConfig = tc
	}
	c.region = opts.Region
	if c.region == "" {
		c.region = "us-east-1"
	}
	c.mc, err = minio.New(u.Host, &minio.Options{
		Creds:      credentials.NewStaticV4(opts.AccessKey, opts.SecretKey, ""),
		Secure:     secure,
		Region:     c.region,
		Transport:  tr,
		MaxRetries: 1, // retries are ours
	})
	if err != nil {
		return nil, c.opError("connect", "", 0, err)
	}
	c.inst = opts.Instruments
	return c, nil
}

// CheckBucket asks the store whether the bucket answers to the client's
// credentials, creating it when Options.CreateBucket is set. It runs under
// the retry policy and the breaker like every call. Refused tells a
// configuration the store refuses from a store that is down.
func (c *Client) CheckBucket(ctx context.Context) error {
	attempts, err := c.do(ctx, nil, func(ctx context.Context) error {
		// A one-key listing rather than HEAD bucket: HEAD responses have no
		// body, and some servers answer a bad access key on HEAD with a bare
		// 404 that reads as "no such bucket".
		lctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var err error
		for obj := range c.mc.ListObjects(lctx, c.bucket, minio.ListObjectsOptions{MaxKeys: 1}) {
			err = obj.Err
			break
		}
		if err == nil {
			return nil
		}
		if minio.ToErrorResponse(err).Code != "NoSuchBucket" {
			return err
		}
		if !c.createBucket {
			return ErrBucketMissing
		}
		err = c.mc.MakeBucket(ctx, c.bucket, minio.MakeBucketOptions{Region: c.region})
		if resp := minio.ToErrorResponse(err); resp.Code == "BucketAlreadyOwnedByYou" || resp.Code == "BucketAlreadyExists" {
			return nil
		}
		return err
	})
	if err != nil {
		err = c.opError("connect", "", attempts, err)
		c.health.noteCheck(err)
		return err
	}
	c.health.noteCheck(nil)
	return nil
}

// opError wraps err, keeping the secret key out of the message.
func (c *Client) opError(op, key string, attempts int, err error) error {
	if err == nil {
		return nil
	}
	oe := NewOpError(op, c.bucket, key, attempts, err)
	oe.msg = c.redact(oe.msg)
	return oe
}

// redact hides the keys in msg. Servers quote the access key id back
// ("InvalidAccessKeyId"); both keys are secrets of the configuration.
func (c *Client) redact(msg string) string {
	for _, s := range []string{c.secret, c.access} {
		if len(s) >= 3 {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	return msg
}

// BreakerState reports the circuit breaker's state.
func (c *Client) BreakerState() BreakerState { return c.breaker.State() }

// do runs attempt under the retry policy and the breaker. onRetry, when
// set, is called before every attempt after the first. It returns the
// number of attempts made.
func (c *Client) do(ctx context.Context, onRetry func(), attempt func(ctx context.Context) error) (int, error) {
	var err error
	n := 0
	pol := c.policy()
	for n < pol.MaxAttempts {
		if n > 0 {
			if werr := sleep(ctx, pol.backoff(n)); werr != nil {
				return n, errors.Join(err, werr)
			}
			if onRetry != nil {
				onRetry()
			}
		}
		if !c.breaker.allow() {
			if err == nil {
				return n, ErrBreakerOpen
			}
			return n, fmt.Errorf("%w (after: %w)", ErrBreakerOpen, err)
		}
		n++
		actx, cancel := context.WithTimeout(ctx, pol.AttemptTimeout)
		err = attempt(actx)
		cancel()
		if ctx.Err() != nil {
			// The caller gave up; that says nothing about the store.
			c.breaker.record(true)
			if err == nil {
				return n, nil
			}
			return n, fmt.Errorf("%w (last attempt: %w)", ctx.Err(), err)
		}
		failed := countsAgainstStore(err)
		c.breaker.record(!failed)
		c.noteAttempt(err, failed)
		if !failed {
			return n, err
		}
	}
	return n, err
}

func (p RetryPolicy) backoff(n int) time.Duration {
	d := p.BaseDelay << (n - 1)
	if d > p.MaxDelay || d <= 0 {
		d = p.MaxDelay
	}
	f := 1 + p.Jitter*(2*rand.Float64()-1)
	return time.Duration(float64(d) * f)
}

// Retry returns the retry policy in force, defaults filled in.
func (c *Client) Retry() RetryPolicy { return c.policy() }

// policy is the retry policy in force.
func (c *Client) policy() RetryPolicy {
	c.retryMu.RLock()
	defer c.retryMu.RUnlock()
	return c.retry
}

// SetBreaker changes the circuit breaker's thresholds at runtime
// (tier2.breaker.*); zero fields keep their value. An open breaker stays
// open until its (new) cooldown has passed.
func (c *Client) SetBreaker(p BreakerPolicy) { c.breaker.set(p) }

// SetRetry changes the retry policy at runtime (configuration reload).
// Zero fields keep their current value; calls in flight finish under the
// policy they started with.
func (c *Client) SetRetry(p RetryPolicy) error {
	if p.Jitter < 0 || p.Jitter > 1 {
		return fmt.Errorf("tier2: retry jitter %v outside [0, 1]", p.Jitter)
	}
	c.retryMu.Lock()
	defer c.retryMu.Unlock()
	if p.MaxAttempts > 0 {
		c.retry.MaxAttempts = p.MaxAttempts
	}
	if p.BaseDelay > 0 {
		c.retry.BaseDelay = p.BaseDelay
	}
	if p.MaxDelay > 0 {
		c.retry.MaxDelay = p.MaxDelay
	}
	if p.Jitter > 0 {
		c.retry.Jitter = p.Jitter
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) full(key string) string { return c.prefix + key }

// Upload stores size bytes from r under key with meta. r is re-read from
// its start for the crc and for every attempt. If the key already holds an
// object with the same crc64 the upload is skipped (Skipped, its ETag).
func (c *Client) Upload(ctx context.Context, key string, r io.ReadSeeker, size int64, meta ObjectMeta) (UploadResult, error) {
	return c.put(ctx, key, r, size, meta, false)
}

// Replace is Upload without the existence check: it always writes the
// object, atomically replacing what the key held (S3 PUT semantics: a
// reader sees the old object or the new one, never none). It is the upload
// for a key whose current object may be damaged while its metadata still
// claims the right crc64, which Upload would take for already done.
func (c *Client) Replace(ctx context.Context, key string, r io.ReadSeeker, size int64, meta ObjectMeta) (UploadResult, error) {
	return c.put(ctx, key, r, size, meta, true)
}

func (c *Client) put(ctx context.Context, key string, r io.ReadSeeker, size int64, meta ObjectMeta, replace bool) (UploadResult, error) {
	res, err := c.upload(ctx, key, r, size, meta, replace)
	if err != nil {
		c.inst.IncUploadFailure(context.Background())
		err = c.opError("upload", key, res.Attempts, err)
		c.log.Error("tier2_upload_failed", "bucket", c.bucket, "key", c.full(key), "bytes", size,
			"attempts", res.Attempts, "reason", Reason(err), "err", err)
		return res, err
	}
	c.log.Info("tier2_upload_success", "bucket", c.bucket, "key", c.full(key), "bytes", size,
		"etag", res.ETag, "skipped", res.Skipped, "attempts", res.Attempts, "crc64", fmt.Sprintf("%016x", meta.CRC64))
	return res, nil
}

func (c *Client) upload(ctx context.Context, key string, r io.ReadSeeker, size int64, meta ObjectMeta, replace bool) (UploadResult, error) {
	var res UploadResult
	crc, err := Checksum(r, size)
	if err != nil {
		return res, err
	}
	if meta.CRC64 != 0 && meta.CRC64 != crc {
		return res, &CorruptionError{Key: key, Want: meta.CRC64, Got: crc}
	}
	meta.CRC64 = crc
	userMeta := map[string]string{
		metaCRC:   fmt.Sprintf("%016x", meta.CRC64),
		metaRecs:  strconv.FormatUint(meta.Records, 10),
		metaFirst: strconv.FormatUint(meta.FirstOffset, 10),
		metaLast:  strconv.FormatUint(meta.LastOffset, 10),
	}
	res.Attempts, err = c.do(ctx, func() { c.inst.IncUploadRetry(context.Background()) }, func(ctx context.Context) error {
		if !replace {
			info, err := c.mc.StatObject(ctx, c.bucket, c.full(key), minio.StatObjectOptions{})
			if err == nil {
				if m, ok := parseMeta(info.UserMetadata); ok && m.CRC64 == meta.CRC64 && info.Size == size {
					res.ETag, res.Skipped = info.ETag, true
					return nil
				}
			} else if Reason(err) != ReasonMissing {
				return err
			}
		}
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("rewind source: %w", err)
		}
		up, err := c.mc.PutObject(ctx, c.bucket, c.full(key), io.LimitReader(r, size), size, minio.PutObjectOptions{
			UserMetadata:   userMeta,
			ContentType:    "application/octet-stream",
			SendContentMd5: true,
		})
		if err != nil {
			return err
		}
		res.ETag = up.ETag
		return nil
	})
	return res, err
}

// UploadBytes is Upload for bytes in memory.
func (c *Client) UploadBytes(ctx context.Context, key string, data []byte, meta ObjectMeta) (UploadResult, error) {
	return c.Upload(ctx, key, bytes.NewReader(data), int64(len(data)), meta)
}

// UploadFile is Upload for a local file.
func (c *Client) UploadFile(ctx context.Context, key, path string, meta ObjectMeta) (UploadResult, error) {
	return c.putFile(ctx, key, path, meta, false)
}

// ReplaceFile is Replace for a local file.
func (c *Client) ReplaceFile(ctx context.Context, key, path string, meta ObjectMeta) (UploadResult, error) {
	return c.putFile(ctx, key, path, meta, true)
}

func (c *Client) putFile(ctx context.Context, key, path string, meta ObjectMeta, replace bool) (UploadResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return UploadResult{}, c.opError("upload", key, 0, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return UploadResult{}, c.opError("upload", key, 0, err)
	}
	return c.put(ctx, key, f, st.Size(), meta, replace)
}

func parseMeta(m map[string]string) (ObjectMeta, bool) {
	get := func(name string) (string, bool) {
		for k, v := range m {
			if strings.EqualFold(strings.TrimPrefix(strings.ToLower(k), "x-amz-meta-"), name) {
				return v, true
			}
		}
		return "", false
	}
	var om ObjectMeta
	s, ok := get(metaCRC)
	if !ok {
		return om, false
	}
	var err error
	if om.CRC64, err = strconv.ParseUint(s, 16, 64); err != nil {
		return om, false
	}
	if s, ok := get(metaRecs); ok {
		om.Records, _ = strconv.ParseUint(s, 10, 64)
	}
	if s, ok := get(metaFirst); ok {
		om.FirstOffset, _ = strconv.ParseUint(s, 10, 64)
	}
	if s, ok := get(metaLast); ok {
		om.LastOffset, _ = strconv.ParseUint(s, 10, 64)
	}
	return om, true
}

// notFound turns minio's "no such key" into ErrNotFound, keeping the cause.
func notFound(err error) error {
	if err != nil && Reason(err) == ReasonMissing && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// Stat returns the object's size, ETag and metadata. A missing object
// gives an error wrapping ErrNotFound (reason 4).
func (c *Client) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	var out ObjectInfo
	n, err := c.do(ctx, nil, func(ctx context.Context) error {
		info, err := c.mc.StatObject(ctx, c.bucket, c.full(key), minio.StatObjectOptions{})
		if err != nil {
			return notFound(err)
		}
		out = ObjectInfo{Key: key, Size: info.Size, ETag: info.ETag, LastModified: info.LastModified}
		out.Meta, _ = parseMeta(info.UserMetadata)
		return nil
	})
	return out, c.opError("stat", key, n, err)
}

// Download writes the object to w and returns its metadata. It verifies the
// crc64 (a mismatch is a *CorruptionError, reason 1; w then holds bad
// bytes the caller must discard). Attempts are retried only while nothing
// has been written to w.
func (c *Client) Download(ctx context.Context, key string, w io.Writer) (ObjectMeta, error) {
	var meta ObjectMeta
	var written int64
	n, err := c.do(ctx, nil, func(ctx context.Context) error {
		if written > 0 {
			return fmt.Errorf("download interrupted after %d bytes: %w", written, errNoRetry)
		}
		obj, err := c.mc.GetObject(ctx, c.bucket, c.full(key), minio.GetObjectOptions{})
		if err != nil {
			return notFound(err)
		}
		defer obj.Close()
		info, err := obj.Stat()
		if err != nil {
			return notFound(err)
		}
		m, hasCRC := parseMeta(info.UserMetadata)
		h := crc64.New(CRC64Table)
		cw := &countWriter{w: io.MultiWriter(w, h), n: &written}
		if _, err := io.Copy(cw, obj); err != nil {
			return notFound(err)
		}
		if hasCRC && h.Sum64() != m.CRC64 {
			return &CorruptionError{Key: key, Want: m.CRC64, Got: h.Sum64()}
		}
		meta = m
		return nil
	})
	return meta, c.opError("download", key, n, err)
}

var errNoRetry = errors.New("not retryable")

type countWriter struct {
	w io.Writer
	n *int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	*c.n += int64(n)
	return n, err
}

// GetRange returns n bytes of the object from off (a ranged GET), so a
// reader can fetch one frame of an artifact without the whole object.
func (c *Client) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	if off < 0 || n <= 0 {
		return nil, c.opError("get-range", key, 0, fmt.Errorf("invalid range off=%d n=%d", off, n))
	}
	var out []byte
	attempts, err := c.do(ctx, nil, func(ctx context.Context) error {
		opts := minio.GetObjectOptions{}
		if err := opts.SetRange(off, off+n-1); err != nil {
			return err
		}
		obj, err := c.mc.GetObject(ctx, c.bucket, c.full(key), opts)
		if err != nil {
			return notFound(err)
		}
		defer obj.Close()
		buf := make([]byte, n)
		got, err := io.ReadFull(obj, buf)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return notFound(err)
		}
		if int64(got) != n {
			return fmt.Errorf("range [%d, %d) past end of object: got %d bytes: %w", off, off+n, got, errNoRetry)
		}
		out = buf
		return nil
	})
	return out, c.opError("get-range", key, attempts, err)
}

// Delete removes the object. Deleting a missing object succeeds (S3
// semantics), so a replayed delete is idempotent.
func (c *Client) Delete(ctx context.Context, key string) error {
	n, err := c.do(ctx, func() { c.inst.IncDeleteRetry(context.Background()) }, func(ctx context.Context) error {
		return c.mc.RemoveObject(ctx, c.bucket, c.full(key), minio.RemoveObjectOptions{})
	})
	return c.opError("delete", key, n, err)
}

// List returns every object whose key starts with prefix (relative to
// Options.Prefix), in key order.
func (c *Client) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	var out []ObjectInfo
	n, err := c.do(ctx, nil, func(ctx context.Context) error {
		out = out[:0]
		for obj := range c.mc.ListObjects(ctx, c.bucket, minio.ListObjectsOptions{Prefix: c.full(prefix), Recursive: true}) {
			if obj.Err != nil {
				return obj.Err
			}
			out = append(out, ObjectInfo{Key: strings.TrimPrefix(obj.Key, c.prefix), Size: obj.Size, ETag: obj.ETag, LastModified: obj.LastModified})
		}
		return nil
	})
	return out, c.opError("list", prefix, n, err)
}
