package tier2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc64"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/tracing"
)

func newClient(t *testing.T, s3 *harness.S3, mod func(*Options)) *Client {
	t.Helper()
	opts := Options{
		Endpoint:  s3.Endpoint,
		Bucket:    s3.Bucket,
		AccessKey: s3.AccessKey,
		SecretKey: s3.SecretKey,
		Retry:     RetryPolicy{MaxAttempts: 4, BaseDelay: 10 * time.Millisecond, AttemptTimeout: 5 * time.Second},
		Breaker:   BreakerPolicy{Failures: 3, Cooldown: 200 * time.Millisecond},
	}
	if mod != nil {
		mod(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := New(ctx, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func payload(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31) ^ seed
	}
	return b
}

func TestObjectLifecycleAgainstRealS3(t *testing.T) {
	s3 := harness.StartS3(t)
	c := newClient(t, s3, func(o *Options) { o.Prefix = "node-a/" })
	ctx := context.Background()
	data := payload(200_000, 1)
	key := SegmentKey("orders", 42)
	meta := ObjectMeta{Records: 1234, FirstOffset: 1000, LastOffset: 2233}

	res, err := c.UploadBytes(ctx, key, data, meta)
	if err != nil {
		t.Fatal(err)
	}
	if res.Skipped || res.ETag == "" {
		t.Fatalf("first upload: %+v, want a fresh upload with an ETag", res)
	}
	info, err := c.Stat(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	meta.CRC64 = crc64.Checksum(data, CRC64Table)
	if info.Size != int64(len(data)) || info.Meta != meta || info.ETag != res.ETag {
		t.Fatalf("Stat = %+v, want size %d, meta %+v, etag %s", info, len(data), meta, res.ETag)
	}
	// The prefix is applied on the wire.
	if _, err := s3.Client(t).StatObject(ctx, s3.Bucket, "node-a/segments/orders/42.zst", minioStatOpts()); err != nil {
		t.Fatalf("object not stored under the prefix: %v", err)
	}

	var buf bytes.Buffer
	got, err := c.Download(ctx, key, &buf)
	if err != nil || !bytes.Equal(buf.Bytes(), data) || got != meta {
		t.Fatalf("Download: err %v, equal %v, meta %+v", err, bytes.Equal(buf.Bytes(), data), got)
	}
	part, err := c.GetRange(ctx, key, 150_000, 1000)
	if err != nil || !bytes.Equal(part, data[150_000:151_000]) {
		t.Fatalf("GetRange: %v", err)
	}
	if _, err := c.GetRange(ctx, key, 199_990, 100); err == nil {
		t.Fatal("GetRange past the end succeeded")
	}

	c.UploadBytes(ctx, SegmentKey("orders", 43), payload(10, 2), ObjectMeta{})
	c.UploadBytes(ctx, ManifestKey("orders", 0), payload(10, 3), ObjectMeta{})
	list, err := c.List(ctx, "segments/orders/")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range list {
		keys = append(keys, o.Key)
	}
	if strings.Join(keys, ",") != "segments/orders/42.zst,segments/orders/43.zst" {
		t.Fatalf("List = %v", keys)
	}

	if err := c.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, key); err != nil {
		t.Fatalf("second Delete of the same key: %v (want idempotent)", err)
	}
	_, err = c.Stat(ctx, key)
	if !errors.Is(err, ErrNotFound) || Reason(err) != ReasonMissing {
		t.Fatalf("Stat after Delete: %v (reason %d), want ErrNotFound, reason 4", err, Reason(err))
	}
}

func TestReplayedUploadIsSkipped(t *testing.T) {
	s3 := harness.StartS3(t)
	c := newClient(t, s3, nil)
	ctx := context.Background()
	key := SegmentKey("s", 1)
	first, err := c.UploadBytes(ctx, key, payload(5000, 9), ObjectMeta{Records: 5})
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.UploadBytes(ctx, key, payload(5000, 9), ObjectMeta{Records: 5})
	if err != nil || !again.Skipped || again.ETag != first.ETag {
		t.Fatalf("replay: %+v, %v; want Skipped with ETag %s", again, err, first.ETag)
	}
	// Different bytes under the same key are uploaded, not skipped.
	changed, err := c.UploadBytes(ctx, key, payload(5000, 10), ObjectMeta{Records: 5})
	if err != nil || changed.Skipped {
		t.Fatalf("changed content: %+v, %v; want a real upload", changed, err)
	}
}

// An object whose bytes were damaged in the bucket while its metadata
// still names the good crc64 fools Upload's existence check (it skips);
// Replace writes the object regardless, and the good bytes read back.
func TestReplaceWritesOverADamagedObjectThatUploadWouldSkip(t *testing.T) {
	s3 := harness.StartS3(t)
	c := newClient(t, s3, nil)
	ctx := context.Background()
	key := SegmentKey("s", 7)
	good := payload(5000, 3)
	if _, err := c.UploadBytes(ctx, key, good, ObjectMeta{Records: 5}); err != nil {
		t.Fatal(err)
	}
	mc := s3.Client(t)
	info, err := mc.StatObject(ctx, s3.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	meta := map[string]string{}
	for k, v := range info.UserMetadata {
		meta[strings.TrimPrefix(strings.ToLower(k), "x-amz-meta-")] = v
	}
	damaged := bytes.Clone(good)
	damaged[2500] ^= 0xff
	if _, err := mc.PutObject(ctx, s3.Bucket, key, bytes.NewReader(damaged), int64(len(damaged)),
		minio.PutObjectOptions{UserMetadata: meta}); err != nil {
		t.Fatal(err)
	}
	if res, err := c.UploadBytes(ctx, key, good, ObjectMeta{Records: 5}); err != nil || !res.Skipped {
		t.Fatalf("Upload over the damaged object: %+v, %v; want it skipped (the hazard Replace avoids)", res, err)
	}
	res, err := c.Replace(ctx, key, bytes.NewReader(good), int64(len(good)), ObjectMeta{Records: 5})
	if err != nil || res.Skipped {
		t.Fatalf("Replace: %+v, %v; want a real write", res, err)
	}
	var got bytes.Buffer
	if _, err := c.Download(ctx, key, &got); err != nil || !bytes.Equal(got.Bytes(), good) {
		t.Fatalf("object after Replace: %v, equal to the good bytes %v", err, bytes.Equal(got.Bytes(), good))
	}
}

func TestCallerCRCMismatchIsRefusedAsCodecError(t *testing.T) {
	s3 := harness.StartS3(t)
	c := newClient(t, s3, nil)
	_, err := c.UploadBytes(context.Background(), "x", payload(100, 1), ObjectMeta{CRC64: 12345})
	if Reason(err) != ReasonCodec {
		t.Fatalf("got %v (reason %d), want reason 1", err, Reason(err))
	}
	if _, err := c.Stat(context.Background(), "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("object stored despite the crc mismatch: %v", err)
	}
}

func TestWrongSecretIsAuthFailureAndNotLeaked(t *testing.T) {
	s3 := harness.StartS3(t)
	const wrong = "WRONG-secret-4d9c-must-not-leak"
	_, err := New(context.Background(), Options{
		Endpoint: s3.Endpoint, Bucket: s3.Bucket, AccessKey: s3.AccessKey, SecretKey: wrong,
		Retry: RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond},
	})
	if err == nil {
		t.Fatal("New with a wrong secret succeeded")
	}
	if Reason(err) != ReasonAuth {
		t.Fatalf("reason %d for %v, want 2", Reason(err), err)
	}
	var oe *OpError
	if !errors.As(err, &oe) || oe.Attempts != 1 {
		t.Fatalf("auth failure retried: %#v", oe)
	}
	if strings.Contains(err.Error(), wrong) || strings.Contains(fmt.Sprintf("%+v", err), wrong) {
		t.Fatalf("secret appears in the error: %v", err)
	}
	// An unknown access key is an auth failure too.
	_, err = New(context.Background(), Options{Endpoint: s3.Endpoint, Bucket: s3.Bucket, AccessKey: "nobody", SecretKey: wrong})
	if Reason(err) != ReasonAuth || strings.Contains(err.Error(), wrong) {
		t.Fatalf("unknown access key: %v (reason %d)", err, Reason(err))
	}
}

func TestMissingBucketAndMissingKey(t *testing.T) {
	s3 := harness.StartS3(t)
	_, err := New(context.Background(), Options{Endpoint: s3.Endpoint, Bucket: "not-there", AccessKey: s3.AccessKey, SecretKey: s3.SecretKey})
	if !errors.Is(err, ErrBucketMissing) || Reason(err) != ReasonUnavailable {
		t.Fatalf("missing bucket: %v (reason %d), want ErrBucketMissing, reason 3", err, Reason(err))
	}
	c := newClient(t, s3, func(o *Options) { o.Bucket = "created-on-demand"; o.CreateBucket = true })
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"stat":      func() error { _, err := c.Stat(ctx, "nope"); return err },
		"download":  func() error { _, err := c.Download(ctx, "nope", new(bytes.Buffer)); return err },
		"get-range": func() error { _, err := c.GetRange(ctx, "nope", 0, 10); return err },
	} {
		err := call()
		var oe *OpError
		if Reason(err) != ReasonMissing || !errors.As(err, &oe) || oe.Attempts != 1 {
			t.Fatalf("%s of a missing key: %v (reason %d), want reason 4 without retries", name, err, Reason(err))
		}
	}
	if _, err := New(ctx, Options{Endpoint: "127.0.0.1:9000", Bucket: "b"}); err == nil {
		t.Fatal("endpoint without scheme accepted")
	}
}

func TestServerOutageRetriesOpensBreakerAndLosesNothing(t *testing.T) {
	s3 := harness.StartS3(t)
	reader := sdkmetric.NewManualReader()
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")
	c := newClient(t, s3, func(o *Options) {
		o.Instruments = instrumentsFor(t, meter)
		o.Retry = RetryPolicy{MaxAttempts: 3, BaseDelay: 20 * time.Millisecond, AttemptTimeout: 2 * time.Second}
		o.Breaker = BreakerPolicy{Failures: 4, Cooldown: 150 * time.Millisecond}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()

	// An upload worker as the store runs it: each object is retried until
	// it is confirmed; a breaker-open answer means wait and try again.
	const objects = 30
	var sawBreakerOpen, sawFailure atomic.Bool
	var mu sync.Mutex
	want := map[string][]byte{}
	done := make(chan error, 1)
	go func() {
		for i := range objects {
			key := SegmentKey("outage", uint64(i))
			data := payload(20_000+i, byte(i))
			mu.Lock()
			want[key] = data
			mu.Unlock()
			for {
				_, err := c.UploadBytes(ctx, key, data, ObjectMeta{Records: uint64(i)})
				if err == nil {
					break
				}
				sawFailure.Store(true)
				if errors.Is(err, ErrBreakerOpen) {
					sawBreakerOpen.Store(true)
				}
				if r := Reason(err); r != ReasonUnavailable && r != ReasonTransient {
					done <- fmt.Errorf("upload %s: unexpected reason %d: %w", key, r, err)
					return
				}
				if ctx.Err() != nil {
					done <- err
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond)
		}
		done <- nil
	}()

	time.Sleep(150 * time.Millisecond)
	s3.Stop()
	waitUntil(t, func() bool { return c.BreakerState() != BreakerClosed })
	time.Sleep(700 * time.Millisecond) // several cooldowns: probes fail and reopen the breaker
	s3.Start()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !sawFailure.Load() || !sawBreakerOpen.Load() {
		t.Fatalf("outage not observed: failure %v, breaker open %v", sawFailure.Load(), sawBreakerOpen.Load())
	}
	if c.BreakerState() != BreakerClosed {
		t.Fatalf("breaker %v after recovery, want closed", c.BreakerState())
	}
	if n := counter(t, reader, "upload_retry_attempts"); n == 0 {
		t.Fatal("upload_retry_attempts stayed 0 through an outage")
	}
	if n := counter(t, reader, "upload_failures"); n == 0 {
		t.Fatal("upload_failures stayed 0 through an outage")
	}
	list, err := c.List(ctx, "segments/outage/")
	if err != nil || len(list) != objects {
		t.Fatalf("after recovery %d objects listed (%v), want %d", len(list), err, objects)
	}
	for key, data := range want {
		var buf bytes.Buffer
		if _, err := c.Download(ctx, key, &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
			t.Fatalf("%s after recovery: %v", key, err)
		}
	}
}

// faultProxy sits between the client and versitygw and answers 503 to the
// first `fail` requests.
func faultProxy(t *testing.T, target string, fail int32) (*httptest.Server, *atomic.Int32) {
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	var left atomic.Int32
	left.Store(fail)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if left.Add(-1) >= 0 {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected</Message></Error>`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &left
}

func TestTransientServerErrorsAreRetriedWithinTheBudget(t *testing.T) {
	s3 := harness.StartS3(t)
	proxy, left := faultProxy(t, s3.Endpoint, 0)
	reader := sdkmetric.NewManualReader()
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")
	c := newClient(t, s3, func(o *Options) {
		o.Endpoint = proxy.URL
		o.Instruments = instrumentsFor(t, meter)
		o.Retry = RetryPolicy{MaxAttempts: 4, BaseDelay: 5 * time.Millisecond}
		o.Breaker = BreakerPolicy{Failures: 10, Cooldown: time.Second}
	})
	ctx := context.Background()
	left.Store(2)
	res, err := c.UploadBytes(ctx, "a", payload(1000, 1), ObjectMeta{})
	if err != nil || res.Attempts != 3 {
		t.Fatalf("upload through two 500s: %+v, %v; want success on attempt 3", res, err)
	}
	if n := counter(t, reader, "upload_retry_attempts"); n != 2 {
		t.Fatalf("upload_retry_attempts = %d, want 2", n)
	}
	left.Store(4)
	_, err = c.UploadBytes(ctx, "b", payload(1000, 2), ObjectMeta{})
	var oe *OpError
	if !errors.As(err, &oe) || oe.Attempts != 4 || Reason(err) != ReasonTransient {
		t.Fatalf("upload through four 500s: %v; want failure after 4 attempts, reason 0", err)
	}
	left.Store(1)
	if err := c.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if n := counter(t, reader, "delete_retry_attempts"); n != 1 {
		t.Fatalf("delete_retry_attempts = %d, want 1", n)
	}
}

func TestKeysFollowTheDesignLayout(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{SegmentKey("orders", 42), "segments/orders/42.zst"},
		{ManifestKey("orders", 7), "manifest/orders/7.mlog"},
		{SnapshotKey("orders", 3), "snapshots/orders/3.bin"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
	if s, id, ok := ParseSegmentKey("segments/orders/42.zst"); !ok || s != "orders" || id != 42 {
		t.Errorf("ParseSegmentKey = %s %d %v", s, id, ok)
	}
	for _, bad := range []string{"segments/orders/x.zst", "manifest/orders/1.mlog", "segments//1.zst", "segments/o/1.seg"} {
		if _, _, ok := ParseSegmentKey(bad); ok {
			t.Errorf("ParseSegmentKey accepted %q", bad)
		}
	}
}

func counter(t *testing.T, reader *sdkmetric.ManualReader, name string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				var total int64
				for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
					total += dp.Value
				}
				return total
			}
		}
	}
	return 0
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// instrumentsFor returns the gateway's instrument set on meter, as the
// gateway hands it to the client.
func instrumentsFor(t *testing.T, meter metric.Meter) *tracing.Instruments {
	t.Helper()
	in, err := tracing.NewInstruments(meter)
	if err != nil {
		t.Fatal(err)
	}
	return in
}
