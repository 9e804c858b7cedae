package tiers

import (
	"bytes"
	"context"
	"errors"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/tier2"
)

// faultTier2 is a Tier 2 client against srv with a small retry policy and a
// breaker that opens after three failed attempts and probes after cooldown,
// so an outage is noticed, and left, within a second or two.
func faultTier2(t *testing.T, srv *harness.S3, cooldown time.Duration) *tier2.Client {
	t.Helper()
	c, err := tier2.New(testCtx(t), tier2.Options{Endpoint: srv.Endpoint, Bucket: srv.Bucket, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
		Retry:   tier2.RetryPolicy{MaxAttempts: 2, BaseDelay: 5 * time.Millisecond, MaxDelay: 20 * time.Millisecond, AttemptTimeout: 2 * time.Second},
		Breaker: tier2.BreakerPolicy{Failures: 3, Cooldown: cooldown}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sealedIDs lists the sealed segments of stream, oldest first.
func sealedIDs(s *Store, stream string) []uint64 {
	var ids []uint64
	for _, st := range s.Segments(stream) {
		if st.State != "active" {
			ids = append(ids, st.Segment)
		}
	}
	return ids
}

// bucketSegments lists the segment ids of stream present in the bucket.
func bucketSegments(t *testing.T, c *tier2.Client, stream string) []uint64 {
	t.Helper()
	ids, err := listSegments(c, stream)
	if err != nil {
		t.Fatalf("list bucket: %v", err)
	}
	return ids
}

// listSegments is bucketSegments for polling: a list that fails (the
// breaker may still be open after an outage) is an error, not a failure.
func listSegments(c *tier2.Client, stream string) ([]uint64, error) {
	objs, err := c.List(context.Background(), "segments/"+stream+"/")
	if err != nil {
		return nil, err
	}
	var ids []uint64
	for _, o := range objs {
		if _, id, ok := tier2.ParseSegmentKey(o.Key); ok {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, nil
}

// manifestRecords reads every committed record of stream's local manifest
// chunks, oldest first.
func manifestRecords(t *testing.T, s *Store, stream string) []manifest.Record {
	t.Helper()
	chunks, err := s.ManifestChunks(stream)
	if err != nil {
		t.Fatal(err)
	}
	var out []manifest.Record
	for _, ci := range chunks {
		data, err := os.ReadFile(ci.Path)
		if err != nil {
			t.Fatalf("read manifest chunk: %v", err)
		}
		_, recs, err := manifest.ReadChunk(data)
		if err != nil {
			t.Fatalf("manifest chunk %s: %v", ci.Path, err)
		}
		for _, cr := range recs {
			out = append(out, cr.Record)
		}
	}
	return out
}

func evictAllSealed(t *testing.T, s *Store, stream string) {
	t.Helper()
	for _, id := range sealedIDs(s, stream) {
		if err := evictIdle(testCtx(t), s, stream, id); err != nil {
			t.Fatalf("evict segment %d: %v", id, err)
		}
	}
}

// An S3 outage during uploads: appends and seals go on without an error to
// the appender, the failed uploads are recorded with reason 3 and leave the
// segments out of Tier 2, the client's breaker opens; once the server is
// back every sealed segment is uploaded and every record reads back from
// Tier 2 alone.
func TestTier2OutageDuringUploadsLosesNothing(t *testing.T) {
	srv := harness.StartS3(t)
	c := faultTier2(t, srv, 300*time.Millisecond)
	s := openStore(t, Options{Root: t.TempDir(), SegmentTargetBytes: 4 << 10, FrameBytes: 1 << 10, Tier2: c})
	defer s.Close()
	const stream = "outage"

	appendN(t, s, stream, 0, 100)
	if _, err := s.Seal(testCtx(t), stream, false); err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, s, stream)
	before := len(sealedIDs(s, stream))

	srv.Stop()
	outage := time.Now()
	// Appends and seals go on while Tier 2 is away (appendN fails the
	// test on any append error).
	appendN(t, s, stream, 100, 200)
	if _, err := s.Seal(testCtx(t), stream, false); err != nil {
		t.Fatalf("seal during the outage: %v", err)
	}
	sealed := sealedIDs(s, stream)
	if len(sealed) <= before+1 {
		t.Fatalf("want several segments sealed during the outage, got %d (had %d)", len(sealed)-before, before)
	}
	waitFor(t, "an UploadFailed (reason unavailable) for a segment sealed during the outage", func() bool {
		idx, err := s.ManifestIndex(stream)
		if err != nil {
			return false
		}
		for _, id := range sealed[before:] {
			st, ok := idx.Get(id)
			if ok && st.Failures > 0 && st.LastFailure == manifest.ReasonUnavailable && !st.InTier2 {
				return true
			}
		}
		return false
	})
	waitFor(t, "the tier 2 breaker open", func() bool { return c.BreakerState() == tier2.BreakerOpen })
	for _, st := range s.Segments(stream)[before:] {
		if st.InTier2 {
			t.Fatalf("segment %d in tier 2 while the server is down: %+v", st.Segment, st)
		}
		if st.NeedsRecovery {
			t.Fatalf("an outage made segment %d need recovery: %+v", st.Segment, st)
		}
	}
	// The outage is kept short: the store's own job backoff doubles from
	// 200 ms, so a long one would make the test wait long for the retry.
	if d := time.Until(outage.Add(1500 * time.Millisecond)); d > 0 {
		time.Sleep(d)
	}
	srv.Start()

	waitUploaded(t, s, stream)
	waitFor(t, "the breaker closed again", func() bool { return c.BreakerState() == tier2.BreakerClosed })
	if got := bucketSegments(t, c, stream); !equalIDs(got, sealed) {
		t.Fatalf("bucket holds segments %v, want every sealed one %v", got, sealed)
	}
	idx, _ := s.ManifestIndex(stream)
	for _, id := range sealed {
		if st, _ := idx.Get(id); !st.InTier2 || st.ETag == "" || st.NeedsRecovery {
			t.Fatalf("manifest after the outage, segment %d: %+v", id, st)
		}
	}
	evictAllSealed(t, s, stream)
	readAll(t, s, stream, 300)
}

func equalIDs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// An object whose bytes were changed in the bucket (metadata kept, so the
// recorded crc64 still claims the original bytes) is caught on hydration:
// the read fails with HydrationError reason 4, the segment needs recovery,
// and Reupload says there is no local copy to repair it from.
func TestCorruptTier2ObjectIsDetectedOnHydration(t *testing.T) {
	srv := harness.StartS3(t)
	c := faultTier2(t, srv, time.Second)
	s := openStore(t, Options{Root: t.TempDir(), SegmentTargetBytes: 4 << 10, Tier2: c})
	defer s.Close()
	const stream = "rot"
	ctx := testCtx(t)
	appendN(t, s, stream, 0, 40)
	id, err := s.Seal(ctx, stream, false)
	if err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, s, stream)
	if err := evictIdle(ctx, s, stream, id); err != nil {
		t.Fatal(err)
	}

	objKey := tier2.SegmentKey(stream, id)
	corruptObject(t, srv, objKey)

	r, err := s.Reader(stream)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = r.Next(ctx)
	var he *HydrationError
	if !errors.As(err, &he) || he.Reason != manifest.ReasonMissing || he.Segment != id || he.Stream != stream {
		t.Fatalf("read of a segment whose object is corrupt: %v, want HydrationError{%s, %d, reason 4}", err, stream, id)
	}
	st := s.Segments(stream)[0]
	if !st.NeedsRecovery || st.State != "needs_recovery" || st.InTier1 || st.InTier0 {
		t.Fatalf("segment after a corrupt hydration: %+v, want needs_recovery with no local copy", st)
	}
	idx, _ := s.ManifestIndex(stream)
	if ms, _ := idx.Get(id); !ms.NeedsRecovery || ms.Reason != manifest.ReasonMissing {
		t.Fatalf("manifest does not record needs-recovery reason 4: %+v", ms)
	}
	// A second read is refused at once with a clear error, not a retry.
	if _, err := r.Next(ctx); err == nil || !strings.Contains(err.Error(), "needs recovery") {
		t.Fatalf("second read of a needs-recovery segment: %v", err)
	}
	err = s.Reupload(ctx, stream, id)
	if err == nil || !strings.Contains(err.Error(), "no sealed local copy") {
		t.Fatalf("Reupload without any local copy: %v, want a 'no sealed local copy' error", err)
	}
	// The damaged object is left for the operator, not deleted by Reupload.
	if _, err := c.Stat(ctx, objKey); err != nil {
		t.Fatalf("the corrupt object should stay for inspection: %v", err)
	}
}

// Retention by bytes deletes exactly the oldest Tier 2 objects beyond
// retention.max_bytes, never the newest sealed segment, and records
// Tier2DeleteQueued and Tier2Deleted for each.
func TestRetentionMaxBytesDeletesExactlyTheOldestObjects(t *testing.T) {
	srv := harness.StartS3(t)
	c := faultTier2(t, srv, time.Second)
	root := t.TempDir()
	const stream = "keep"
	opts := Options{Root: root, SegmentTargetBytes: 4 << 10, Tier2: c}
	s := openStore(t, opts)
	appendN(t, s, stream, 0, 300)
	if _, err := s.Seal(testCtx(t), stream, false); err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, s, stream)
	var segs []SegmentStatus
	for _, st := range s.Segments(stream) {
		if st.State == "sealed" {
			segs = append(segs, st)
		}
	}
	if len(segs) < 6 {
		t.Fatalf("want at least 6 sealed segments, got %d", len(segs))
	}
	s.Close()

	// Keep about the newest three segments' worth of compressed bytes:
	// the oldest go until the rest fits.
	var total int64
	for _, st := range segs {
		if st.CompressedBytes <= 0 {
			t.Fatalf("segment %d has no compressed size: %+v", st.Segment, st)
		}
		total += st.CompressedBytes
	}
	n := len(segs)
	limit := segs[n-1].CompressedBytes + segs[n-2].CompressedBytes + segs[n-3].CompressedBytes
	var wantGone, wantKept []uint64
	rest := total
	for _, st := range segs {
		if rest > limit && st.Segment != segs[n-1].Segment {
			wantGone = append(wantGone, st.Segment)
			rest -= st.CompressedBytes
			continue
		}
		wantKept = append(wantKept, st.Segment)
	}

	opts.RetentionMaxBytes = limit
	s = openStore(t, opts)
	defer s.Close()
	waitFor(t, "retention to delete the oldest objects", func() bool {
		got, err := listSegments(c, stream)
		return err == nil && equalIDs(got, wantKept)
	})
	// Give the ticker another round: nothing more goes.
	time.Sleep(1200 * time.Millisecond)
	if got := bucketSegments(t, c, stream); !equalIDs(got, wantKept) {
		t.Fatalf("bucket after retention: %v, want %v (limit %d bytes)", got, wantKept, limit)
	}
	idx, _ := s.ManifestIndex(stream)
	for _, id := range wantGone {
		if st, _ := idx.Get(id); !st.Deleted || st.InTier2 {
			t.Fatalf("manifest for retired segment %d: %+v, want deleted", id, st)
		}
	}
	for _, id := range wantKept {
		if st, _ := idx.Get(id); st.Deleted || !st.InTier2 {
			t.Fatalf("manifest for kept segment %d: %+v", id, st)
		}
	}
	queued, deleted := map[uint64]bool{}, map[uint64]bool{}
	for _, r := range manifestRecords(t, s, stream) {
		switch r.Type {
		case manifest.Tier2DeleteQueued:
			queued[r.Segment] = true
		case manifest.Tier2Deleted:
			deleted[r.Segment] = true
		}
	}
	for _, id := range wantGone {
		if !queued[id] || !deleted[id] {
			t.Fatalf("segment %d: Tier2DeleteQueued %v, Tier2Deleted %v; want both", id, queued[id], deleted[id])
		}
	}
	if len(queued) != len(wantGone) || len(deleted) != len(wantGone) {
		t.Fatalf("delete records for %d/%d segments, want exactly %v", len(queued), len(deleted), wantGone)
	}
	// The retired offsets are gone; the kept ones read back.
	first := s.Segments(stream)[0]
	if first.Segment != wantKept[0] {
		t.Fatalf("first segment after retention %d, want %d", first.Segment, wantKept[0])
	}
	r, _ := s.Reader(stream)
	defer r.Close()
	if _, err := r.Next(testCtx(t)); !errors.Is(err, ErrOffsetNotFound) {
		t.Fatalf("read of a retired offset: %v, want ErrOffsetNotFound", err)
	}
	r.Seek(first.BaseOffset)
	for i := first.BaseOffset; i < 300; i++ {
		e, err := r.Next(testCtx(t))
		if err != nil || e.Offset != i || !bytes.Equal(e.Payload, payload(stream, int(i))) {
			t.Fatalf("offset %d after retention: %v %d", i, err, e.Offset)
		}
	}
}

// Retention never deletes the newest sealed segment, even when it alone is
// over the limit, nor a segment whose upload is not confirmed: with a
// one-byte limit only confirmed, older objects go.
func TestRetentionKeepsNewestSealedAndUnconfirmedSegments(t *testing.T) {
	srv := harness.StartS3(t)
	c := faultTier2(t, srv, 200*time.Millisecond)
	const stream = "tiny"
	now := &fakeClock{t: time.Now()}
	s := openStore(t, Options{Root: t.TempDir(), SegmentTargetBytes: 4 << 10, Tier2: c,
		RetentionMaxAge: time.Hour, Now: now.Now})
	defer s.Close()
	appendN(t, s, stream, 0, 100)
	if _, err := s.Seal(testCtx(t), stream, false); err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, s, stream)
	uploaded := sealedIDs(s, stream)

	// Segments sealed while Tier 2 is down are unconfirmed.
	srv.Stop()
	appendN(t, s, stream, 100, 60)
	if _, err := s.Seal(testCtx(t), stream, false); err != nil {
		t.Fatal(err)
	}
	unconfirmed := sealedIDs(s, stream)[len(uploaded):]
	// Everything is now older than max_age, but nothing can be deleted
	// while the server is down; and once it is back, the retention pass
	// must not touch the unconfirmed ones until their uploads are done.
	now.Add(2 * time.Hour)
	time.Sleep(1200 * time.Millisecond)
	for _, id := range unconfirmed {
		var found bool
		for _, st := range s.Segments(stream) {
			if st.Segment == id {
				found = st.InTier0 || st.InTier1
			}
		}
		if !found {
			t.Fatalf("unconfirmed segment %d lost its local copy during the outage", id)
		}
	}
	srv.Start()
	newest := unconfirmed[len(unconfirmed)-1]
	waitFor(t, "retention down to the newest sealed segment", func() bool {
		got, err := listSegments(c, stream)
		return err == nil && len(got) == 1 && got[0] == newest
	})
	time.Sleep(1200 * time.Millisecond)
	if got := bucketSegments(t, c, stream); len(got) != 1 || got[0] != newest {
		t.Fatalf("bucket after age retention: %v, want only the newest sealed segment %d", got, newest)
	}
	// Every deletion came after that segment's confirmed upload.
	confirmed := map[uint64]bool{}
	for _, r := range manifestRecords(t, s, stream) {
		switch r.Type {
		case manifest.UploadDone:
			confirmed[r.Segment] = true
		case manifest.Tier2DeleteQueued, manifest.Tier2Deleted:
			if !confirmed[r.Segment] {
				t.Fatalf("%s for segment %d before its UploadDone", r.Type, r.Segment)
			}
		}
	}
	r, _ := s.Reader(stream)
	defer r.Close()
	first := s.Segments(stream)[0]
	if first.Segment != newest {
		t.Fatalf("oldest remaining segment %d, want %d", first.Segment, newest)
	}
	r.Seek(first.BaseOffset)
	for i := first.BaseOffset; i < 160; i++ {
		if e, err := r.Next(testCtx(t)); err != nil || e.Offset != i {
			t.Fatalf("offset %d: %v", i, err)
		}
	}
}

// fakeClock is an Options.Now that tests move forward.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Ten readers of the same cold segment wait on one hydration: the manifest
// holds exactly one HydrationStarted for it, and every reader gets the
// same records.
func TestConcurrentReadersOfAColdSegmentShareOneDownload(t *testing.T) {
	srv := harness.StartS3(t)
	c := faultTier2(t, srv, time.Second)
	s := openStore(t, Options{Root: t.TempDir(), SegmentTargetBytes: 256 << 10, FrameBytes: 16 << 10, Tier2: c})
	defer s.Close()
	const stream = "cold"
	const n = 1500
	appendN(t, s, stream, 0, n)
	id, err := s.Seal(testCtx(t), stream, false)
	if err != nil {
		t.Fatal(err)
	}
	if segs := sealedIDs(s, stream); len(segs) != 1 || segs[0] != id {
		t.Fatalf("want one sealed segment, got %v", segs)
	}
	waitUploaded(t, s, stream)
	if err := evictIdle(testCtx(t), s, stream, id); err != nil {
		t.Fatal(err)
	}

	const readers = 10
	got := make([][]Entry, readers)
	errs := make([]error, readers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.Reader(stream)
			if err != nil {
				errs[g] = err
				return
			}
			defer r.Close()
			<-start
			for range n {
				e, err := r.Next(testCtx(t))
				if err != nil {
					errs[g] = err
					return
				}
				got[g] = append(got[g], Entry{Offset: e.Offset, ExtID: e.ExtID, Payload: bytes.Clone(e.Payload)})
			}
		}()
	}
	close(start)
	wg.Wait()
	for g := range readers {
		if errs[g] != nil {
			t.Fatalf("reader %d: %v", g, errs[g])
		}
		if len(got[g]) != n {
			t.Fatalf("reader %d got %d records, want %d", g, len(got[g]), n)
		}
		for i, e := range got[g] {
			if e.Offset != uint64(i) || e.ExtID != uint64(i+1) || !bytes.Equal(e.Payload, payload(stream, i)) ||
				!bytes.Equal(e.Payload, got[0][i].Payload) {
				t.Fatalf("reader %d offset %d: got offset %d ext %d payload %q", g, i, e.Offset, e.ExtID, e.Payload)
			}
		}
	}
	var started, done int
	for _, r := range manifestRecords(t, s, stream) {
		if r.Segment != id {
			continue
		}
		switch r.Type {
		case manifest.HydrationStarted:
			started++
		case manifest.HydrationDone:
			done++
		}
	}
	if started != 1 || done != 1 {
		t.Fatalf("segment %d: %d HydrationStarted and %d HydrationDone records for %d concurrent readers, want exactly 1 each",
			id, started, done, readers)
	}
}

func TestRetentionMaxAgeAppliesAfterRestart(t *testing.T) {
	srv := harness.StartS3(t)
	c := faultTier2(t, srv, time.Second)
	root := t.TempDir()
	const stream = "aged"
	clock := &fakeClock{t: time.Now()}
	opts := Options{Root: root, SegmentTargetBytes: 4 << 10, Tier2: c, RetentionMaxAge: time.Hour, Now: clock.Now}
	s := openStore(t, opts)
	appendN(t, s, stream, 0, 100)
	if _, err := s.Seal(testCtx(t), stream, false); err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, s, stream)
	sealed := sealedIDs(s, stream)
	s.Close()
	clock.Add(2 * time.Hour)
	s = openStore(t, opts)
	defer s.Close()
	waitFor(t, "retention after the restart", func() bool {
		got := bucketSegments(t, c, stream)
		return len(got) == 1 && got[0] == sealed[len(sealed)-1]
	})
}
