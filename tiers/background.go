package tiers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/segment"
	"github.com/bop-aof/aof/tiers/tier1"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tracing"
)

// jobKind names the background job types.
type jobKind int

const (
	jobCompress jobKind = iota
	jobUpload
)

func (k jobKind) String() string {
	if k == jobCompress {
		return "compress"
	}
	return "upload"
}

type job struct {
	kind    jobKind
	log     *Log
	segment uint64
	// link is the span of the work that caused the job (the seal), so the
	// compress and upload spans join the segment's trace.
	link trace.SpanContext
	// queued is when the job was first queued: compression waits for
	// ingest at most Options.CompressDefer after it (pacing.go).
	queued time.Time
	// attempt counts failed tries, for backoff.
	attempt int
	// repair marks the upload of a Reupload: its success also clears the
	// segment's needs-recovery mark.
	repair bool
	// replace makes a compression write the artifact again even though
	// the cache holds one (a repair found it damaged).
	replace bool
}

// jobQueue is an unbounded FIFO: a seal must never block on a full queue,
// and at boot every pending job of every stream is queued at once.
type jobQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []job
	closed bool
	// workers is how many worker goroutines serve the queue, target how
	// many should: a surplus worker leaves at its next pop.
	workers, target int
}

func newJobQueue() *jobQueue {
	q := &jobQueue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *jobQueue) push(j job) {
	q.mu.Lock()
	if !q.closed {
		q.items = append(q.items, j)
		q.cond.Signal()
	}
	q.mu.Unlock()
}

// pop returns the next job, or false when the queue is closed or this
// worker is one more than the target and should leave.
func (q *jobQueue) pop() (job, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		switch {
		case q.closed:
			return job{}, false
		case q.workers > q.target:
			q.workers--
			return job{}, false
		case len(q.items) > 0:
			j := q.items[0]
			q.items = q.items[1:]
			return j, true
		}
		q.cond.Wait()
	}
}

// setWorkers makes n workers serve the queue: spawn starts each one
// missing; surplus ones leave after their current job.
func (q *jobQueue) setWorkers(n int, spawn func()) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.target = n
	for ; q.workers < n; q.workers++ {
		spawn()
	}
	q.cond.Broadcast()
}

// size is how many workers serve the queue now.
func (q *jobQueue) size() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.workers
}

