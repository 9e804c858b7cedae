package tier0

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bop-aof/aof/tiers/backpressure"
)

// evictLog is an Evictor that records the keys it is asked to evict and
// fails for the keys in fail.
type evictLog struct {
	mu    sync.Mutex
	calls []SegmentKey
	fail  map[SegmentKey]error
}

func (e *evictLog) evict(_ context.Context, k SegmentKey) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, k)
	return e.fail[k]
}

func (e *evictLog) called() []SegmentKey {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.calls)
}

func key(seg uint64) SegmentKey { return SegmentKey{Stream: "orders", Segment: seg} }

func newBudget(t *testing.T, maxBytes int64, evict Evictor) *Budget {
	t.Helper()
	b, err := New(Options{MaxBytes: maxBytes, Evict: evict})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func waitDepth(t *testing.T, b *Budget, depth int) {
	t.Helper()
	eventually(t, fmt.Sprintf("queue depth %d", depth), func() bool { return b.Stats().QueueDepth == depth })
}

type admitResult struct {
	g   *AdmissionGuard
	err error
}

// admitAsync runs AdmitWait in a goroutine and returns where its answer arrives.
func admitAsync(ctx context.Context, b *Budget, stream string, n int64) <-chan admitResult {
	ch := make(chan admitResult, 1)
	go func() {
		g, err := b.AdmitWait(ctx, stream, n)
		ch <- admitResult{g, err}
	}()
	return ch
}

func receive(t *testing.T, ch <-chan admitResult) admitResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("AdmitWait did not return")
		return admitResult{}
	}
}

func assertPending(t *testing.T, ch <-chan admitResult, who string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s returned early: guard=%v err=%v", who, r.g != nil, r.err)
	case <-time.After(20 * time.Millisecond):
	}
}

// fill commits bytes to fresh unsealed segments, as active writers would.
func fill(t *testing.T, b *Budget, sizes map[uint64]int64) {
	t.Helper()
	for seg, n := range sizes {
		g, err := b.Admit(context.Background(), "orders", n)
		if err != nil {
			t.Fatalf("fill segment %d: %v", seg, err)
		}
		g.Commit(key(seg))
	}
}

func TestNewRejectsNonPositiveMaxBytes(t *testing.T) {
	for _, max := range []int64{0, -1} {
		if _, err := New(Options{MaxBytes: max}); err == nil {
			t.Errorf("New(MaxBytes=%d) succeeded, want error", max)
		}
	}
	b := newBudget(t, 10, nil)
	for _, max := range []int64{0, -5} {
		if err := b.SetMaxBytes(max); err == nil {
			t.Errorf("SetMaxBytes(%d) succeeded, want error", max)
		}
	}
	if got := b.Stats().MaxBytes; got != 10 {
		t.Errorf("MaxBytes after rejected changes = %d, want 10", got)
	}
}

func TestAdmitFullOfUnsealedDataGivesAdmissionBackpressure(t *testing.T) {
	ev := &evictLog{}
	b := newBudget(t, 100, ev.evict)
	fill(t, b, map[uint64]int64{1: 60, 2: 40})

	g, err := b.Admit(context.Background(), "orders", 1)
	if g != nil {
		t.Fatal("Admit returned a guard on a full budget")
	}
	var bp *backpressure.Error
	if !errors.As(err, &bp) || bp.Kind != backpressure.Admission || bp.Stream != "orders" {
		t.Fatalf("Admit error = %v, want Admission backpressure for stream orders", err)
	}
	if !errors.Is(err, ErrBudgetFull) {
		t.Errorf("error %v does not wrap ErrBudgetFull", err)
	}
	if calls := ev.called(); len(calls) != 0 {
		t.Errorf("unsealed segments were offered for eviction: %v", calls)
	}
	st := b.Stats()
	if st.UsedBytes != 100 || st.ReservedBytes != 0 || st.Segments != 2 || st.EvictableSegments != 0 {
		t.Errorf("stats = %+v, want 100 used, 0 reserved, 2 segments, 0 evictable", st)
	}
}

