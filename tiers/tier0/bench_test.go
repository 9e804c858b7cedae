package tier0

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
)

// The baseline is the least any shared byte budget costs: one mutex-guarded
// counter taken and given back. The other cases show what admission,
// accounting and eviction add on top of it.
func BenchmarkAdmission(b *testing.B) {
	ctx := context.Background()
	noEvict := func(context.Context, SegmentKey) error { return nil }

	b.Run("baseline_mutex_counter", func(b *testing.B) {
		var mu sync.Mutex
		var used int64
		for b.Loop() {
			mu.Lock()
			used += 100
			mu.Unlock()
			mu.Lock()
			used -= 100
			mu.Unlock()
		}
	})
	b.Run("admit_release", func(b *testing.B) {
		bud, _ := New(Options{MaxBytes: 1 << 30})
		for b.Loop() {
			g, err := bud.Admit(ctx, "orders", 100)
			if err != nil {
				b.Fatal(err)
			}
			g.Release()
		}
	})
	b.Run("admit_commit_forget", func(b *testing.B) {
		bud, _ := New(Options{MaxBytes: 1 << 30})
		var seg uint64
		for b.Loop() {
			seg++
			g, err := bud.Admit(ctx, "orders", 100)
			if err != nil {
				b.Fatal(err)
			}
			k := SegmentKey{Stream: "orders", Segment: seg}
			g.Commit(k)
			bud.Forget(k)
		}
	})
	b.Run("admit_evicting_one_segment", func(b *testing.B) {
		// The budget holds 64 sealed Tier 1 segments and is full: every
		// admission evicts the least recently used one and commits a new one.
		const segs, size = 64, 100
		bud, _ := New(Options{MaxBytes: segs * size, Evict: noEvict})
		var seg uint64
		for ; seg < segs; seg++ {
			bud.Track(SegmentKey{Stream: "orders", Segment: seg}, size, true, true)
		}
		for b.Loop() {
			g, err := bud.Admit(ctx, "orders", size)
			if err != nil {
				b.Fatal(err)
			}
			k := SegmentKey{Stream: "orders", Segment: seg}
			seg++
			g.Commit(k)
			bud.MarkSealed(k)
			bud.MarkInTier1(k, true)
		}
	})
	b.Run("parallel_baseline_mutex_counter", func(b *testing.B) {
		var mu sync.Mutex
		var used int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				mu.Lock()
				used += 100
				mu.Unlock()
				mu.Lock()
				used -= 100
				mu.Unlock()
			}
		})
	})
	b.Run("parallel_admit_commit_forget", func(b *testing.B) {
		bud, _ := New(Options{MaxBytes: 1 << 30})
		var seg atomic.Uint64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				g, err := bud.Admit(ctx, "orders", 100)
				if err != nil {
					b.Error(err)
					return
				}
				k := SegmentKey{Stream: "orders", Segment: seg.Add(1)}
				g.Commit(k)
				bud.Forget(k)
			}
		})
	})
}
