// Package tier0 keeps the byte budget of the hot tier: the active and
// recently sealed segment files on local disk, for all streams together
// (config key tier0.cluster_max_bytes).
//
// The package does no file I/O. It accounts bytes, decides what may be
// written and what may be evicted, and asks the caller to delete a file
// through an Evictor callback. The tiers store owns the files and the
// manifest; this package owns the numbers.
//
// # Accounting
//
// Every byte the budget knows about is in exactly one of two places:
//
//   - reserved: promised to a writer by Admit/AdmitWait and held by an
//     AdmissionGuard until the writer settles it (Commit, CommitBytes or
//     Release);
//   - used: charged to a tracked segment (Commit, CommitBytes or Track) and
//     freed when the segment is evicted or forgotten.
//
// The invariant is UsedBytes == the sum of the tracked segments' bytes, and
// UsedBytes+ReservedBytes <= MaxBytes whenever a reservation is granted.
// UsedBytes alone may exceed MaxBytes after Track at boot, after
// SetMaxBytes lowers the budget, or after an over-sized CommitBytes; new
// admissions then wait until eviction brings the total back under.
//
// # Eviction
//
// A segment may leave Tier 0 only when it is sealed, present in Tier 1 and
// not pinned by a reader (DESIGN.md invariant 2). Among those, the least
// recently touched goes first. The Evictor is always called without any
// Budget lock held; while it runs the segment is marked as being evicted, so
// it is neither chosen twice nor pinnable. If the Evictor fails, the segment
// stays tracked, the failure is logged and the next candidate is tried.
//
// # Activation queue
//
// AdmitWait queues requests that do not fit, strictly first in, first out.
// Only the head of the queue is considered: a large request at the head
// blocks smaller ones behind it even if they would fit. That is a deliberate
// choice: letting small requests overtake would starve large ones (a big
// batch would wait forever behind a stream of small appends), and the
// activation_queue_depth alert is meant to say "Tier 0 is too small or
// sealing is too slow", which head-of-line order makes visible. The head
// waiter drives eviction itself, each time it is woken (space freed, a
// segment sealed, marked in Tier 1 or unpinned, the budget raised).
// Non-blocking Admit never overtakes queued waiters either: while the queue
// is non-empty it answers with Admission backpressure.
package tier0

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/bop-aof/aof/tiers/backpressure"
	"github.com/bop-aof/aof/tracing"
)

// SegmentKey names one segment file of one stream.
type SegmentKey struct {
	Stream  string
	Segment uint64
}

func (k SegmentKey) String() string { return fmt.Sprintf("%s/%d", k.Stream, k.Segment) }

// Evictor deletes the Tier 0 file of key. The caller writes the
// LocalEvicted manifest record. It is called without any Budget lock held,
// so it may call back into the Budget. On a nil return the Budget stops
// tracking the segment and frees its bytes; on an error the segment stays
// tracked and the Budget tries the next candidate.
type Evictor func(ctx context.Context, key SegmentKey) error

// Options configure a Budget.
type Options struct {
	// MaxBytes is the budget for all streams together, in bytes. Must be > 0.
	MaxBytes int64
	// Evict deletes a Tier 0 file. Nil means nothing is ever evicted: space
	// is freed only by Forget, Release or raising MaxBytes.
	Evict Evictor
	// Logger receives tier0_eviction_scheduled and failure events. Nil
	// discards them.
	Logger *slog.Logger
	// Instruments counts tier0_evictions; the process's one instrument set
	// (the owner of the Budget registers its gauges from Stats). Nil counts
	// nothing.
	Instruments *tracing.Instruments
	// QueueWarnThreshold (tier0.activation_queue_warn_threshold) logs a
	// warning each time the activation queue grows to this depth. Zero
	// disables the warning.
	QueueWarnThreshold int
}

// ErrTooLarge is matched (errors.Is) by a TooLargeError.
var ErrTooLarge = errors.New("tier0: request larger than budget")

// ErrBudgetFull is the cause inside the Admission backpressure that Admit
// returns when the bytes cannot be found now.
var ErrBudgetFull = errors.New("tier0: budget full")

