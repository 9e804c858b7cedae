package tiers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/bop-aof/aof/config"
	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/backpressure"
	"github.com/bop-aof/aof/tiers/segment"
	"github.com/bop-aof/aof/tiers/tier0"
	"github.com/bop-aof/aof/tiers/tier1"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tracing"
)

// Record is one record to append: an opaque payload and the ext_id that
// identifies its source (for the gateway, the JetStream stream sequence).
type Record = segment.Record

// Entry is one record read back.
type Entry = segment.Entry

// Options configure a Store. Zero values take the defaults noted.
type Options struct {
	Root string
	FS   vfs.FS // vfs.Default

	Tier0MaxBytes      int64         // 2 GiB
	SegmentTargetBytes int64         // 64 MiB: roll the active segment past this
	SegmentMaxAge      time.Duration // 0: no age-based rollover

	Tier1MaxBytes      int64 // 8 GiB
	FrameBytes         int   // 1 MiB: Tier 1 frame size
	CompressionLevel   int   // 3
	CompressionWorkers int   // 2
	HydrationWorkers   int   // 2
	// CompressDefer is how long a sealed segment's compression may wait
	// while ingest has a backlog (tier1.compression_defer; pacing.go); 0,
	// the default here, never waits.
	CompressDefer time.Duration
	// JobRetryBackoff is the first delay before a failed compression or
	// upload is retried (tier1.retry_backoff, 200 ms); it doubles up to
	// 30 s. JobMaxRetries (tier1.max_retries, 3) is the attempt from which
	// each further failure is logged as an error.
	JobRetryBackoff time.Duration
	JobMaxRetries   int
	// ActivationQueueWarnThreshold logs a warning when this many writers
	// wait for Tier 0 admission (tier0.activation_queue_warn_threshold).
	ActivationQueueWarnThreshold int
	// SealOnPressure (tier0.seal_on_pressure) seals the largest active
	// segment when Tier 0 refuses a write: unsealed data can never be
	// evicted, so a budget full of active segments would otherwise wait
	// for segment.max_age.
	SealOnPressure bool

	// Tier2 is the object store: the minio client (tier2.Open) in the
	// gateway and aof2-admin, an in-memory bucket (tier2/memory) in tests
	// of the store's logic. Nil keeps segments in Tier 1 only: for library
	// tests; the gateway always sets it, since Tier 2 is the durable copy.
	Tier2 tier2.Bucket
	// Tier2Concurrency is the number of parallel uploads; 4.
	Tier2Concurrency int
	// PrefetchSegments is how many cold segments a sequential reader
	// (Reader.SetReadAhead) prefetches ahead of itself
	// (read.prefetch_segments); 0, the default here, turns read-ahead off.
	PrefetchSegments int
	// PrefetchBytes bounds the memory of prefetched segments
	// (read.prefetch_bytes); DefaultPrefetchBytes.
	PrefetchBytes int64

	ManifestChunkCapacity  int64
	ManifestRotationPeriod time.Duration
	// ManifestArchiveInterval is manifest.Options.ArchiveInterval
	// (manifest.archive_interval); 0 is its default.
	ManifestArchiveInterval time.Duration
	// Epoch is the ownership epoch Tier 2 objects are written under
	// (manifest.Options.Epoch); 0 is the layout before epochs.
	Epoch uint64
	// EpochOf, when set, gives the epoch a stream's log is opened at,
	// ahead of Epoch; 0 continues under the epoch its copy records. A
	// gateway sets it to its partition leases, so a stream created while
	// its partition is owned writes under the owner's epoch from the
	// first object.
	EpochOf func(stream string) uint64
	// Discard, when set, is asked at Open about every stream found on
	// disk, before anything reads it, with the epoch its copy was written
	// under (0 for a copy from before epochs). A stream it returns true
	// for is removed: its copy is stale, another owner archived the
	// stream further, and the stream is adopted from Tier 2 when it is
	// taken over (Store.Adopt).
	Discard func(stream string, epoch uint64) bool
	// SnapshotInterval is how often a stream's manifest is snapshotted
	// (manifest.snapshot_interval); 0 disables periodic snapshots.
	SnapshotInterval time.Duration
	// Publisher, when set, publishes each committed manifest record (the
	// gateway plugs NATS in here).
	Publisher manifest.Publisher

	RetentionMaxAge   time.Duration // 0: keep forever
	RetentionMaxBytes int64         // 0: no byte limit

	Logger      *slog.Logger
	Tracer      trace.Tracer
	Instruments *tracing.Instruments
	// Now is the clock; time.Now by default.
	Now func() time.Time

	// readOnly is set for a Replica's copies: nothing of the manifest is
	// uploaded, since Tier 2 is another gateway's to write (replica.go).
	readOnly bool
}

