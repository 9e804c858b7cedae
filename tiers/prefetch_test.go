package tiers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

// countingBucket counts the reads of each object and can fail the first
// ranged GETs of one.
type countingBucket struct {
	tier2.Bucket
	mu        sync.Mutex
	ranges    map[string]int
	gets      int
	failRange map[string]int  // key: GetRanges still to refuse
	hang      map[string]bool // key: GetRanges wait for their context to end
}

func newCountingBucket() *countingBucket {
	return &countingBucket{Bucket: memory.New(), ranges: map[string]int{}, failRange: map[string]int{}, hang: map[string]bool{}}
}

func (c *countingBucket) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	c.mu.Lock()
	c.ranges[key]++
	fail := c.failRange[key] > 0
	if fail {
		c.failRange[key]--
	}
	hang := c.hang[key]
	c.mu.Unlock()
	if hang {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if fail {
		return nil, errors.New("injected get-range failure")
	}
	return c.Bucket.GetRange(ctx, key, off, n)
}

func (c *countingBucket) Get(ctx context.Context, key string, w io.Writer) (tier2.ObjectMeta, error) {
	c.mu.Lock()
	c.gets++
	c.mu.Unlock()
	return c.Bucket.Get(ctx, key, w)
}

func (c *countingBucket) rangesOf(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ranges[key]
}

// coldStream writes stream over several small segments, uploads them and
// drops their local copies, keeping the last sealed one in Tier 1 when
// keepLast. It returns the cold segments' Tier 2 keys in order.
func coldStream(t *testing.T, s *Store, stream string, n int, keepLast bool) []string {
	t.Helper()
	ctx := testCtx(t)
	appendN(t, s, stream, 0, n)
	if _, err := s.Seal(ctx, stream, false); err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, s, stream)
	segs := s.Segments(stream)
	var keys []string
	for i, st := range segs {
		if st.State != "sealed" {
			continue
		}
		if keepLast && i == len(segs)-2 {
			waitFor(t, "tier 1 copy of the last sealed segment", func() bool {
				return s.Segments(stream)[i].InTier1
			})
			continue
		}
		if err := evictIdle(ctx, s, stream, st.Segment); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tier2.SegmentKey(stream, st.Segment))
	}
	if len(keys) < 5 {
		t.Fatalf("%d cold segments, the test wants at least 5", len(keys))
	}
	return keys
}

func prefetchStore(t *testing.T, b tier2.Bucket, segments int, budget int64) *Store {
	return openStore(t, Options{Root: t.TempDir(), SegmentTargetBytes: 4 << 10, FrameBytes: 1 << 10, Tier2: b,
		PrefetchSegments: segments, PrefetchBytes: budget})
}

// scan reads stream from offset 0 with read-ahead, checking every record,
// calling each after every record.
func scan(t *testing.T, s *Store, stream string, n int, each func(i int)) {
	t.Helper()
	r, err := s.Reader(stream)
	if err != nil {
		t.Error(err)
		return
	}
	defer r.Close()
	r.SetReadAhead(true)
	for i := 0; i < n; i++ {
		e, err := r.Next(testCtx(t))
		if err != nil {
			t.Errorf("read offset %d: %v", i, err)
			return
		}
		if e.Offset != uint64(i) || !bytes.Equal(e.Payload, payload(stream, i)) {
			t.Errorf("offset %d: got offset %d payload %q", i, e.Offset, e.Payload)
			return
		}
		if each != nil {
			each(i)
		}
	}
}

func tier1Copies(s *Store, stream string) []bool {
	var out []bool
	for _, st := range s.Segments(stream) {
		out = append(out, st.InTier1)
	}
	return out
}

