package ownership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// Options configure a Runner.
type Options struct {
	Records Records
	Store   Store
	Ingest  Ingest
	// PartitionOf maps a stream to its partition; it must be the
	// function the ingest stream's subject transform applies.
	PartitionOf func(stream string) int
	// ArchiveInterval is how often a partition looks for streams whose
	// store archived further (500ms).
	ArchiveInterval time.Duration
	// HandoverTimeout bounds how long a handover waits for Tier 2 (30s).
	HandoverTimeout time.Duration
	Logger          *slog.Logger
}

// Runner runs the partitions this gateway owns. Run one per gateway.
type Runner struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	owned  map[int]*partition
	epochs map[int]uint64

	// crash, set by tests, is asked at each named step of the protocol;
	// an error stops the partition there, as a SIGKILL would, with
	// nothing after it done.
	crash func(step string) error
}

// errCrashed is what a crash injected by a test returns.
var errCrashed = errors.New("ownership: crashed (test)")

// step is a named point of the protocol where a test may crash the run.
func (r *Runner) step(name string) error {
	if r.crash == nil {
		return nil
	}
	if err := r.crash(name); err != nil {
		return fmt.Errorf("%w at %s: %w", errCrashed, name, err)
	}
	return nil
}

// NewRunner returns a Runner over opts.
func NewRunner(opts Options) *Runner {
	if opts.ArchiveInterval <= 0 {
		opts.ArchiveInterval = 500 * time.Millisecond
	}
	if opts.HandoverTimeout <= 0 {
		opts.HandoverTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{opts: opts, log: opts.Logger, owned: map[int]*partition{}, epochs: map[int]uint64{}}
}

// EpochOf is the epoch a stream's log opens at: that of its partition's
// lease, or 0 while the partition is not owned (the log then continues
// under the epoch its local copy records; what it writes there is never
// referenced by a record once the owner's chain holds the stream, see
// movesToNewerChain).
func (r *Runner) EpochOf(stream string) uint64 {
	p := r.opts.PartitionOf(stream)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.epochs[p]
}

// Stats are the gauges of the owned partitions' archiving.
type Stats struct {
	// Unarchived is how many records of the owned streams the store
	// holds but Tier 2 does not yet: they wait in AOF_INGEST.
	Unarchived uint64
	// ArchiveLag is the longest time an owned stream has had records
	// waiting without its record moving.
	ArchiveLag time.Duration
}

// Stats returns the archiving gauges, as of each partition's last
// archive round.
func (r *Runner) Stats() Stats {
	r.mu.Lock()
	parts := make([]*partition, 0, len(r.owned))
	for _, p := range r.owned {
		parts = append(parts, p)
	}
	r.mu.Unlock()
	var st Stats
	now := time.Now()
	for _, p := range parts {
		p.mu.Lock()
		for _, sr := range p.records {
			st.Unarchived += sr.unarchived
			if sr.unarchived > 0 && !sr.waitingSince.IsZero() {
				st.ArchiveLag = max(st.ArchiveLag, now.Sub(sr.waitingSince))
			}
		}
		p.mu.Unlock()
	}
	return st
}

// Owned returns the partitions being run, sorted.
func (r *Runner) Owned() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := make([]int, 0, len(r.owned))
	for p := range r.owned {
		ps = append(ps, p)
	}
	sort.Ints(ps)
	return ps
}

// partition is one owned partition while it runs.
type partition struct {
	lease Lease
	// stopIngest ends the pipeline for a handover; ingestDone is closed
	// when it returned.
	stopIngest context.CancelFunc
	ingestDone chan struct{}
	// records are the streams' records as last read or written, with
	// their revisions.
	mu      sync.Mutex
	records map[string]*streamRecord
}

type streamRecord struct {
	rec    Record
	rev    uint64
	purged uint64
	// unarchived is how many records the store holds past the record,
	// and waitingSince when it last went from none to some or the record
	// last moved while some waited (zero when none waits).
	unarchived   uint64
	waitingSince time.Time
}