// ErrClosed is returned once the Budget is closed.
var ErrClosed = errors.New("tier0: budget closed")

// TooLargeError says a request can never be admitted because it is larger
// than the whole budget. It is not backpressure: waiting will not help.
type TooLargeError struct {
	Stream   string
	Bytes    int64 // requested
	MaxBytes int64 // the budget at the time of the request
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("tier0: stream %s: request of %d bytes exceeds budget of %d bytes (raise tier0.cluster_max_bytes or write smaller batches)",
		e.Stream, e.Bytes, e.MaxBytes)
}

// Is makes errors.Is(err, ErrTooLarge) true.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// Stats is a point-in-time view of the budget.
type Stats struct {
	MaxBytes          int64
	UsedBytes         int64 // charged to tracked segments
	ReservedBytes     int64 // held by unsettled AdmissionGuards
	QueueDepth        int   // AdmitWait callers waiting (activation_queue_depth)
	Segments          int   // tracked segments
	EvictableSegments int   // sealed, in Tier 1, unpinned and not being evicted
	PinnedSegments    int
	Evictions         int64 // successful evictions since New
}

// SegmentInfo describes one tracked segment.
type SegmentInfo struct {
	Key      SegmentKey
	Bytes    int64
	Sealed   bool
	InTier1  bool
	Pins     int
	Evicting bool
}

type segment struct {
	key      SegmentKey
	bytes    int64
	sealed   bool
	inTier1  bool
	pins     int
	evicting bool
	lru      *list.Element // in Budget.lru; front = most recently touched
}

func (s *segment) evictable() bool {
	return s.sealed && s.inTier1 && s.pins == 0 && !s.evicting
}

type waiter struct {
	stream  string
	n       int64
	granted bool
	err     error         // set instead of granted when the waiter is failed
	wake    chan struct{} // buffered 1; signalled on grant, failure or "retry eviction"
	elem    *list.Element
}

// Budget is the Tier 0 byte budget shared by all streams. It is safe for
// concurrent use. The zero value is not usable; call New.
type Budget struct {
	evict    Evictor
	log      *slog.Logger
	warnAt   int
	inst     *tracing.Instruments
	mu       sync.Mutex
	closed   bool
	max      int64
	used     int64
	reserved int64
	segs     map[SegmentKey]*segment
	lru      *list.List // of *segment
	queue    *list.List // of *waiter, arrival order
	evicted  int64
}

// New returns a Budget. MaxBytes must be positive.
func New(opts Options) (*Budget, error) {
	if opts.MaxBytes <= 0 {
		return nil, fmt.Errorf("tier0: max bytes must be positive, got %d", opts.MaxBytes)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Budget{
		evict:  opts.Evict,
		log:    log,
		warnAt: opts.QueueWarnThreshold,
		max:    opts.MaxBytes,
		segs:   make(map[SegmentKey]*segment),
		lru:    list.New(),
		queue:  list.New(),
		inst:   opts.Instruments,
	}
	return b, nil
}

// SetQueueWarnThreshold changes the activation queue depth that logs a
// warning (tier0.activation_queue_warn_threshold; 0 turns it off).
func (b *Budget) SetQueueWarnThreshold(n int) {
	b.mu.Lock()
	b.warnAt = max(n, 0)
	b.mu.Unlock()
}

// Close fails every queued AdmitWait with Admission backpressure wrapping
// ErrClosed and makes later admissions return ErrClosed. Outstanding
// guards may still be settled. Close is idempotent.
func (b *Budget) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	for e := b.queue.Front(); e != nil; e = b.queue.Front() {
		b.failWaiterLocked(e.Value.(*waiter), ErrClosed)
	}
	b.mu.Unlock()
	return nil
}

// AdmissionGuard holds bytes reserved by Admit or AdmitWait until they are
// charged to a segment (Commit, CommitBytes) or given back (Release). The
// first of those calls settles the guard; later calls are no-ops, so
// `defer g.Release()` after a Commit is safe. A guard is not meant to be
// shared between goroutines, but settling it concurrently is harmless.
type AdmissionGuard struct {
	b      *Budget
	stream string
	n      int64
	mu     sync.Mutex
	done   bool
}