func TestSequentialColdReadPrefetchesTheNextSegments(t *testing.T) {
	b := newCountingBucket()
	s := prefetchStore(t, b, 2, 0)
	defer s.Close()
	const n = 400
	keys := coldStream(t, s, "scan", n, true)
	before := tier1Copies(s, "scan")

	r, _ := s.Reader("scan")
	defer r.Close()
	r.SetReadAhead(true)
	if _, err := r.Next(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	// Reading the first cold segment started the next two, not the third.
	waitFor(t, "prefetch of the next two segments", func() bool { return b.rangesOf(keys[1]) == 1 && b.rangesOf(keys[2]) == 1 })
	if got := b.rangesOf(keys[3]); got != 0 {
		t.Fatalf("segment 3 ahead of the reader: %d ranged GETs, want none yet", got)
	}
	r.Close()

	scan(t, s, "scan", n, nil)
	// Only the first segment was read frame by frame; each later one is a
	// single ranged GET of its whole object (smaller than a chunk), shared
	// by both readers.
	if got := b.rangesOf(keys[0]); got < 3 {
		t.Fatalf("first cold segment: %d ranged GETs, want its frames read ranged", got)
	}
	for i, k := range keys[1:] {
		if got := b.rangesOf(k); got != 1 {
			t.Errorf("cold segment %d (%s): %d ranged GETs, want the one prefetch", i+1, k, got)
		}
	}
	b.mu.Lock()
	gets := b.gets
	b.mu.Unlock()
	if gets != 0 {
		t.Errorf("%d whole-object GETs: a read-ahead scan must not hydrate", gets)
	}
	if after := tier1Copies(s, "scan"); !slicesEqual(before, after) {
		t.Errorf("tier 1 copies before the scan %v, after %v: prefetched segments must not enter Tier 1", before, after)
	}
}

// The read service opens a Reader per batch: a reader that opens a cold
// segment with ranged GETs starts its download, so that the readers of
// the batches after it read that segment from memory too, not only the
// segments after it.
func TestReaderThatOpensAColdSegmentPrefetchesItForTheNextReaders(t *testing.T) {
	b := newCountingBucket()
	s := prefetchStore(t, b, 2, 0)
	defer s.Close()
	const n = 400
	keys := coldStream(t, s, "batches", n, false)
	first, err := s.Reader("batches")
	if err != nil {
		t.Fatal(err)
	}
	first.SetReadAhead(true)
	if _, err := first.Next(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	first.Close()
	waitFor(t, "the first segment in memory", func() bool {
		s.prefetch.mu.Lock()
		defer s.prefetch.mu.Unlock()
		buf, ok := s.prefetch.bufs[keys[0]]
		return ok && buf.elem != nil // downloaded and idle
	})
	ranged := b.rangesOf(keys[0])

	next, err := s.Reader("batches")
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	next.SetReadAhead(true)
	next.Seek(1)
	seg0 := s.Segments("batches")[0]
	for off := uint64(1); off < seg0.NextOffset; off++ {
		e, err := next.Next(testCtx(t))
		if err != nil || e.Offset != off || !bytes.Equal(e.Payload, payload("batches", int(off))) {
			t.Fatalf("offset %d: got %d, %v", off, e.Offset, err)
		}
	}
	if got := b.rangesOf(keys[0]); got != ranged {
		t.Fatalf("the next reader of the first segment made %d ranged GETs of it, want none: it is in memory", got-ranged)
	}
}

func TestConcurrentReadersShareOnePrefetch(t *testing.T) {
	b := newCountingBucket()
	s := prefetchStore(t, b, 2, 0)
	defer s.Close()
	const n = 400
	keys := coldStream(t, s, "shared", n, false)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			scan(t, s, "shared", n, nil)
		}()
	}
	wg.Wait()
	for i, k := range keys[1:] {
		if got := b.rangesOf(k); got != 1 {
			t.Errorf("cold segment %d read by 4 readers: %d ranged GETs, want one shared prefetch", i+1, got)
		}
	}
}

// checkBudget fails unless the prefetcher's accounting matches its buffers
// and stays within the budget.
func checkBudget(t *testing.T, p *prefetcher) (used int64) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var sum int64
	for _, b := range p.bufs {
		sum += b.size
		select {
		case <-b.done:
			if int64(len(b.data)) != b.size {
				t.Fatalf("buffer %s holds %d bytes, reserved %d", b.key, len(b.data), b.size)
			}
		default:
		}
	}
	if sum != p.used || p.used > p.budget {
		t.Fatalf("prefetch buffers reserve %d bytes, accounted %d, budget %d", sum, p.used, p.budget)
	}
	return p.used
}