func (q *jobQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

func (q *jobQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

// background runs the work that moves sealed segments down the tiers and
// back: compression into Tier 1, upload to Tier 2, hydration, age-based
// rollover and retention.
type background struct {
	// retryBackoff and maxRetries are tier1.retry_backoff and
	// tier1.max_retries, which a reload may change while jobs fail.
	retryBackoff atomic.Int64 // nanoseconds
	maxRetries   atomic.Int64
	// asyncMu orders goroutines started on demand (retireLostAsync)
	// against stop: none starts once stopping is set.
	asyncMu  sync.Mutex
	stopping bool
	s        *Store
	cache    *tier1.Cache
	hydrator *hydrationQueue
	compress *jobQueue
	upload   *jobQueue
	// niceWarned is set once a compression worker could not lower its
	// thread's priority (logged once).
	niceWarned atomic.Bool
	// marks keeps uploads and retirement of a segment apart.
	marks *uploadMarks

	wg sync.WaitGroup
}

func newBackground(s *Store) (*background, error) {
	b := &background{s: s, compress: newJobQueue(), upload: newJobQueue(), marks: newUploadMarks()}
	cache, err := tier1.NewCache(tier1.CacheOptions{
		Root:     s.opts.Root,
		FS:       s.fs,
		MaxBytes: s.opts.Tier1MaxBytes,
		Logger:   s.log,
	})
	if err != nil {
		return nil, fmt.Errorf("tiers: tier1 cache: %w", err)
	}
	if err := cache.Scan(); err != nil {
		return nil, fmt.Errorf("tiers: scan tier1: %w", err)
	}
	b.cache = cache
	b.hydrator = newHydrationQueue(b.hydrate, s.opts.HydrationWorkers, s.log)
	if in := s.opts.Instruments; in != nil {
		in.RegisterGauge(tracing.MetricCompressionQueueDepth, func() int64 { return int64(b.compress.len()) })
		in.RegisterGauge(tracing.MetricHydrationQueueDepth, b.hydrator.QueueDepth)
		in.RegisterGauge(tracing.MetricTier1Bytes, func() int64 { return b.cache.Stats().Bytes })
	}
	return b, nil
}

// setJobRetry sets the first retry delay of a failed compression or
// upload and the attempt from which failures are logged as errors.
func (b *background) setJobRetry(backoff time.Duration, maxRetries int) {
	if backoff > 0 {
		b.retryBackoff.Store(int64(backoff))
	}
	if maxRetries > 0 {
		b.maxRetries.Store(int64(maxRetries))
	}
}

func (b *background) start() {
	b.setJobRetry(b.s.opts.JobRetryBackoff, b.s.opts.JobMaxRetries)
	b.setWorkers(b.compress, b.s.opts.CompressionWorkers)
	b.setWorkers(b.upload, b.s.opts.Tier2Concurrency)
	b.wg.Add(2)
	go b.ticker()
	go b.evictTier1Loop()
}

// setWorkers resizes the worker pool of q; nothing starts once stopping.
func (b *background) setWorkers(q *jobQueue, n int) {
	b.asyncMu.Lock()
	defer b.asyncMu.Unlock()
	if b.stopping {
		return
	}
	q.setWorkers(n, func() {
		b.wg.Add(1)
		if q == b.compress {
			go runLowered(func() { b.worker(q) }, b.priorityUnchanged)
			return
		}
		go b.worker(q)
	})
}

// backgroundNice is the nice value of the compression workers' threads.
// On a busy CPU the kernel then runs ingest's threads first and
// compression in what is left, so that compressing a sealed segment does
// not add its frames' time to the latency of the messages arriving
// meanwhile. Not lower: a worker briefly holds a stream's manifest when
// it records the compression.
const backgroundNice = 10

// priorityUnchanged logs, once, that a compression worker runs at the
// process's priority. Compression workers run on threads of their own at
// nice backgroundNice (runLowered, priority_linux.go). OS priority only
// counts between threads that hold a Go processor, which is why the
// gateway keeps GOMAXPROCS above the compression workers (cmd/aof-gateway,
// ensureProcs).
func (b *background) priorityUnchanged(err error) {
	if b.niceWarned.CompareAndSwap(false, true) {
		b.s.log.Debug("compression_priority_unchanged", "err", err)
	}
}

func (b *background) stop() {
	b.asyncMu.Lock()
	b.stopping = true
	b.asyncMu.Unlock()
	b.compress.close()
	b.upload.close()
	b.hydrator.Close()
	b.wg.Wait()
}

func (b *background) tier1Has(stream string, id uint64) bool {
	return b.cache.Contains(tier1.Key{Stream: stream, Segment: id})
}

func (b *background) enqueueCompress(l *Log, id uint64) {
	b.compress.push(job{kind: jobCompress, log: l, segment: id, queued: b.s.opts.Now()})
}

func (b *background) enqueueCompressCtx(ctx context.Context, l *Log, id uint64) {
	b.compress.push(job{kind: jobCompress, log: l, segment: id, queued: b.s.opts.Now(),
		link: trace.SpanContextFromContext(ctx)})
}

func (b *background) enqueueUpload(l *Log, id uint64) {
	if b.s.opts.Tier2 == nil {
		return
	}
	b.upload.push(job{kind: jobUpload, log: l, segment: id})
}

func (b *background) worker(q *jobQueue) {
	defer b.wg.Done()
	for {
		j, ok := q.pop()
		if !ok {
			return
		}
		var err error
		switch j.kind {
		case jobCompress:
			err = b.runCompress(j)
		case jobUpload:
			err = b.runUpload(j)
		}
		if err == nil || b.s.ctx.Err() != nil {
			continue
		}
		b.retryLater(q, j, err)
	}
}

// retryLater queues a failed job again. An upload whose turn has not come
// (an older segment of the stream is still uploading) waits turnWait
// without counting as a failure; any other failure is retried with capped
// exponential backoff (the manifest already holds the failure record with
// its reason). A job is never given up: a segment that cannot reach Tier 1
// or Tier 2 cannot leave the tier above, and because uploads of a stream
// complete in segment order, a dropped upload would stall every newer
// segment of its stream. Past JobMaxRetries each failure is an error.
func (b *background) retryLater(q *jobQueue, j job, err error) {
	delay := turnWait
	if !errors.Is(err, errNotYourTurn) && !errors.Is(err, errSegmentDropping) {
		j.attempt++
		delay = min(time.Duration(b.retryBackoff.Load())<<min(j.attempt-1, 10), 30*time.Second)
		if int64(j.attempt) >= b.maxRetries.Load() {
			b.s.log.Error("background_job_failing", "stream", j.log.name, "segment", j.segment,
				"job", j.kind.String(), "attempts", j.attempt, "retry_in", delay, "err", err)
		}
	}
	go func() {
		select {
		case <-b.s.ctx.Done():
		case <-time.After(delay):
			q.push(j)
		}
	}()
}

// ticker drives age-based rollover and retention.
func (b *background) ticker() {
	defer b.wg.Done()
	period := time.Second
	if age := b.s.opts.SegmentMaxAge; age > 0 && age/4 < period {
		period = max(age/4, 10*time.Millisecond)
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-b.s.ctx.Done():
			return
		case <-t.C:
		}
		for _, name := range b.s.Streams() {
			l, err := b.s.existing(name)
			if err != nil {
				continue
			}
			if err := l.MaybeRollByAge(b.s.ctx); err != nil {
				b.s.log.Warn("segment_rollover_failed", "stream", name, "err", err)
			}
			if err := b.applyRetention(b.s.ctx, l); err != nil {
				b.s.log.Warn("retention_failed", "stream", name, "err", err)
			}
			l.maybeSnapshot()
		}
	}
}

func (b *background) startSpan(j job, name string) (context.Context, trace.Span) {
	opts := []trace.SpanStartOption{trace.WithAttributes(
		tracing.AttrStream.String(j.log.name), tracing.AttrSegment.Int64(int64(j.segment)))}
	if j.link.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: j.link}))
	}
	return b.s.opts.Tracer.Start(b.s.ctx, name, opts...)
}