// Bytes returns the number of bytes the guard reserved.
func (g *AdmissionGuard) Bytes() int64 { return g.n }

// Commit charges the whole reservation to key's resident bytes, tracking
// the segment (unsealed, not in Tier 1) if it is not tracked yet.
func (g *AdmissionGuard) Commit(key SegmentKey) { g.settle(key, g.n, true) }

// CommitBytes charges n bytes to key and releases the rest of the
// reservation. n should not exceed the reservation; if it does, the full n
// is charged anyway (the file holds those bytes and the accounting must
// match the disk), which may push UsedBytes over MaxBytes, and a warning is
// logged. Negative n counts as zero.
func (g *AdmissionGuard) CommitBytes(key SegmentKey, n int64) { g.settle(key, max(n, 0), true) }

// Release gives the whole reservation back and wakes waiters. Idempotent.
func (g *AdmissionGuard) Release() { g.settle(SegmentKey{}, 0, false) }

func (g *AdmissionGuard) settle(key SegmentKey, charge int64, commit bool) {
	g.mu.Lock()
	if g.done {
		g.mu.Unlock()
		return
	}
	g.done = true
	g.mu.Unlock()

	b := g.b
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reserved -= g.n
	if commit {
		if charge > g.n {
			b.log.Warn("tier0_commit_over_reservation",
				slog.String("stream", key.Stream), slog.Uint64("segment", key.Segment),
				slog.Int64("reserved", g.n), slog.Int64("committed", charge))
		}
		s := b.segs[key]
		if s == nil {
			s = b.addSegmentLocked(key)
		} else {
			b.lru.MoveToFront(s.lru)
		}
		s.bytes += charge
		b.used += charge
	}
	b.grantLocked()
}

// Admit reserves n bytes for stream without waiting. If the bytes are not
// free it evicts least recently touched segments that are sealed, in Tier 1
// and unpinned until they are. It returns *backpressure.Error of kind
// Admission when that is not enough, or when AdmitWait callers are already
// queued (Admit never overtakes them). A request larger than MaxBytes
// returns a *TooLargeError; a negative n is an error.
func (b *Budget) Admit(ctx context.Context, stream string, n int64) (*AdmissionGuard, error) {
	if err := b.checkRequest(stream, n); err != nil {
		return nil, err
	}
	b.mu.Lock()
	var skip map[*segment]bool
	for {
		switch {
		case b.closed:
			b.mu.Unlock()
			return nil, ErrClosed
		case n > b.max: // SetMaxBytes may have lowered it while we evicted
			err := &TooLargeError{Stream: stream, Bytes: n, MaxBytes: b.max}
			b.mu.Unlock()
			return nil, err
		case b.queue.Len() > 0:
			depth := b.queue.Len()
			b.mu.Unlock()
			return nil, backpressure.New(backpressure.Admission, stream,
				fmt.Errorf("%w: %d requests queued ahead", ErrBudgetFull, depth))
		case b.fitsLocked(n):
			g := b.reserveLocked(stream, n)
			b.mu.Unlock()
			return g, nil
		}
		cands := b.pickLocked(n, skip)
		if len(cands) == 0 {
			limit, free := b.max, b.max-b.used-b.reserved
			b.mu.Unlock()
			return nil, backpressure.New(backpressure.Admission, stream,
				fmt.Errorf("%w: need %d bytes, %d free of %d, nothing evictable", ErrBudgetFull, n, max(free, 0), limit))
		}
		b.mu.Unlock()
		failed := b.evictAll(ctx, cands)
		b.mu.Lock()
		if len(failed) > 0 {
			if skip == nil {
				skip = make(map[*segment]bool)
			}
			for _, s := range failed {
				skip[s] = true
			}
		}
	}
}