func TestPrefetchStaysWithinItsByteBudget(t *testing.T) {
	b := newCountingBucket()
	s := prefetchStore(t, b, 4, 1) // resized below, once segment sizes are known
	defer s.Close()
	const n = 400
	keys := coldStream(t, s, "budget", n, false)
	size := s.Segments("budget")[1].CompressedBytes
	s.prefetch.budget = size * 5 / 2
	var peak int64
	scan(t, s, "budget", n, func(int) { peak = max(peak, checkBudget(t, s.prefetch)) })
	if peak == 0 {
		t.Fatal("nothing was prefetched")
	}
	// Four segments ahead do not fit in two and a half: the farther ones
	// were skipped, and the reader's nearer ones never evicted for them.
	prefetched := 0
	for _, k := range keys[1:] {
		if b.rangesOf(k) == 1 {
			prefetched++
		}
	}
	t.Logf("segment of %d bytes, budget %d, peak %d, %d of %d later segments prefetched", size, s.prefetch.budget, peak, prefetched, len(keys)-1)
	if prefetched != len(keys)-1 {
		t.Errorf("%d of %d later segments prefetched: the next segment must stay prefetched within the budget", prefetched, len(keys)-1)
	}
}

func TestSlowReaderDoesNotBlockOthers(t *testing.T) {
	b := newCountingBucket()
	s := prefetchStore(t, b, 2, 1)
	defer s.Close()
	const n = 400
	keys := coldStream(t, s, "slow", n, false)
	// Room for one segment: the slow reader's holds it all.
	s.prefetch.budget = s.Segments("slow")[1].CompressedBytes * 3 / 2
	slow, _ := s.Reader("slow")
	defer slow.Close()
	slow.SetReadAhead(true)
	second := s.Segments("slow")[1].BaseOffset
	slow.Seek(second - 1)
	for range 2 { // into the second cold segment, then stall there
		if _, err := slow.Next(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	if slow.buf == nil {
		t.Fatal("the slow reader does not hold a prefetched buffer")
	}
	scan(t, s, "slow", n, func(int) { checkBudget(t, s.prefetch) })
	if got := b.rangesOf(keys[2]); got <= 1 {
		t.Fatalf("segment after the held one: %d ranged GETs, want it read ranged past the full budget", got)
	}
}

func TestPrefetchFailureFallsBackToRangedReads(t *testing.T) {
	b := newCountingBucket()
	s := prefetchStore(t, b, 2, 0)
	defer s.Close()
	const n = 400
	keys := coldStream(t, s, "flaky", n, false)
	b.mu.Lock()
	b.failRange[keys[1]] = 1 // the prefetch's one GET
	b.mu.Unlock()
	scan(t, s, "flaky", n, nil)
	if got := b.rangesOf(keys[1]); got <= 1 {
		t.Fatalf("segment whose prefetch failed: %d ranged GETs, want it read ranged after the failure", got)
	}
	if got := b.rangesOf(keys[2]); got != 1 {
		t.Fatalf("next segment: %d ranged GETs, want its prefetch", got)
	}
}

// A reader waits for a download in flight only as long as its own context
// allows, and closing the store cancels the downloads.
func TestPrefetchWaitEndsWithTheReadersContextAndCloseCancelsIt(t *testing.T) {
	b := newCountingBucket()
	s := prefetchStore(t, b, 2, 0)
	const n = 400
	keys := coldStream(t, s, "stuck", n, false)
	b.mu.Lock()
	b.hang[keys[1]] = true
	b.mu.Unlock()
	second := s.Segments("stuck")[1].BaseOffset
	r, _ := s.Reader("stuck")
	r.SetReadAhead(true)
	for i := uint64(0); i < second; i++ {
		if _, err := r.Next(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(testCtx(t), 200*time.Millisecond)
	defer cancel()
	if _, err := r.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read of a segment whose prefetch hangs: %v, want the reader's deadline", err)
	}
	r.Close()
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("store close did not end the hanging prefetch")
	}
}

func slicesEqual(a, b []bool) bool {
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