// Acquired runs the partition of lease until ctx ends or handover is
// closed. The caller cancels ctx the moment the lease is lost: from then
// on nothing more is acked, recorded or purged. A closed handover asks
// for a graceful end (see handover): the lease is still held meanwhile.
// Acquired returns once nothing of the partition runs any more.
func (r *Runner) Acquired(ctx context.Context, lease Lease, handover <-chan struct{}) error {
	p := &partition{lease: lease, records: map[string]*streamRecord{}}
	log := r.log.With("partition", lease.Partition(), "epoch", lease.Epoch())
	log.Info("partition_takeover_started")
	started := time.Now()
	// The epoch is known before the takeover, so that a stream it adopts
	// or creates opens at it.
	r.mu.Lock()
	r.epochs[lease.Partition()] = lease.Epoch()
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		if r.owned[lease.Partition()] == p || r.owned[lease.Partition()] == nil {
			delete(r.owned, lease.Partition())
			delete(r.epochs, lease.Partition())
		}
		r.mu.Unlock()
	}()
	if err := r.takeover(ctx, p); err != nil {
		log.Error("partition_takeover_failed", "err", err)
		return err
	}
	r.mu.Lock()
	r.owned[lease.Partition()] = p
	r.mu.Unlock()
	log.Info("partition_owned", "takeover", time.Since(started).String(), "streams", len(p.records))

	ictx, stopIngest := context.WithCancel(ctx)
	p.stopIngest, p.ingestDone = stopIngest, make(chan struct{})
	go func() {
		defer close(p.ingestDone)
		r.runIngest(ictx, p, log)
	}()
	err := r.archiveLoop(ctx, p, handover)
	if err == nil && ctx.Err() == nil {
		started := time.Now()
		if err = r.handover(ctx, p); err != nil {
			log.Warn("partition_handover_incomplete", "err", err, "detail", "the next owner re-reads what was not archived")
		} else {
			log.Info("partition_handed_over", "took", time.Since(started).String())
		}
	}
	stopIngest()
	<-p.ingestDone
	if errors.Is(err, ErrFenced) {
		log.Error("partition_fenced", "err", err)
	}
	log.Info("partition_stopped")
	return err
}