// AdmitWait reserves n bytes for stream, waiting in the activation queue
// (first in, first out; see the package doc) until they are free or ctx
// ends. While at the head of the queue it evicts as Admit does, again on
// every wake; a segment whose eviction failed is not retried until the next
// wake (space freed, a segment sealed, put in Tier 1 or unpinned, the budget
// raised), so a broken Evictor cannot make it spin. When ctx ends first it leaves the queue and returns
// *backpressure.Error of kind Admission wrapping ctx.Err(). A request larger
// than MaxBytes returns a *TooLargeError at once, and a queued request is
// failed the same way if SetMaxBytes lowers the budget below it.
func (b *Budget) AdmitWait(ctx context.Context, stream string, n int64) (*AdmissionGuard, error) {
	if err := b.checkRequest(stream, n); err != nil {
		return nil, err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	if n > b.max {
		err := &TooLargeError{Stream: stream, Bytes: n, MaxBytes: b.max}
		b.mu.Unlock()
		return nil, err
	}
	if b.queue.Len() == 0 && b.fitsLocked(n) {
		g := b.reserveLocked(stream, n)
		b.mu.Unlock()
		return g, nil
	}
	w := &waiter{stream: stream, n: n, wake: make(chan struct{}, 1)}
	w.elem = b.queue.PushBack(w)
	if d := b.queue.Len(); b.warnAt > 0 && d == b.warnAt {
		b.log.Warn("tier0_activation_queue_high", slog.Int("depth", d), slog.Int64("max_bytes", b.max))
	}
	var skip map[*segment]bool
	for {
		if w.granted {
			b.mu.Unlock()
			return &AdmissionGuard{b: b, stream: stream, n: n}, nil
		}
		if w.err != nil {
			b.mu.Unlock()
			return nil, w.err
		}
		if b.queue.Front() == w.elem {
			if cands := b.pickLocked(n, skip); len(cands) > 0 {
				skip = b.evictForFrontLocked(ctx, cands, skip)
				if ctx.Err() == nil {
					continue
				}
			}
		}
		// Every signal so far was sent under b.mu and is reflected in the
		// state just examined; drop it so that our own grantLocked calls do
		// not wake us into a busy retry of failing evictions.
		select {
		case <-w.wake:
		default:
		}
		b.mu.Unlock()
		select {
		case <-w.wake:
			// Something changed; failed candidates get another chance.
			skip = nil
			b.mu.Lock()
		case <-ctx.Done():
			b.mu.Lock()
			err := b.abandonLocked(w, ctx.Err())
			b.mu.Unlock()
			return nil, err
		}
	}
}

// evictForFrontLocked evicts cands for the waiter at the front of the
// queue, with b.mu released meanwhile, and returns skip with the
// candidates that failed added: they are not tried again until something
// changes.
func (b *Budget) evictForFrontLocked(ctx context.Context, cands []candidate, skip map[*segment]bool) map[*segment]bool {
	b.mu.Unlock()
	failed := b.evictAll(ctx, cands)
	b.mu.Lock()
	if len(failed) > 0 && skip == nil {
		skip = make(map[*segment]bool)
	}
	for _, s := range failed {
		skip[s] = true
	}
	b.grantLocked()
	return skip
}

// abandonLocked takes waiter w, whose context ended with cause, out of the
// queue and returns the error its AdmitWait answers.
func (b *Budget) abandonLocked(w *waiter, cause error) error {
	if w.err != nil {
		return w.err
	}
	if w.granted {
		// Granted while we were giving up: put the bytes back, as the
		// caller will not get a guard to release them with.
		b.reserved -= w.n
	} else {
		b.queue.Remove(w.elem)
	}
	b.grantLocked()
	return backpressure.New(backpressure.Admission, w.stream, cause)
}

func (b *Budget) checkRequest(stream string, n int64) error {
	if n < 0 {
		return fmt.Errorf("tier0: stream %s: negative admission request %d", stream, n)
	}
	return nil
}

func (b *Budget) fitsLocked(n int64) bool { return b.used+b.reserved+n <= b.max }

func (b *Budget) reserveLocked(stream string, n int64) *AdmissionGuard {
	b.reserved += n
	return &AdmissionGuard{b: b, stream: stream, n: n}
}

// grantLocked admits queued waiters from the head while they fit, then
// nudges the head, if any is left, to retry eviction.
func (b *Budget) grantLocked() {
	for e := b.queue.Front(); e != nil; e = b.queue.Front() {
		w := e.Value.(*waiter)
		if !b.fitsLocked(w.n) {
			signal(w.wake)
			return
		}
		b.queue.Remove(e)
		b.reserved += w.n
		w.granted = true
		signal(w.wake)
	}
}

func (b *Budget) failWaiterLocked(w *waiter, cause error) {
	b.queue.Remove(w.elem)
	if errors.Is(cause, ErrTooLarge) {
		w.err = cause
	} else {
		w.err = backpressure.New(backpressure.Admission, w.stream, cause)
	}
	signal(w.wake)
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// candidate is a segment chosen for eviction, with its size at the time.
type candidate struct {
	s     *segment
	bytes int64
}

// pickLocked marks as evicting, and returns, least recently touched
// evictable segments whose bytes cover the shortfall for a request of n.
// Segments in skip (their eviction just failed) are passed over. Evictions
// already in flight for other callers are not counted: when two callers
// race, a little more may be evicted than strictly needed, which is safe
// (every candidate is already in Tier 1) and keeps each caller's progress
// independent of the others' failures.
func (b *Budget) pickLocked(n int64, skip map[*segment]bool) []candidate {
	if b.evict == nil {
		return nil
	}
	need := b.used + b.reserved + n - b.max
	var out []candidate
	for e := b.lru.Back(); e != nil && need > 0; e = e.Prev() {
		s := e.Value.(*segment)
		if !s.evictable() || skip[s] {
			continue
		}
		s.evicting = true
		need -= s.bytes
		out = append(out, candidate{s: s, bytes: s.bytes})
	}
	return out
}

// evictAll calls the Evictor for each candidate in turn, with no lock held,
// and returns the segments it failed to evict. Each success wakes waiters.
func (b *Budget) evictAll(ctx context.Context, cands []candidate) (failed []*segment) {
	for _, c := range cands {
		s := c.s
		b.log.Info("tier0_eviction_scheduled",
			slog.String("stream", s.key.Stream), slog.Uint64("segment", s.key.Segment),
			slog.Int64("bytes", c.bytes))
		err := b.evict(ctx, s.key)
		b.mu.Lock()
		s.evicting = false
		if err != nil {
			b.mu.Unlock()
			b.log.Warn("tier0_eviction_failed",
				slog.String("stream", s.key.Stream), slog.Uint64("segment", s.key.Segment),
				slog.Any("err", err))
			failed = append(failed, s)
			continue
		}
		if b.segs[s.key] == s { // else Forget ran meanwhile and freed the bytes
			b.removeLocked(s)
		}
		b.evicted++
		b.grantLocked()
		b.mu.Unlock()
		b.inst.IncTier0Eviction(ctx)
	}
	return failed
}

func (b *Budget) addSegmentLocked(key SegmentKey) *segment {
	s := &segment{key: key}
	s.lru = b.lru.PushFront(s)
	b.segs[key] = s
	return s
}

func (b *Budget) removeLocked(s *segment) {
	delete(b.segs, s.key)
	b.lru.Remove(s.lru)
	b.used -= s.bytes
}

// Track registers a segment file that already exists, typically found at
// boot. If key is already tracked its bytes and flags are replaced. The
// bytes count against the budget even if that takes UsedBytes over
// MaxBytes. A tracked segment starts as most recently touched.
func (b *Budget) Track(key SegmentKey, bytes int64, sealed, inTier1 bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.segs[key]
	if s == nil {
		s = b.addSegmentLocked(key)
	} else {
		b.lru.MoveToFront(s.lru)
	}
	bytes = max(bytes, 0)
	b.used += bytes - s.bytes
	s.bytes = bytes
	s.sealed = sealed
	s.inTier1 = inTier1
	b.grantLocked()
}

// MarkSealed records that key was sealed. Unknown keys are ignored.
func (b *Budget) MarkSealed(key SegmentKey) {
	b.update(key, func(s *segment) { s.sealed = true })
}

// MarkInTier1 records whether key's Tier 1 artifact exists. Only segments
// in Tier 1 may be evicted. Unknown keys are ignored.
func (b *Budget) MarkInTier1(key SegmentKey, in bool) {
	b.update(key, func(s *segment) { s.inTier1 = in })
}

// Touch marks key as just accessed, making it the last eviction candidate.
// Unknown keys are ignored.
func (b *Budget) Touch(key SegmentKey) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.segs[key]; s != nil {
		b.lru.MoveToFront(s.lru)
	}
}

// Pin keeps key from being evicted until a matching Unpin; pins nest. It
// also touches key. It returns false, and pins nothing, when key is not
// tracked or its eviction is in progress: the file may be gone, and the
// reader must go to Tier 1.
func (b *Budget) Pin(key SegmentKey) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.segs[key]
	if s == nil || s.evicting {
		return false
	}
	s.pins++
	b.lru.MoveToFront(s.lru)
	return true
}

