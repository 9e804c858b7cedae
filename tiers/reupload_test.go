package tiers

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/tier2"
)

// faultProxy is an HTTP proxy in front of versitygw that answers 503 to
// every PUT of a segment object while failPuts is set; other requests
// (HEAD, GET, LIST, DELETE, manifest uploads) pass through, so the bucket
// stays readable while segment uploads fail.
type faultProxy struct {
	srv      *httptest.Server
	failPuts atomic.Bool
	puts     atomic.Int64 // PUTs refused
}

func startFaultProxy(t *testing.T, s3 *harness.S3) *faultProxy {
	t.Helper()
	target, err := url.Parse(s3.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/segments/") && p.failPuts.Load() {
			p.puts.Add(1)
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>injected fault</Message></Error>`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// proxiedTier2 is faultTier2 through the proxy.
func proxiedTier2(t *testing.T, s3 *harness.S3, p *faultProxy) *tier2.Client {
	t.Helper()
	c, err := tier2.New(testCtx(t), tier2.Options{Endpoint: p.srv.URL, Bucket: s3.Bucket, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey,
		Retry:   tier2.RetryPolicy{MaxAttempts: 2, BaseDelay: 5 * time.Millisecond, MaxDelay: 20 * time.Millisecond, AttemptTimeout: 2 * time.Second},
		Breaker: tier2.BreakerPolicy{Failures: 3, Cooldown: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// corruptObject flips bytes in the middle of a bucket object and keeps
// its user metadata, so the recorded aof-crc64 still claims the original
// bytes. It returns the damaged bytes.
func corruptObject(t *testing.T, s3 *harness.S3, key string) []byte {
	t.Helper()
	ctx := testCtx(t)
	mc := s3.Client(t)
	obj, err := mc.GetObject(ctx, s3.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(obj)
	if err != nil {
		t.Fatal(err)
	}
	info, err := obj.Stat()
	if err != nil {
		t.Fatal(err)
	}
	obj.Close()
	meta := map[string]string{}
	for k, v := range info.UserMetadata {
		meta[strings.TrimPrefix(strings.ToLower(k), "x-amz-meta-")] = v
	}
	if meta["aof-crc64"] == "" {
		t.Fatalf("object %s has no aof-crc64 metadata to claim the original bytes: %v", key, info.UserMetadata)
	}
	for i := len(data) / 2; i < len(data)/2+8 && i < len(data); i++ {
		data[i] ^= 0xff
	}
	if _, err := mc.PutObject(ctx, s3.Bucket, key, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{UserMetadata: meta}); err != nil {
		t.Fatal(err)
	}
	return data
}

// A repair re-upload that Tier 2 refuses is not dropped: the segment keeps
// its local copy and the (damaged) object it is to replace, the upload is
// queued again and succeeds once Tier 2 accepts uploads, and the newer
// segments of the stream, which wait for it (uploads complete in segment
// order), follow without a restart. Every segment ends up in the bucket
// exactly once and every record reads back from Tier 2 alone.
func TestFailedReuploadIsRetriedUntilTier2Accepts(t *testing.T) {
	srv := harness.StartS3(t)
	proxy := startFaultProxy(t, srv)
	c := proxiedTier2(t, srv, proxy)
	s := openStore(t, Options{Root: t.TempDir(), SegmentTargetBytes: 4 << 10, Tier2: c,
		JobRetryBackoff: 50 * time.Millisecond})
	defer s.Close()
	const stream = "repair"
	ctx := testCtx(t)
	appendN(t, s, stream, 0, 60)
	if _, err := s.Seal(ctx, stream, false); err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, s, stream)
	before := sealedIDs(s, stream)
	if len(before) < 2 {
		t.Fatalf("want at least two sealed segments, got %v", before)
	}
	id := before[0]
	objKey := tier2.SegmentKey(stream, id)
	damaged := corruptObject(t, srv, objKey)

	proxy.failPuts.Store(true)
	if err := s.Reupload(ctx, stream, id); err == nil {
		t.Fatal("Reupload while Tier 2 refuses uploads returned nil")
	}
	// The object it is to replace is still there: a refused re-upload
	// removes nothing from Tier 2.
	if got := rawObject(t, srv, objKey); !bytes.Equal(got, damaged) {
		t.Fatalf("object %s after a refused re-upload: %d bytes, want the %d it had", objKey, len(got), len(damaged))
	}
	// The segment is not taken for uploaded, so its local copy stays.
	st := segmentStatus(t, s, stream, id)
	if st.InTier2 || !(st.InTier0 || st.InTier1) {
		t.Fatalf("segment %d after a refused re-upload: %+v, want not in tier 2 with a local copy", id, st)
	}
	if err := s.EvictLocal(ctx, stream, id); err == nil {
		t.Fatalf("EvictLocal of segment %d whose re-upload is unconfirmed succeeded", id)
	}
	if ms, _ := s.ManifestIndex(stream); func() bool { x, _ := ms.Get(id); return x.InTier2 }() {
		t.Fatalf("manifest still shows segment %d in tier 2 after its re-upload failed", id)
	}

	// Newer segments are sealed while Tier 2 refuses uploads.
	appendN(t, s, stream, 60, 60)
	if _, err := s.Seal(ctx, stream, false); err != nil {
		t.Fatal(err)
	}
	sealed := sealedIDs(s, stream)
	if len(sealed) <= len(before) {
		t.Fatalf("no newer segment sealed: %v", sealed)
	}
	waitFor(t, "the queued re-upload refused again", func() bool { return proxy.puts.Load() >= 4 })

	// Tier 2 accepts uploads again: no restart, no second Reupload call.
	proxy.failPuts.Store(false)
	waitUploaded(t, s, stream)
	if got := bucketSegments(t, c, stream); !equalIDs(got, sealed) {
		t.Fatalf("bucket holds segments %v, want every sealed one once %v", got, sealed)
	}
	var good bytes.Buffer
	if _, err := c.Download(ctx, objKey, &good); err != nil {
		t.Fatalf("repaired object %s: %v", objKey, err)
	}
	idx, _ := s.ManifestIndex(stream)
	for _, sid := range sealed {
		if ms, _ := idx.Get(sid); !ms.InTier2 || ms.ETag == "" {
			t.Fatalf("manifest for segment %d after the repair: %+v", sid, ms)
		}
	}
	if st := segmentStatus(t, s, stream, id); st.NeedsRecovery {
		t.Fatalf("repaired segment still needs recovery: %+v", st)
	}
	var failed, doneAfter bool
	for _, r := range manifestRecords(t, s, stream) {
		if r.Segment != id {
			continue
		}
		switch r.Type {
		case manifest.UploadFailed:
			failed = true
		case manifest.UploadDone:
			doneAfter = failed
		}
	}
	if !failed || !doneAfter {
		t.Fatalf("segment %d: UploadFailed %v, UploadDone after it %v; want both", id, failed, doneAfter)
	}
	evictAllSealed(t, s, stream)
	readAll(t, s, stream, 120)
}

// rawObject reads an object straight from the server, without the
// client's checksum verification.
func rawObject(t *testing.T, s3 *harness.S3, key string) []byte {
	t.Helper()
	obj, err := s3.Client(t).GetObject(context.Background(), s3.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	data, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return data
}

func segmentStatus(t *testing.T, s *Store, stream string, id uint64) SegmentStatus {
	t.Helper()
	for _, st := range s.Segments(stream) {
		if st.Segment == id {
			return st
		}
	}
	t.Fatalf("segment %d of %s not found", id, stream)
	return SegmentStatus{}
}

// A repair cut short by a restart still replaces the damaged object: the
// manifest stopped vouching for it before the upload (the reopened store
// keeps the local copy and queues the upload), and that upload writes the
// object instead of skipping it because the damaged object's metadata
// still names the checksum of the good bytes.
func TestRepairInterruptedByRestartReplacesTheDamagedObject(t *testing.T) {
	srv := harness.StartS3(t)
	proxy := startFaultProxy(t, srv)
	c := proxiedTier2(t, srv, proxy)
	root := t.TempDir()
	opts := Options{Root: root, SegmentTargetBytes: 4 << 10, Tier2: c, JobRetryBackoff: 50 * time.Millisecond}
	s := openStore(t, opts)
	const stream = "resume"
	ctx := testCtx(t)
	appendN(t, s, stream, 0, 60)
	if _, err := s.Seal(ctx, stream, false); err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, s, stream)
	id := sealedIDs(s, stream)[0]
	objKey := tier2.SegmentKey(stream, id)
	corruptObject(t, srv, objKey)
	proxy.failPuts.Store(true)
	if err := s.Reupload(ctx, stream, id); err == nil {
		t.Fatal("Reupload while Tier 2 refuses uploads returned nil")
	}
	s.Close()

	proxy.failPuts.Store(false)
	s = openStore(t, opts)
	defer s.Close()
	if st := segmentStatus(t, s, stream, id); st.InTier2 && !(st.InTier0 || st.InTier1) {
		t.Fatalf("segment %d after the restart: %+v, want its local copy kept until the re-upload is confirmed", id, st)
	}
	waitUploaded(t, s, stream)
	var buf bytes.Buffer
	if _, err := c.Download(ctx, objKey, &buf); err != nil {
		t.Fatalf("object %s after the resumed repair: %v, want the good bytes", objKey, err)
	}
	evictAllSealed(t, s, stream)
	readAll(t, s, stream, 60)
}

// A disaster while a repair re-upload waits for Tier 2: the bucket still
// holds the damaged object and the manifest in Tier 2 no longer shows it
// uploaded. Recovery counts the segment as lost (its sequences are stored
// again from the ingest stream) instead of failing on the object's
// checksum, and restores the rest.
func TestRecoveryCountsADamagedObjectAwaitingRepairAsLost(t *testing.T) {
	srv := harness.StartS3(t)
	proxy := startFaultProxy(t, srv)
	c := proxiedTier2(t, srv, proxy)
	s := openStore(t, Options{Root: t.TempDir(), SegmentTargetBytes: 4 << 10, Tier2: c,
		ManifestRotationPeriod: pruneRotation, JobRetryBackoff: 50 * time.Millisecond})
	const stream = "lost"
	ctx := testCtx(t)
	appendN(t, s, stream, 0, 60)
	if _, err := s.Seal(ctx, stream, false); err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, s, stream)
	sealed := sealedIDs(s, stream)
	id := sealed[0]
	corruptObject(t, srv, tier2.SegmentKey(stream, id))
	proxy.failPuts.Store(true)
	if err := s.Reupload(ctx, stream, id); err == nil {
		t.Fatal("Reupload while Tier 2 refuses segment uploads returned nil")
	}
	// A snapshot after the rotation period seals the manifest chunk that
	// holds the re-upload's UploadStarted; it reaches Tier 2.
	time.Sleep(pruneRotation + 10*time.Millisecond)
	if _, err := s.Snapshot(stream); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the manifest chunks in tier 2", func() bool {
		chunks, err := s.ManifestChunks(stream)
		if err != nil || len(chunks) < 2 {
			return false
		}
		for _, ci := range chunks[:len(chunks)-1] {
			if !ci.Header.Uploaded() {
				return false
			}
		}
		return true
	})
	s.Close()

	rep, err := RecoverFromTier2(ctx, RecoverOptions{Root: t.TempDir(), Tier2: c})
	if err != nil {
		t.Fatalf("recovery with a damaged object awaiting repair: %v", err)
	}
	sr := rep.Streams[0]
	if len(sr.NotInTier2) != 1 || sr.NotInTier2[0] != id {
		t.Fatalf("segments reported lost: %v, want [%d]", sr.NotInTier2, id)
	}
	if len(sr.Holes) != 1 || !slices.Contains(sr.Holes[0].Segments, id) || sr.Holes[0].From != 0 {
		t.Fatalf("lost sequences: %+v, want one range from the start holding segment %d", sr.Holes, id)
	}
}