// runCompress writes the Tier 1 artifact of a sealed segment.
func (b *background) runCompress(j job) error {
	l := j.log
	ctx, span := b.startSpan(j, tracing.SpanTier1Compress)
	defer span.End()
	key := tier1.Key{Stream: l.name, Segment: j.segment}
	if !j.replace && b.cache.Contains(key) {
		return b.afterCompress(ctx, j, 0)
	}
	if err := l.record(manifest.Record{Type: manifest.CompressionStarted, Segment: j.segment,
		Payload: manifest.CompressionStartedPayload{JobID: uint32(j.segment)}}); err != nil {
		return err
	}
	path := filepath.Join(l.dir0, segment.FileName(j.segment))
	bounds, size, err := recordBoundaries(b.s, path)
	deferred := false // the pacer made it wait for ingest
	if err == nil {
		var art tier1.Artifact
		_, err = b.cache.Put(key, func(w io.Writer) error {
			f, err := b.s.fs.OpenFile(path, 0, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			art, err = tier1.Compress(w, f, size, bounds, tier1.CompressOptions{
				FrameBytes: b.s.opts.FrameBytes, Level: b.s.opts.CompressionLevel,
				BeforeFrame: func() {
					if b.s.pacer.wait(b.s.ctx, j.queued) {
						deferred = true
					}
				}})
			return err
		})
		if err == nil {
			span.SetAttributes(tracing.AttrBytes.Int64(art.CompressedBytes))
			b.s.log.Info("tier1_compression_success", "stream", l.name, "segment", j.segment,
				"bytes", size, "compressed_bytes", art.CompressedBytes, "frames", art.Frames,
				"deferred_for_ingest", deferred, "since_queued", b.s.opts.Now().Sub(j.queued).Round(time.Millisecond))
			return b.afterCompress(ctx, j, art.CompressedBytes)
		}
	}
	reason := manifest.ReasonTransient
	var ce *segment.CorruptionError
	if errors.As(err, &ce) {
		reason = manifest.ReasonCodec
	}
	span.RecordError(err)
	span.SetAttributes(tracing.AttrReasonCode.Int64(int64(reason)))
	b.s.log.Error("tier1_compression_failed", "stream", l.name, "segment", j.segment, "reason", reason, "err", err)
	// A codec failure makes the segment need recovery (the record's fold).
	if rerr := l.record(manifest.Record{Type: manifest.CompressionFailed, Segment: j.segment,
		Payload: manifest.CompressionFailedPayload{Reason: reason}}); rerr != nil {
		return rerr
	}
	if reason == manifest.ReasonCodec {
		return nil // no retry fixes a corrupt segment
	}
	return err
}

func (b *background) afterCompress(ctx context.Context, j job, compressed int64) error {
	l := j.log
	// Committed, it counts the Tier 1 copy, which makes the Tier 0 file
	// evictable (reactLocked).
	if err := l.record(manifest.Record{Type: manifest.CompressionDone, Segment: j.segment,
		Payload: manifest.CompressionDonePayload{CompressedBytes: uint64(compressed)}}); err != nil {
		return err
	}
	if b.s.opts.Tier2 != nil {
		b.upload.push(job{kind: jobUpload, log: l, segment: j.segment, link: trace.SpanContextFromContext(ctx)})
	}
	return nil
}

// recordBoundaries scans a sealed segment for the byte and logical offset
// of every record, which the Tier 1 index needs.
func recordBoundaries(s *Store, path string) ([]tier1.RecordBoundary, int64, error) {
	r, err := segment.Open(s.fs, path)
	if err != nil {
		return nil, 0, err
	}
	defer r.Close()
	var bounds []tier1.RecordBoundary
	pos := int64(segment.HeaderSize)
	for {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, err
		}
		bounds = append(bounds, tier1.RecordBoundary{ByteOffset: pos, LogicalOffset: e.Offset})
		pos += int64(segment.RecordHeaderSize + len(e.Payload))
	}
	st, err := s.fs.Stat(path)
	if err != nil {
		return nil, 0, err
	}
	return bounds, st.Size(), nil
}