// Unpin undoes one successful Pin. Extra Unpins are ignored.
func (b *Budget) Unpin(key SegmentKey) {
	b.update(key, func(s *segment) {
		if s.pins > 0 {
			s.pins--
		}
	})
}

// Forget stops tracking key, whose file the caller removed, frees its bytes
// and wakes waiters. Unknown keys are ignored. If an eviction of key is in
// flight its outcome no longer changes the accounting.
func (b *Budget) Forget(key SegmentKey) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.segs[key]; s != nil {
		b.removeLocked(s)
		b.grantLocked()
	}
}

func (b *Budget) update(key SegmentKey, f func(*segment)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.segs[key]; s != nil {
		f(s)
		b.grantLocked()
	}
}

// SetMaxBytes changes the budget at run time. Raising it admits waiters
// that now fit at once, without eviction. Lowering it never evicts by
// itself; queued requests larger than the new budget are failed with a
// *TooLargeError.
func (b *Budget) SetMaxBytes(n int64) error {
	if n <= 0 {
		return fmt.Errorf("tier0: max bytes must be positive, got %d", n)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.max = n
	for e := b.queue.Front(); e != nil; {
		next := e.Next()
		if w := e.Value.(*waiter); w.n > n {
			b.failWaiterLocked(w, &TooLargeError{Stream: w.stream, Bytes: w.n, MaxBytes: n})
		}
		e = next
	}
	b.grantLocked()
	return nil
}

// MaxBytes is the budget now; a request larger than it can never be admitted.
func (b *Budget) MaxBytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.max
}

