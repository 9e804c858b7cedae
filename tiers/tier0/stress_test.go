package tier0

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bop-aof/aof/tiers/backpressure"
)

// fakeDisk models the Tier 0 files the budget accounts for: the bytes each
// segment file holds.
type fakeDisk struct {
	mu    sync.Mutex
	files map[SegmentKey]int64
}

func (d *fakeDisk) add(k SegmentKey, n int64) {
	d.mu.Lock()
	d.files[k] += n
	d.mu.Unlock()
}

func (d *fakeDisk) remove(k SegmentKey) {
	d.mu.Lock()
	delete(d.files, k)
	d.mu.Unlock()
}

// Many writers admit, commit, seal and forget while readers pin and touch,
// the evictor fails now and then and the budget is resized. At the end the
// budget must agree byte for byte with the files that exist, and never have
// promised more than the larger budget.
func TestConcurrentAdmissionKeepsAccountingExact(t *testing.T) {
	const (
		workers  = 16
		lowMax   = 2048
		highMax  = 4096
		maxBatch = 256
	)
	iterations := 2000
	if testing.Short() {
		iterations = 300
	}
	disk := &fakeDisk{files: map[SegmentKey]int64{}}
	var evictorCalls, evictorFailures atomic.Int64
	b := newBudget(t, highMax, func(_ context.Context, k SegmentKey) error {
		evictorCalls.Add(1)
		if rand.IntN(10) == 0 {
			evictorFailures.Add(1)
			return errors.New("injected unlink failure")
		}
		disk.remove(k)
		return nil
	})

	var overcommitted atomic.Int64
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Go(func() { // resizes the budget and checks the promise invariant
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Microsecond):
			}
			if i%10 == 0 {
				_ = b.SetMaxBytes([]int64{lowMax, highMax}[i/10%2])
			}
			if st := b.Stats(); st.UsedBytes+st.ReservedBytes > highMax {
				overcommitted.Store(st.UsedBytes + st.ReservedBytes)
			}
		}
	})

	var admitted, refused atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			stream := fmt.Sprintf("s%d", w)
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			active := SegmentKey{Stream: stream, Segment: 1}
			var sealed []SegmentKey
			roll := func() {
				b.MarkSealed(active)
				b.MarkInTier1(active, true)
				sealed = append(sealed, active)
				active = SegmentKey{Stream: stream, Segment: active.Segment + 1}
			}
			for range iterations {
				n := 1 + rng.Int64N(maxBatch)
				var g *AdmissionGuard
				var err error
				if rng.IntN(2) == 0 {
					g, err = b.Admit(context.Background(), stream, n)
				} else {
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rng.IntN(3000))*time.Microsecond)
					g, err = b.AdmitWait(ctx, stream, n)
					cancel()
				}
				if err != nil {
					if !backpressure.Is(err, backpressure.Admission) {
						t.Errorf("%s: admit %d: unexpected error %v", stream, n, err)
						return
					}
					refused.Add(1)
					roll() // our own active data may be what fills the budget
					continue
				}
				admitted.Add(1)
				switch rng.IntN(4) {
				case 0:
					g.Release()
				case 1:
					disk.add(active, n)
					g.Commit(active)
				default:
					m := rng.Int64N(n + 1)
					disk.add(active, m)
					g.CommitBytes(active, m)
				}
				switch r := rng.IntN(10); {
				case r == 0:
					roll()
				case r == 1 && len(sealed) > 0:
					i := rng.IntN(len(sealed))
					disk.remove(sealed[i]) // the store deletes a file itself
					b.Forget(sealed[i])
					sealed = append(sealed[:i], sealed[i+1:]...)
				case r <= 4 && len(sealed) > 0:
					k := sealed[rng.IntN(len(sealed))]
					if b.Pin(k) {
						b.Touch(k)
						b.Unpin(k)
					}
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	bg.Wait()

	if v := overcommitted.Load(); v != 0 {
		t.Errorf("used+reserved reached %d, over the largest budget %d", v, highMax)
	}
	st := b.Stats()
	if st.ReservedBytes != 0 || st.QueueDepth != 0 {
		t.Errorf("after all writers finished: %+v, want nothing reserved or queued", st)
	}
	var sum int64
	for _, s := range b.Segments() {
		sum += s.Bytes
		if s.Pins != 0 || s.Evicting {
			t.Errorf("segment %v left pinned or evicting: %+v", s.Key, s)
		}
	}
	if st.UsedBytes != sum {
		t.Errorf("UsedBytes = %d, sum of tracked segments = %d", st.UsedBytes, sum)
	}
	disk.mu.Lock()
	defer disk.mu.Unlock()
	var onDisk int64
	for _, n := range disk.files {
		onDisk += n
	}
	segs := b.Segments()
	if st.UsedBytes != onDisk {
		t.Errorf("UsedBytes = %d, bytes in files = %d", st.UsedBytes, onDisk)
	}
	for _, s := range segs {
		if n, ok := disk.files[s.Key]; !ok || n != s.Bytes {
			t.Errorf("segment %v: budget says %d bytes, file has %d (exists %v)", s.Key, s.Bytes, n, ok)
		}
	}
	t.Logf("admitted %d, refused %d, evictor calls %d (%d failed), evictions %d, %d segments left",
		admitted.Load(), refused.Load(), evictorCalls.Load(), evictorFailures.Load(), st.Evictions, len(segs))
	if admitted.Load() == 0 || st.Evictions == 0 {
		t.Errorf("the stress test exercised nothing: %d admitted, %d evictions", admitted.Load(), st.Evictions)
	}
}