func TestAdmissionGuardSettlesOnce(t *testing.T) {
	b := newBudget(t, 100, nil)
	ctx := context.Background()

	g, _ := b.Admit(ctx, "orders", 30)
	if st := b.Stats(); st.ReservedBytes != 30 || st.UsedBytes != 0 {
		t.Fatalf("after Admit: %+v, want 30 reserved", st)
	}
	g.CommitBytes(key(1), 10)
	g.Release() // no-op after settling
	g.Commit(key(1))
	if st := b.Stats(); st.ReservedBytes != 0 || st.UsedBytes != 10 || st.Segments != 1 {
		t.Fatalf("after CommitBytes(10) of 30: %+v, want 10 used, 0 reserved, 1 segment", st)
	}

	g, _ = b.Admit(ctx, "orders", 20)
	g.Commit(key(1))
	g, _ = b.Admit(ctx, "orders", 50)
	g.Release()
	g.Release()
	if st := b.Stats(); st.ReservedBytes != 0 || st.UsedBytes != 30 || st.Segments != 1 {
		t.Fatalf("after Commit(20) and a released 50: %+v, want 30 used in 1 segment", st)
	}
	segs := b.Segments()
	if len(segs) != 1 || segs[0].Bytes != 30 || segs[0].Sealed || segs[0].InTier1 {
		t.Fatalf("segments = %+v, want one unsealed segment of 30 bytes", segs)
	}

	if _, err := b.Admit(ctx, "orders", -1); err == nil || backpressure.Is(err, backpressure.Admission) {
		t.Errorf("Admit(-1) error = %v, want a plain argument error", err)
	}
}

func TestEvictionTakesLeastRecentlyTouchedFirst(t *testing.T) {
	ev := &evictLog{}
	b := newBudget(t, 100, ev.evict)
	for seg := uint64(1); seg <= 3; seg++ {
		b.Track(key(seg), 30, true, true)
	}
	b.Touch(key(1)) // LRU order now 2, 3, 1

	g, err := b.Admit(context.Background(), "orders", 40) // 10 free, 30 short: one eviction
	if err != nil {
		t.Fatalf("Admit: %v", err)
	}
	defer g.Release()
	if got, want := ev.called(), []SegmentKey{key(2)}; !slices.Equal(got, want) {
		t.Fatalf("evicted %v, want %v", got, want)
	}

	g2, err := b.Admit(context.Background(), "orders", 50) // 0 free, 50 short: two evictions
	if err != nil {
		t.Fatalf("second Admit: %v", err)
	}
	defer g2.Release()
	if got, want := ev.called(), []SegmentKey{key(2), key(3), key(1)}; !slices.Equal(got, want) {
		t.Fatalf("evicted %v, want %v", got, want)
	}
	st := b.Stats()
	if st.Segments != 0 || st.UsedBytes != 0 || st.ReservedBytes != 90 || st.Evictions != 3 {
		t.Errorf("stats = %+v, want 0 segments, 0 used, 90 reserved, 3 evictions", st)
	}
}

func TestSealingAndTier1LetsTheQueueHeadEvictAndWakesWaitersInOrder(t *testing.T) {
	ev := &evictLog{}
	b := newBudget(t, 100, ev.evict)
	fill(t, b, map[uint64]int64{1: 50, 2: 50})
	ctx := context.Background()

	first := admitAsync(ctx, b, "orders", 50)
	waitDepth(t, b, 1)
	second := admitAsync(ctx, b, "payments", 50)
	waitDepth(t, b, 2)

	// Sealing alone is not enough: segment 1 is not in Tier 1 yet.
	b.MarkSealed(key(1))
	assertPending(t, first, "first waiter")
	if calls := ev.called(); len(calls) != 0 {
		t.Fatalf("evicted %v before the segment reached Tier 1", calls)
	}

	b.MarkInTier1(key(1), true)
	r := receive(t, first)
	if r.err != nil {
		t.Fatalf("first waiter: %v", r.err)
	}
	if got, want := ev.called(), []SegmentKey{key(1)}; !slices.Equal(got, want) {
		t.Fatalf("evicted %v, want %v", got, want)
	}
	assertPending(t, second, "second waiter")
	if d := b.Stats().QueueDepth; d != 1 {
		t.Fatalf("queue depth = %d after the first grant, want 1", d)
	}

	r.g.Commit(key(3))
	b.MarkSealed(key(2))
	b.MarkInTier1(key(2), true)
	r = receive(t, second)
	if r.err != nil {
		t.Fatalf("second waiter: %v", r.err)
	}
	r.g.Commit(key(4))
	if got, want := ev.called(), []SegmentKey{key(1), key(2)}; !slices.Equal(got, want) {
		t.Fatalf("evicted %v, want %v", got, want)
	}
	if st := b.Stats(); st.QueueDepth != 0 || st.UsedBytes != 100 || st.Segments != 2 {
		t.Errorf("stats = %+v, want empty queue, 100 used in segments 3 and 4", st)
	}
}