// runIngest runs the partition's pipeline, again after a failure, until
// ctx ends.
func (r *Runner) runIngest(ctx context.Context, p *partition, log *slog.Logger) {
	backoff := 250 * time.Millisecond
	for ctx.Err() == nil {
		err := r.opts.Ingest.Run(ctx, p.lease.Partition(), p.lease.Valid)
		if err == nil || ctx.Err() != nil {
			return
		}
		log.Error("partition_ingest_stopped", "err", err, "restart_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// streams returns the streams of p: those with a record and those the
// store holds.
func (r *Runner) streams(ctx context.Context, part int) ([]string, error) {
	names, err := r.opts.Records.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list archived records: %w", err)
	}
	seen := map[string]bool{}
	var out []string
	for _, s := range append(names, r.opts.Store.Streams()...) {
		if !seen[s] && r.opts.PartitionOf(s) == part {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out, nil
}

// takeover fences, adopts and purges every stream of p (see the package
// doc) before its pipeline starts.
func (r *Runner) takeover(ctx context.Context, p *partition) error {
	names, err := r.streams(ctx, p.lease.Partition())
	if err != nil {
		return err
	}
	for _, s := range names {
		sr, err := r.fence(ctx, p, s)
		if err != nil {
			return fmt.Errorf("stream %s: %w", s, err)
		}
		if err := r.step("takeover.after_fence"); err != nil {
			return err
		}
		if err := r.adopt(ctx, p, s, sr.rec); err != nil {
			return fmt.Errorf("stream %s: %w", s, err)
		}
		if err := r.step("takeover.after_adopt"); err != nil {
			return err
		}
		p.records[s] = sr
		r.purge(ctx, p, s, sr)
		if err := r.step("takeover.after_purge"); err != nil {
			return err
		}
	}
	return nil
}

// fence writes stream's record under p's epoch, so that no earlier owner
// can write it any more. A record that moved between read and write was
// written by that owner: it is read again and fenced as it is now.
func (r *Runner) fence(ctx context.Context, p *partition, stream string) (*streamRecord, error) {
	const attempts = 5
	for range attempts {
		rec, rev, err := r.opts.Records.Get(ctx, stream)
		if err != nil {
			return nil, fmt.Errorf("read archived record: %w", err)
		}
		if rev == 0 {
			// No record yet: the first archive creates it, and a
			// concurrent creator makes that write fail (fenced).
			return &streamRecord{rec: rec}, nil
		}
		if rec.Epoch > p.lease.Epoch() {
			return nil, fmt.Errorf("%w: record epoch %d is newer than ours (%d)", ErrFenced, rec.Epoch, p.lease.Epoch())
		}
		fenced := rec
		fenced.Epoch = p.lease.Epoch()
		if !p.lease.Valid() {
			return nil, errLeaseExpired
		}
		nrev, err := r.opts.Records.Update(ctx, stream, rev, fenced)
		if errors.Is(err, ErrFenced) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("fence archived record: %w", err)
		}
		// The local copy is judged by the epoch that wrote the
		// archived state, not by ours.
		return &streamRecord{rec: rec, rev: nrev}, nil
	}
	return nil, fmt.Errorf("%w: the record kept moving", ErrFenced)
}

var errLeaseExpired = fmt.Errorf("%w: the lease expired before the write", ErrFenced)

// ErrRestart is returned when a stream must be adopted from Tier 2 but
// its stale copy is open in this gateway's store: only reopening the
// store drops it (Store.Adopt refuses, the gateway restarts its store with
// Stale deciding which copies to discard).
var ErrRestart = errors.New("ownership: a stale stream is open here; the store must be reopened")

// Stale reports whether a local copy written under epoch local misses
// what the record says is archived, so that it must be replaced by Tier
// 2's. It is not stale when nothing is archived, when no owner wrote the
// record after this copy's own term (epochs rise with every term, and a
// takeover writes its epoch into every record first), or when the
// archived position is still in this copy's own chain (a later owner
// archived nothing of its own).
func Stale(rec Record, local uint64) bool {
	return rec.Through > 0 && rec.Epoch > local && rec.Manifest.Epoch != local
}

// adopt keeps the local copy of stream unless it is Stale, and otherwise
// rebuilds it from Tier 2 through rec.
func (r *Runner) adopt(ctx context.Context, p *partition, stream string, rec Record) error {
	local, ok := r.opts.Store.LocalEpoch(stream)
	switch {
	case ok && !Stale(rec, local):
	case !ok && rec.Through == 0:
		// Nothing here, nothing archived: the pipeline creates the
		// stream under this epoch when its first message comes.
		return nil
	default:
		r.log.Info("stream_adopt_from_tier2", "stream", stream, "partition", p.lease.Partition(),
			"local_epoch", local, "has_local", ok, "record_epoch", rec.Epoch, "through", rec.Through)
		err := r.opts.Store.Adopt(ctx, stream, rec, p.lease.Epoch())
		if ok && err != nil {
			return fmt.Errorf("%w: stream %s at epoch %d: %w", ErrRestart, stream, local, err)
		}
		if err != nil {
			return fmt.Errorf("adopt from Tier 2: %w", err)
		}
	}
	return r.opts.Store.SetEpoch(stream, p.lease.Epoch())
}

// purge drops the archived messages of stream from AOF_INGEST. A failure
// is retried by the next archive round: the messages stay until then.
func (r *Runner) purge(ctx context.Context, p *partition, stream string, sr *streamRecord) {
	if sr.rec.Through <= sr.purged || !p.lease.Valid() {
		return
	}
	if err := r.opts.Ingest.Purge(ctx, stream, sr.rec.Through); err != nil {
		r.log.Warn("ingest_purge_failed", "stream", stream, "through", sr.rec.Through, "err", err)
		return
	}
	sr.purged = sr.rec.Through
}