// errNotYourTurn says an older segment of the stream must reach Tier 2
// first. Uploads of one stream complete in segment order, so Tier 2 never
// holds a segment while an older one exists only locally: after a lost
// disk, the newest uploaded segment's ext_id watermark then never hides a
// hole (disaster recovery redelivers everything after it).
var errNotYourTurn = errors.New("an older segment is still uploading")

// turnWait is how often a waiting upload checks whether its turn came.
const turnWait = 50 * time.Millisecond

// runUpload copies a Tier 1 artifact to Tier 2.
func (b *background) runUpload(j job) error {
	up := b.s.opts.Tier2
	if up == nil {
		return nil
	}
	l := j.log
	if older := l.olderAwaitingUpload(j.segment); older != 0 {
		return errNotYourTurn
	}
	key := tier1.Key{Stream: l.name, Segment: j.segment}
	// A retirement under way decides first: the job is tried again and
	// then finds the segment gone (or, if the retirement failed, uploads).
	if err := b.marks.beginUpload(key); err != nil {
		return err
	}
	defer b.marks.endUpload(key)
	info := l.info(j.segment)
	if info == nil {
		return nil // retired
	}
	ctx, span := b.startSpan(j, tracing.SpanTier2Upload)
	defer span.End()
	objKey := tier2.SegmentKeyAt(l.name, l.man.Epoch(), j.segment)
	if err := b.cache.Pin(key); err != nil {
		return fmt.Errorf("pin tier1 artifact: %w", err)
	}
	defer b.cache.Unpin(key)
	// Once UploadStarted is taken (even if its commit fails and it stays
	// pending) the manifest no longer vouches for the key's object: the
	// segment counts as out of Tier 2 from its append, so no eviction
	// relies on it.
	if err := l.record(manifest.Record{Type: manifest.UploadStarted, Segment: j.segment,
		Payload: manifest.UploadStartedPayload{Key: objKey}}); err != nil {
		return err
	}
	// Always a full write, never skipped because the key already holds an
	// object whose metadata names this crc: after a crash during a repair
	// (Reupload) that object is the damaged one, and its metadata still
	// claims the good bytes. Writing identical bytes again is harmless.
	res, err := tier2.ReplaceFile(ctx, up, objKey, b.cache.Path(key), tier2.ObjectMeta{
		Records: info.next - info.base, FirstOffset: info.base, LastOffset: info.next - 1,
	})
	if err != nil {
		reason := manifest.ReasonCode(tier2.Reason(err))
		span.RecordError(err)
		span.SetAttributes(tracing.AttrReasonCode.Int64(int64(reason)))
		b.s.log.Warn("segment_upload_failed", "stream", l.name, "segment", j.segment, "key", objKey, "reason", reason, "attempt", j.attempt, "err", err)
		if rerr := l.record(manifest.Record{Type: manifest.UploadFailed, Segment: j.segment,
			Payload: manifest.UploadFailedPayload{Key: objKey, Reason: reason}}); rerr != nil {
			return rerr
		}
		return err
	}
	// The upload mark keeps Retire away, but a segment dropped by any
	// other path must not get its object back: UploadDone after its
	// deletion would make the next boot load it again.
	if !l.holds(j.segment) {
		b.s.log.Warn("segment_upload_after_retire", "stream", l.name, "segment", j.segment, "key", objKey)
		return up.Delete(ctx, objKey)
	}
	if err := l.record(manifest.Record{Type: manifest.UploadDone, Segment: j.segment,
		Payload: manifest.UploadDonePayload{Key: objKey, ETag: res.ETag}}); err != nil {
		return err
	}
	// Committed, UploadDone counts the Tier 2 copy, which makes the
	// artifact evictable from Tier 1 (reactLocked).
	if j.repair {
		l.clearNeedsRecovery(j.segment)
		b.marks.endRepair(key)
	}
	l.checkHoles() // a refill may now be safe in Tier 2
	b.s.log.Info("segment_uploaded", "stream", l.name, "segment", j.segment, "key", objKey, "etag", res.ETag, "repair", j.repair)
	return nil
}