// A large request at the head of the queue blocks smaller ones behind it,
// even when they would fit: strict arrival order (see package doc).
func TestBigHeadWaiterBlocksSmallerOnesBehindIt(t *testing.T) {
	b := newBudget(t, 100, nil)
	fill(t, b, map[uint64]int64{1: 50, 2: 50})
	ctx := context.Background()

	big := admitAsync(ctx, b, "orders", 80)
	waitDepth(t, b, 1)
	small := admitAsync(ctx, b, "orders", 10)
	waitDepth(t, b, 2)

	b.Forget(key(1)) // 50 free: enough for small, not for big
	assertPending(t, small, "small waiter behind the big head")
	if _, err := b.Admit(ctx, "orders", 1); !backpressure.Is(err, backpressure.Admission) {
		t.Fatalf("non-blocking Admit overtook the queue: err = %v", err)
	}

	b.Forget(key(2))
	for _, ch := range []<-chan admitResult{big, small} {
		if r := receive(t, ch); r.err != nil {
			t.Fatalf("waiter: %v", r.err)
		} else {
			defer r.g.Release()
		}
	}
	if st := b.Stats(); st.ReservedBytes != 90 || st.QueueDepth != 0 {
		t.Errorf("stats = %+v, want 90 reserved and an empty queue", st)
	}
}

func TestCancelledWaiterLeavesTheQueue(t *testing.T) {
	b := newBudget(t, 100, nil)
	fill(t, b, map[uint64]int64{1: 50, 2: 50})

	ctx, cancel := context.WithCancel(context.Background())
	head := admitAsync(ctx, b, "orders", 80)
	waitDepth(t, b, 1)
	behind := admitAsync(context.Background(), b, "orders", 40)
	waitDepth(t, b, 2)
	b.Forget(key(1)) // 50 free: the 40 behind fits once the head is gone
	assertPending(t, behind, "waiter behind the head")

	cancel()
	r := receive(t, head)
	if r.g != nil {
		t.Fatal("cancelled waiter got a guard")
	}
	var bp *backpressure.Error
	if !errors.As(r.err, &bp) || bp.Kind != backpressure.Admission || !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled waiter error = %v, want Admission backpressure wrapping context.Canceled", r.err)
	}
	r = receive(t, behind)
	if r.err != nil {
		t.Fatalf("waiter behind the cancelled head: %v", r.err)
	}
	r.g.Release()
	if st := b.Stats(); st.QueueDepth != 0 || st.ReservedBytes != 0 || st.UsedBytes != 50 {
		t.Errorf("stats = %+v, want empty queue, nothing reserved, 50 used", st)
	}

	// A deadline behaves the same and leaves nothing behind.
	fill(t, b, map[uint64]int64{3: 50})
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer dcancel()
	if _, err := b.AdmitWait(dctx, "orders", 10); !errors.Is(err, context.DeadlineExceeded) || !backpressure.Is(err, backpressure.Admission) {
		t.Fatalf("AdmitWait past deadline: err = %v", err)
	}
	if st := b.Stats(); st.QueueDepth != 0 || st.ReservedBytes != 0 {
		t.Errorf("stats after deadline = %+v, want empty queue and nothing reserved", st)
	}
}