// Held reports the bytes no eviction can free now (reserved, and charged
// to segments that are not evictable: active, not yet in Tier 1, pinned
// or being evicted), the budget, and how many writers wait for admission.
func (b *Budget) Held() (held, max int64, waiting int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	held = b.reserved
	for _, s := range b.segs {
		if !s.evictable() {
			held += s.bytes
		}
	}
	return held, b.max, b.queue.Len()
}

// Stats returns a consistent snapshot of the budget.
func (b *Budget) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := Stats{
		MaxBytes:      b.max,
		UsedBytes:     b.used,
		ReservedBytes: b.reserved,
		QueueDepth:    b.queue.Len(),
		Segments:      len(b.segs),
		Evictions:     b.evicted,
	}
	for _, s := range b.segs {
		if s.evictable() {
			st.EvictableSegments++
		}
		if s.pins > 0 {
			st.PinnedSegments++
		}
	}
	return st
}

// Segments lists the tracked segments from least to most recently touched
// (eviction order), for status output.
func (b *Budget) Segments() []SegmentInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]SegmentInfo, 0, len(b.segs))
	for e := b.lru.Back(); e != nil; e = e.Prev() {
		s := e.Value.(*segment)
		out = append(out, SegmentInfo{Key: s.key, Bytes: s.bytes, Sealed: s.sealed,
			InTier1: s.inTier1, Pins: s.pins, Evicting: s.evicting})
	}
	return out
}