// evictTier1Loop is the goroutine that evicts Tier 1 artifacts over
// tier1.max_bytes (wlog's actor style): the cache signals EvictionDue, and
// each pass evicts what NextEviction offers, recording each eviction
// before the cache removes the file. An eviction that cannot be recorded
// (its stream is still opening, its Tier 2 copy unconfirmed, the manifest
// failing) keeps its artifact and is skipped until the next signal.
func (b *background) evictTier1Loop() {
	defer b.wg.Done()
	for {
		select {
		case <-b.s.ctx.Done():
			return
		case <-b.cache.EvictionDue():
		}
		skip := map[tier1.Key]bool{}
		for {
			ev, ok := b.cache.NextEviction(skip)
			if !ok {
				break
			}
			if err := b.finishTier1Eviction(ev); err != nil {
				b.s.log.Warn("tier1_eviction_deferred", "stream", ev.Key.Stream, "segment", ev.Key.Segment, "err", err)
				skip[ev.Key] = true
			}
		}
	}
}

// evictTier1 evicts k's artifact now, whatever the budget (EvictLocal,
// RestoreTier1, a retirement): refused for a pinned artifact
// (tier1.ErrPinned) or one being evicted (tier1.ErrEvicting).
func (b *background) evictTier1(k tier1.Key) error {
	ev, err := b.cache.BeginEvict(k)
	if err != nil {
		return err
	}
	return b.finishTier1Eviction(ev)
}

// finishTier1Eviction records ev's artifact as gone, then has the cache
// remove it; when it cannot be recorded the artifact stays.
func (b *background) finishTier1Eviction(ev tier1.Eviction) error {
	err := b.recordTier1Eviction(ev)
	if ferr := b.cache.FinishEviction(ev, err == nil); err == nil {
		err = ferr
	}
	return err
}