func TestRaisingMaxBytesReleasesWaitersWithoutEviction(t *testing.T) {
	ev := &evictLog{}
	b := newBudget(t, 100, ev.evict)
	fill(t, b, map[uint64]int64{1: 100})
	b.Pin(key(1)) // evictable in every other respect, so only the raise can help
	b.MarkSealed(key(1))
	b.MarkInTier1(key(1), true)

	ctx := context.Background()
	a := admitAsync(ctx, b, "orders", 30)
	waitDepth(t, b, 1)
	c := admitAsync(ctx, b, "orders", 20)
	waitDepth(t, b, 2)

	if err := b.SetMaxBytes(150); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []<-chan admitResult{a, c} {
		r := receive(t, ch)
		if r.err != nil {
			t.Fatalf("waiter after raise: %v", r.err)
		}
		defer r.g.Release()
	}
	if calls := ev.called(); len(calls) != 0 {
		t.Errorf("raise evicted %v, want nothing", calls)
	}
	if st := b.Stats(); st.QueueDepth != 0 || st.ReservedBytes != 50 || st.UsedBytes != 100 {
		t.Errorf("stats = %+v, want empty queue, 50 reserved, 100 used", st)
	}
}

func TestLoweringMaxBytesFailsWaitersThatCanNeverFit(t *testing.T) {
	b := newBudget(t, 100, nil)
	fill(t, b, map[uint64]int64{1: 100})
	ctx := context.Background()
	big := admitAsync(ctx, b, "orders", 80)
	waitDepth(t, b, 1)
	small := admitAsync(ctx, b, "orders", 20)
	waitDepth(t, b, 2)

	if err := b.SetMaxBytes(50); err != nil {
		t.Fatal(err)
	}
	r := receive(t, big)
	var tl *TooLargeError
	if !errors.As(r.err, &tl) || tl.Bytes != 80 || tl.MaxBytes != 50 {
		t.Fatalf("big waiter error = %v, want TooLargeError{80, 50}", r.err)
	}
	waitDepth(t, b, 1)
	assertPending(t, small, "small waiter (budget still over-used)")
	b.Forget(key(1))
	if r := receive(t, small); r.err != nil {
		t.Fatalf("small waiter: %v", r.err)
	} else {
		r.g.Release()
	}
}

func TestPinnedSegmentsAreNotEvicted(t *testing.T) {
	ev := &evictLog{}
	b := newBudget(t, 100, ev.evict)
	b.Track(key(1), 50, true, true)
	b.Track(key(2), 50, true, true)
	if !b.Pin(key(1)) { // Pin touches 1; touching 2 after makes 1 the LRU again
		t.Fatal("Pin of a tracked segment failed")
	}
	b.Touch(key(2))
	if b.Pin(key(99)) {
		t.Error("Pin of an unknown segment succeeded")
	}
	if st := b.Stats(); st.PinnedSegments != 1 || st.EvictableSegments != 1 {
		t.Fatalf("stats = %+v, want 1 pinned and 1 evictable", st)
	}

	ctx := context.Background()
	g, err := b.Admit(ctx, "orders", 50)
	if err != nil {
		t.Fatalf("Admit: %v", err)
	}
	g.Release()
	if got, want := ev.called(), []SegmentKey{key(2)}; !slices.Equal(got, want) {
		t.Fatalf("evicted %v, want %v (the LRU segment 1 is pinned)", got, want)
	}

	if _, err := b.Admit(ctx, "orders", 100); !backpressure.Is(err, backpressure.Admission) {
		t.Fatalf("Admit with only a pinned segment to evict: err = %v, want Admission backpressure", err)
	}
	b.Unpin(key(1))
	b.Unpin(key(1)) // extra Unpin is ignored
	g, err = b.Admit(ctx, "orders", 100)
	if err != nil {
		t.Fatalf("Admit after Unpin: %v", err)
	}
	g.Release()
	if got, want := ev.called(), []SegmentKey{key(2), key(1)}; !slices.Equal(got, want) {
		t.Fatalf("evicted %v, want %v", got, want)
	}
}