func (o *Options) setDefaults() {
	o.Tier2 = bucketOrNil(o.Tier2)
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Tier0MaxBytes <= 0 {
		o.Tier0MaxBytes = 2 << 30
	}
	if o.SegmentTargetBytes <= 0 {
		o.SegmentTargetBytes = 64 << 20
	}
	if o.Tier1MaxBytes <= 0 {
		o.Tier1MaxBytes = 8 << 30
	}
	if o.FrameBytes <= 0 {
		o.FrameBytes = 1 << 20
	}
	if o.CompressionLevel == 0 {
		o.CompressionLevel = 3
	}
	if o.CompressionWorkers <= 0 {
		o.CompressionWorkers = 2
	}
	if o.HydrationWorkers <= 0 {
		o.HydrationWorkers = 2
	}
	if o.JobRetryBackoff <= 0 {
		o.JobRetryBackoff = 200 * time.Millisecond
	}
	if o.JobMaxRetries <= 0 {
		o.JobMaxRetries = 3
	}
	if o.Tier2Concurrency <= 0 {
		o.Tier2Concurrency = 4
	}
	if o.PrefetchBytes <= 0 {
		o.PrefetchBytes = DefaultPrefetchBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Tracer == nil {
		o.Tracer = tracenoop.NewTracerProvider().Tracer("tiers")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Store is the tiered store of one data root. Its methods are safe for
// concurrent use. Each stream has a single writer: appends to one stream
// are serialised.
type Store struct {
	opts   Options
	fs     vfs.FS
	log    *slog.Logger
	budget *tier0.Budget

	mu     sync.Mutex
	logs   map[string]*Log
	closed bool
	// holes is HolesFile as read at open: per stream, the ext_id ranges
	// a disaster recovery lost.
	holes  map[string]streamHoles
	openMu sync.Mutex // serialises openLog

	// retentionMu guards the retention limits, which a reload may change.
	retentionMu sync.Mutex
	// relieving is set while a seal-on-pressure runs.
	relieving atomic.Bool

	bg *background
	// pacer makes compression yield to ingest during a burst (pacing.go).
	pacer pacer
	// prefetch holds read-ahead buffers; nil when read-ahead is off.
	prefetch *prefetcher
	ctx      context.Context
	cancel   context.CancelFunc
	// lock is the data root's lock, released last by Close.
	lock *RootLock
}

// ErrClosed is returned by a closed store.
var ErrClosed = errors.New("tiers: store closed")

// ErrStreamNotFound is returned for a stream the store has never seen.
var ErrStreamNotFound = errors.New("tiers: stream not found")

// Open opens (or creates) the store at opts.Root and reopens every stream
// found there: manifest replay, recovery of each unsealed tail segment,
// reconciliation with the files present, and resumption of the background
// jobs the manifest shows as pending.
//
// The store holds the data root's lock (RootLockFile) until Close: a
// second Open of the same root, in this process or another, fails at once
// with a *RootLockedError.
func Open(ctx context.Context, opts Options) (*Store, error) {
	opts.setDefaults()
	if opts.Root == "" {
		return nil, errors.New("tiers: open: empty data root")
	}
	if err := opts.FS.MkdirAll(opts.Root, 0o755); err != nil {
		return nil, fmt.Errorf("tiers: create data root: %w", err)
	}
	lock, err := LockRoot(opts.Root)
	if err != nil {
		return nil, err
	}
	s, err := openLocked(ctx, opts, lock)
	if err != nil {
		lock.Release()
		return nil, err
	}
	return s, nil
}

// openLocked is Open once the root's lock is held; the store releases it
// at Close.
func openLocked(ctx context.Context, opts Options, lock *RootLock) (*Store, error) {
	s := &Store{opts: opts, fs: opts.FS, log: opts.Logger, logs: make(map[string]*Log), lock: lock}
	for _, d := range []string{"tier0", "tier1", "manifest"} {
		if err := s.fs.MkdirAll(filepath.Join(opts.Root, d), 0o755); err != nil {
			return nil, fmt.Errorf("tiers: create %s dir: %w", d, err)
		}
	}
	if err := discardStale(opts); err != nil {
		return nil, err
	}
	budget, err := tier0.New(tier0.Options{
		MaxBytes:           opts.Tier0MaxBytes,
		Evict:              s.evictForTier0Budget,
		Logger:             opts.Logger,
		QueueWarnThreshold: opts.ActivationQueueWarnThreshold,
		Instruments:        opts.Instruments,
	})
	if err != nil {
		return nil, fmt.Errorf("tiers: %w", err)
	}
	s.budget = budget
	s.pacer = pacer{maxDefer: opts.CompressDefer, now: opts.Now, tier0Full: s.tier0Full}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if opts.PrefetchSegments > 0 && opts.Tier2 != nil {
		s.prefetch = newPrefetcher(s.ctx, opts.Tier2, opts.PrefetchBytes, opts.Logger)
	}
	if s.bg, err = newBackground(s); err != nil {
		budget.Close()
		return nil, err
	}
	s.registerGauges()

	streams, err := s.discoverStreams()
	if err != nil {
		s.Close()
		return nil, err
	}
	if s.holes, err = loadHoles(s.fs, s.opts.Root); err != nil {
		s.Close()
		return nil, err
	}
	for _, name := range streams {
		if _, err := s.openLog(ctx, name); err != nil {
			s.Close()
			return nil, err
		}
	}
	s.bg.start()
	return s, nil
}

// discoverStreams lists stream names that have a Tier 0 or manifest dir.
func (s *Store) discoverStreams() ([]string, error) {
	seen := map[string]bool{}
	for _, d := range []string{"tier0", "manifest", "tier1"} {
		entries, err := s.fs.ReadDir(filepath.Join(s.opts.Root, d))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("tiers: list %s: %w", d, err)
		}
		for _, e := range entries {
			if e.IsDir() && config.ValidStreamName(e.Name()) == nil {
				seen[e.Name()] = true
			}
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// Streams returns the names of the streams the store holds.
func (s *Store) Streams() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.logs))
	for n := range s.logs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Log returns the log of stream, creating it if it does not exist.
func (s *Store) Log(ctx context.Context, stream string) (*Log, error) {
	if err := config.ValidStreamName(stream); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	l := s.logs[stream]
	s.mu.Unlock()
	if l != nil {
		return l, nil
	}
	return s.openLog(ctx, stream)
}

// existing returns the log of stream or ErrStreamNotFound.
func (s *Store) existing(stream string) (*Log, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	l := s.logs[stream]
	if l == nil {
		return nil, fmt.Errorf("%w: %q", ErrStreamNotFound, stream)
	}
	return l, nil
}

// openLog opens stream's log once. Opens are serialised by openMu, not
// s.mu: recovery removes stale Tier 1 artifacts (Cache.Remove), which
// waits for an eviction of the same artifact in flight on the Tier 1
// eviction goroutine (evictTier1Loop), and that eviction looks streams up
// under s.mu.
func (s *Store) openLog(ctx context.Context, stream string) (*Log, error) {
	s.openMu.Lock()
	defer s.openMu.Unlock()
	s.mu.Lock()
	l := s.logs[stream]
	s.mu.Unlock()
	if l != nil {
		return l, nil
	}
	l, err := openLog(ctx, s, stream)
	if err != nil {
		return nil, fmt.Errorf("tiers: open stream %s: %w", stream, err)
	}
	s.mu.Lock()
	s.logs[stream] = l
	s.mu.Unlock()
	// Marking artifacts uploaded wakes the Tier 1 eviction goroutine,
	// which records LocalEvicted through the log: only now can it find
	// the log (an eviction that cannot is deferred to the next wake-up).
	for _, id := range l.uploadedAtBoot {
		s.bg.cache.MarkUploaded(tier1.Key{Stream: stream, Segment: id})
	}
	l.uploadedAtBoot = nil
	l.checkHoles()
	return l, nil
}

// AppendDurable appends recs to stream and returns once all are durable.
// When Tier 0 cannot admit them it appends nothing and returns
// *backpressure.Error of kind Admission.
func (s *Store) AppendDurable(ctx context.Context, stream string, recs []Record) error {
	l, err := s.Log(ctx, stream)
	if err != nil {
		return err
	}
	_, err = l.AppendDurable(ctx, recs)
	return err
}

// Append appends recs to stream without waiting for durability; see
// Log.Append. Sync the returned offset with SyncTo before acknowledging.
func (s *Store) Append(ctx context.Context, stream string, recs []Record) (next uint64, err error) {
	l, err := s.Log(ctx, stream)
	if err != nil {
		return 0, err
	}
	_, next, err = l.Append(ctx, recs)
	return next, err
}

// Resume lets every log whose fsync failed take appends again (see
// Log.Resume). A log that cannot resume yet (its disk is still full)
// stays stopped alone: its appends keep answering Flush backpressure, the
// failure is logged, and the next Resume tries again. Only other errors
// are returned, so one stream's full disk never stops the others.
func (s *Store) Resume() error {
	s.mu.Lock()
	logs := make([]*Log, 0, len(s.logs))
	for _, l := range s.logs {
		logs = append(logs, l)
	}
	s.mu.Unlock()
	var errs []error
	for _, l := range logs {
		err := l.Resume()
		if backpressure.Is(err, backpressure.Flush) {
			s.log.Warn("stream_resume_failed", "stream", l.name, "err", err)
			continue
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ResumeStream makes one stream writable again after a failure, if it
// can: Resume, then the next segment a seal could not open and the
// manifest records a failed commit left pending. nil means the stream
// takes appends again as far as the store can tell without writing a
// record (a data disk that is still full shows at the next fsync);
// while the cause lasts the answer is Flush or Rollover backpressure. As
// with Log.Resume, the caller must have dropped everything it appended
// to the stream before the failure. A stream the store does not hold has
// nothing to resume.
func (s *Store) ResumeStream(stream string) error {
	l, err := s.existing(stream)
	if errors.Is(err, ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return l.resumeWrites()
}

// SyncTo returns once every record of stream below offset next is durable.
func (s *Store) SyncTo(ctx context.Context, stream string, next uint64) error {
	l, err := s.existing(stream)
	if err != nil {
		return err
	}
	return l.SyncTo(ctx, next)
}

// WaitForAdmission blocks until n bytes could be admitted to Tier 0, or
// ctx ends. Space may be taken by another writer before the caller
// appends; the caller then gets Admission backpressure again and waits again.
func (s *Store) WaitForAdmission(ctx context.Context, n int64) error {
	g, err := s.budget.AdmitWait(ctx, "", n)
	if err != nil {
		return err
	}
	g.Release()
	return nil
}

// Seal seals the active segment of stream (rollover on demand). It is a
// no-op for an empty active segment unless force is set, in which case
// the segment is sealed with no records.
func (s *Store) Seal(ctx context.Context, stream string, force bool) (uint64, error) {
	// Whoever seals on demand (an operator, a handover) wants the segment
	// on its way to Tier 2: compression stops yielding to ingest for a
	// while (pacing.go).
	s.pacer.hurry()
	l, err := s.existing(stream)
	if err != nil {
		return 0, err
	}
	return l.Seal(ctx, force)
}

// Flush makes everything appended to stream durable.
func (s *Store) Flush(ctx context.Context, stream string) error {
	l, err := s.existing(stream)
	if err != nil {
		return err
	}
	return l.Flush()
}

// SetTier0MaxBytes changes the Tier 0 budget at runtime; raising it admits
// waiting writers at once.
func (s *Store) SetTier0MaxBytes(n int64) error { return s.budget.SetMaxBytes(n) }

// RecordLimit is the largest record payload Append can ever take, and the
// limit that sets it.
type RecordLimit struct {
	MaxPayload int64
	// Limit names it: "tier0.cluster_max_bytes" (the whole budget less the
	// record header) or "segment record limit" (segment.MaxPayloadBytes).
	Limit string
}

// RecordLimit says which records Append refuses whatever is evicted: a
// caller must not wait or retry for them. It follows SetTier0MaxBytes.
func (s *Store) RecordLimit() RecordLimit {
	budget := s.budget.MaxBytes() - segment.RecordHeaderSize
	if budget < segment.MaxPayloadBytes {
		return RecordLimit{MaxPayload: budget, Limit: "tier0.cluster_max_bytes"}
	}
	return RecordLimit{MaxPayload: segment.MaxPayloadBytes, Limit: "segment record limit"}
}

// SetRetention changes retention.max_age and retention.max_bytes at
// runtime; the next retention pass (within a second) applies them.
func (s *Store) SetRetention(maxAge time.Duration, maxBytes int64) {
	s.retentionMu.Lock()
	s.opts.RetentionMaxAge, s.opts.RetentionMaxBytes = maxAge, maxBytes
	s.retentionMu.Unlock()
}

func (s *Store) retention() (time.Duration, int64) {
	s.retentionMu.Lock()
	defer s.retentionMu.Unlock()
	return s.opts.RetentionMaxAge, s.opts.RetentionMaxBytes
}

// relieveAdmission seals, in the background, the largest active segment
// of any stream, so that it can be compressed into Tier 1 and evicted from
// Tier 0. One runs at a time.
func (s *Store) relieveAdmission() {
	if !s.opts.SealOnPressure || !s.relieving.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.relieving.Store(false)
		var victim *Log
		var size int64
		for _, name := range s.Streams() {
			l, err := s.existing(name)
			if err != nil {
				continue
			}
			if n := l.activeBytes(); n > size {
				victim, size = l, n
			}
		}
		if victim == nil {
			return
		}
		if id, err := victim.Seal(s.ctx, false); err != nil {
			s.log.Warn("seal_on_pressure_failed", "stream", victim.name, "err", err)
		} else if id > 0 {
			s.log.Info("sealed_on_pressure", "stream", victim.name, "segment", id, "bytes", size)
		}
	}()
}

// Tier0Stats reports the Tier 0 budget.
func (s *Store) Tier0Stats() tier0.Stats { return s.budget.Stats() }

// Close stops background work, syncs and closes every log. Unfinished
// background jobs resume at the next Open from the manifest.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	logs := make([]*Log, 0, len(s.logs))
	for _, l := range s.logs {
		logs = append(logs, l)
	}
	s.mu.Unlock()
	s.cancel()
	if s.prefetch != nil {
		s.prefetch.wait()
	}
	if s.bg != nil {
		s.bg.stop()
	}
	var errs []error
	for _, l := range logs {
		errs = append(errs, l.close())
	}
	errs = append(errs, s.budget.Close())
	// Last: another process may take the root as soon as it is released.
	errs = append(errs, s.lock.Release())
	return errors.Join(errs...)
}

// evictForTier0Budget is the Tier 0 budget's evictor: it removes a sealed segment
// file whose Tier 1 copy exists, after recording LocalEvicted.
func (s *Store) evictForTier0Budget(ctx context.Context, key tier0.SegmentKey) error {
	l, err := s.existing(key.Stream)
	if err != nil {
		return err
	}
	return l.evictTier0(ctx, key.Segment)
}

func (s *Store) registerGauges() {
	in := s.opts.Instruments
	if in == nil {
		return
	}
	in.RegisterGauge(tracing.MetricActivationQueueDepth, func() int64 { return int64(s.budget.Stats().QueueDepth) })
	in.RegisterGauge(tracing.MetricTier0Bytes, func() int64 { return s.budget.Stats().UsedBytes })
	in.RegisterResidency(func() tracing.Residency {
		var r tracing.Residency
		for _, st := range s.Segments("") {
			switch {
			case st.NeedsRecovery:
				r.NeedsRecovery++
			case st.InTier0:
				r.ResidentInTier0++
			case st.PendingHydration:
				r.StagedForTier0++
			}
			if st.InTier2 {
				r.UploadedToTier2++
			}
		}
		return r
	})
}

// newSegmentKey returns the Tier 0 budget key of a segment.
func newSegmentKey(stream string, id uint64) tier0.SegmentKey {
	return tier0.SegmentKey{Stream: stream, Segment: id}
}

// bucketOrNil turns a nil *tier2.Client, which an interface holds as a
// non-nil Bucket, into no Tier 2: a caller that passes a client variable
// left nil means "no Tier 2", not a client that panics on first use.
func bucketOrNil(b tier2.Bucket) tier2.Bucket {
	if c, ok := b.(*tier2.Client); ok && c == nil {
		return nil
	}
	return b
}