// recordTier1Eviction records that a Tier 1 artifact leaves the cache. The
// cache only offers a budget eviction artifacts already confirmed in Tier
// 2, and refuses pins on the artifact from the eviction's start, so a
// Reupload cannot start from it.
func (b *background) recordTier1Eviction(ev tier1.Eviction) error {
	l, err := b.s.existing(ev.Key.Stream)
	if err != nil {
		return err
	}
	// Invariant 2, checked against the log rather than the cache's own
	// mark: an artifact whose Tier 2 object was removed or is damaged (a
	// re-upload in progress) must stay, unless the whole segment is being
	// retired.
	if si := l.info(ev.Key.Segment); si != nil && (!si.st.InTier2 || b.marks.isRepairing(ev.Key)) && !b.marks.isRetiring(ev.Key) {
		return fmt.Errorf("segment %d of %s is not confirmed in Tier 2", ev.Key.Segment, ev.Key.Stream)
	}
	err = l.record(manifest.Record{Type: manifest.LocalEvicted, Flags: manifest.FlagTier1Copy,
		Segment: ev.Key.Segment, Payload: manifest.LocalEvictedPayload{ReclaimedBytes: uint64(ev.Bytes)}})
	if err != nil && !isRecordPending(err) {
		return err
	}
	// A pending LocalEvicted commits with the next manifest write: the
	// copy counts as gone from its append, and the eviction goes ahead
	// (Tier 2 holds the segment; a crash that loses the record leaves a
	// manifest naming a missing artifact, which boot counts as not in
	// Tier 1). Keeping a copy that still counted would let a Reupload
	// start from it and leave the segment in no tier once both records
	// commit.
	if err != nil {
		b.s.log.Warn("tier1_eviction_record_pending", "stream", ev.Key.Stream, "segment", ev.Key.Segment, "err", err)
	}
	return nil
}

// applyRetention deletes the oldest Tier 2 objects of a stream beyond
// retention.max_age or retention.max_bytes. It never deletes the newest
// sealed segment, nor one whose upload is unconfirmed, nor one with a
// local copy still serving.
func (b *background) applyRetention(ctx context.Context, l *Log) error {
	up := b.s.opts.Tier2
	if up != nil {
		l.mu.Lock()
		pending := l.retireAtBoot
		l.retireAtBoot = nil
		l.mu.Unlock()
		for i, id := range pending {
			if err := b.retire(ctx, l, id); err != nil {
				l.mu.Lock()
				l.retireAtBoot = append(l.retireAtBoot, pending[i:]...) // the next pass
				l.mu.Unlock()
				if errors.Is(err, errRetireLater) {
					return nil
				}
				return err
			}
		}
	}
	maxAge, maxBytes := b.s.retention()
	if up == nil || (maxAge <= 0 && maxBytes <= 0) {
		return nil
	}
	for _, id := range l.retentionVictims(b.s.opts.Now(), maxAge, maxBytes) {
		if err := b.retire(ctx, l, id); errors.Is(err, errRetireLater) {
			return nil // busy (an upload, a pinned artifact): the next pass takes it
		} else if err != nil {
			return err
		}
	}
	return nil
}

// manifestUploader puts manifest chunks and snapshots into Tier 2.
type manifestUploader struct{ c tier2.Bucket }

func (u manifestUploader) PutObject(ctx context.Context, key string, data []byte, _ map[string]string) (string, error) {
	res, err := tier2.UploadBytes(ctx, u.c, key, data, tier2.ObjectMeta{})
	return res.ETag, err
}

// ListObjects, GetObject and DeleteObject let the manifest prune its Tier 2
// chunks and snapshots (manifest.ObjectPruner).
func (u manifestUploader) ListObjects(ctx context.Context, prefix string) ([]string, error) {
	objs, err := tier2.List(ctx, u.c, prefix)
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = o.Key
	}
	return keys, err
}

func (u manifestUploader) GetObject(ctx context.Context, key string) ([]byte, error) {
	var buf bytes.Buffer
	_, err := u.c.Get(ctx, key, &buf)
	if oe := (*tier2.CorruptionError)(nil); errors.As(err, &oe) {
		return nil, fmt.Errorf("%w: %w", manifest.ErrObjectCorrupt, err)
	}
	return buf.Bytes(), err
}

func (u manifestUploader) DeleteObject(ctx context.Context, key string) error {
	return u.c.Delete(ctx, key)
}

func (s *Store) manifestUploader() manifest.Uploader {
	if s.opts.Tier2 == nil || s.opts.readOnly {
		return nil
	}
	return manifestUploader{s.opts.Tier2}
}