func TestPinDuringEvictionFails(t *testing.T) {
	started, finish := make(chan struct{}), make(chan struct{})
	b := newBudget(t, 10, func(ctx context.Context, k SegmentKey) error {
		close(started)
		<-finish
		return nil
	})
	b.Track(key(1), 10, true, true)
	done := admitAsync(context.Background(), b, "orders", 10)
	<-started
	if b.Pin(key(1)) {
		t.Error("Pin succeeded on a segment whose file is being deleted")
	}
	close(finish)
	if r := receive(t, done); r.err != nil {
		t.Fatalf("AdmitWait: %v", r.err)
	} else {
		r.g.Release()
	}
}

func TestEvictorErrorFallsBackToNextCandidate(t *testing.T) {
	ev := &evictLog{fail: map[SegmentKey]error{key(1): errors.New("unlink: permission denied")}}
	b := newBudget(t, 90, ev.evict)
	for seg := uint64(1); seg <= 3; seg++ {
		b.Track(key(seg), 30, true, true)
	}

	g, err := b.Admit(context.Background(), "orders", 30)
	if err != nil {
		t.Fatalf("Admit: %v", err)
	}
	g.Release()
	if got, want := ev.called(), []SegmentKey{key(1), key(2)}; !slices.Equal(got, want) {
		t.Fatalf("evictor calls %v, want %v", got, want)
	}
	segs := b.Segments()
	if len(segs) != 2 || segs[0].Key != key(1) || segs[0].Evicting {
		t.Fatalf("segments = %+v, want 1 (failed, still tracked) and 3", segs)
	}
	if st := b.Stats(); st.UsedBytes != 60 || st.EvictableSegments != 2 || st.Evictions != 1 {
		t.Errorf("stats = %+v, want 60 used, 2 evictable, 1 eviction", st)
	}
}

// A waiter whose only candidates keep failing waits for a change instead of
// calling the Evictor in a loop, and still gets its bytes when one comes.
func TestFailingEvictorDoesNotSpinTheQueueHead(t *testing.T) {
	ev := &evictLog{fail: map[SegmentKey]error{key(1): errors.New("disk gone")}}
	b := newBudget(t, 50, ev.evict)
	b.Track(key(1), 50, true, true)

	done := admitAsync(context.Background(), b, "orders", 20)
	waitDepth(t, b, 1)
	time.Sleep(50 * time.Millisecond)
	if n := len(ev.called()); n != 1 {
		t.Fatalf("evictor called %d times while nothing changed, want 1", n)
	}
	b.Forget(key(1))
	if r := receive(t, done); r.err != nil {
		t.Fatalf("AdmitWait: %v", r.err)
	} else {
		r.g.Release()
	}
}

func TestRequestLargerThanBudgetIsAnErrorNotAHang(t *testing.T) {
	b := newBudget(t, 100, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	for name, admit := range map[string]func(context.Context, string, int64) (*AdmissionGuard, error){
		"Admit": b.Admit, "AdmitWait": b.AdmitWait,
	} {
		g, err := admit(ctx, "orders", 101)
		var tl *TooLargeError
		if g != nil || !errors.As(err, &tl) || !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%s(101) with budget 100: err = %v, want TooLargeError", name, err)
		}
		if tl.Stream != "orders" || tl.Bytes != 101 || tl.MaxBytes != 100 {
			t.Errorf("%s: error fields %+v", name, *tl)
		}
		if backpressure.Is(err, backpressure.Admission) || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: oversize must not look like backpressure or a timeout: %v", name, err)
		}
	}
	if g, err := b.AdmitWait(ctx, "orders", 100); err != nil {
		t.Fatalf("request of exactly MaxBytes: %v", err)
	} else {
		g.Release()
	}
}

func TestTrackAtBootCanExceedBudgetAndForgetWakesWaiters(t *testing.T) {
	b := newBudget(t, 100, nil)
	b.Track(key(1), 80, true, false)
	b.Track(key(2), 70, false, false)
	b.Track(key(2), 60, false, false) // re-track replaces
	if st := b.Stats(); st.UsedBytes != 140 || st.Segments != 2 {
		t.Fatalf("stats = %+v, want 140 used in 2 segments", st)
	}
	done := admitAsync(context.Background(), b, "orders", 30)
	waitDepth(t, b, 1)
	b.Forget(key(1))
	b.Forget(key(1)) // unknown now: ignored
	r := receive(t, done)
	if r.err != nil {
		t.Fatalf("AdmitWait: %v", r.err)
	}
	r.g.Commit(key(2))
	if st := b.Stats(); st.UsedBytes != 90 || st.Segments != 1 {
		t.Fatalf("stats = %+v, want 90 used in 1 segment", st)
	}
}

func TestCloseFailsWaiters(t *testing.T) {
	b := newBudget(t, 10, nil)
	fill(t, b, map[uint64]int64{1: 10})
	done := admitAsync(context.Background(), b, "orders", 5)
	waitDepth(t, b, 1)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	r := receive(t, done)
	if !errors.Is(r.err, ErrClosed) || !backpressure.Is(r.err, backpressure.Admission) {
		t.Fatalf("queued waiter after Close: err = %v, want Admission wrapping ErrClosed", r.err)
	}
	if _, err := b.Admit(context.Background(), "orders", 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Admit after Close: err = %v", err)
	}
}

func TestEvictionLogsScheduledEventWithStreamAndSegment(t *testing.T) {
	var buf syncBuffer
	b, err := New(Options{
		MaxBytes: 10,
		Evict:    func(context.Context, SegmentKey) error { return nil },
		Logger:   slog.New(slog.NewJSONHandler(&buf, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	b.Track(SegmentKey{Stream: "payments", Segment: 42}, 10, true, true)
	g, err := b.Admit(context.Background(), "orders", 5)
	if err != nil {
		t.Fatal(err)
	}
	g.Release()

	var ev struct {
		Msg     string `json:"msg"`
		Stream  string `json:"stream"`
		Segment uint64 `json:"segment"`
		Bytes   int64  `json:"bytes"`
	}
	if err := json.Unmarshal(bytes.SplitN(buf.Bytes(), []byte("\n"), 2)[0], &ev); err != nil {
		t.Fatalf("decode log line %q: %v", buf.Bytes(), err)
	}
	if ev.Msg != "tier0_eviction_scheduled" || ev.Stream != "payments" || ev.Segment != 42 || ev.Bytes != 10 {
		t.Errorf("log event = %+v", ev)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.buf.Bytes())
}

func TestQueueWarnThresholdLogsWhenReached(t *testing.T) {
	var buf syncBuffer
	b, err := New(Options{MaxBytes: 10, QueueWarnThreshold: 2, Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	fill(t, b, map[uint64]int64{1: 10})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	admitAsync(ctx, b, "orders", 1)
	waitDepth(t, b, 1)
	if bytes.Contains(buf.Bytes(), []byte("tier0_activation_queue_high")) {
		t.Fatal("warned below the threshold")
	}
	admitAsync(ctx, b, "orders", 1)
	waitDepth(t, b, 2)
	if !bytes.Contains(buf.Bytes(), []byte(`"msg":"tier0_activation_queue_high","depth":2`)) {
		t.Fatalf("no queue warning at depth 2 in %s", buf.Bytes())
	}
}

// TestQueueWarnThresholdChangesAtRuntime: a threshold set by a reload
// applies to the next waiter.
func TestQueueWarnThresholdChangesAtRuntime(t *testing.T) {
	var buf syncBuffer
	b, err := New(Options{MaxBytes: 10, QueueWarnThreshold: 5, Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	fill(t, b, map[uint64]int64{1: 10})
	b.SetQueueWarnThreshold(1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	admitAsync(ctx, b, "orders", 1)
	waitDepth(t, b, 1)
	if !bytes.Contains(buf.Bytes(), []byte(`"msg":"tier0_activation_queue_high","depth":1`)) {
		t.Fatalf("no queue warning at the lowered threshold in %s", buf.Bytes())
	}
}
