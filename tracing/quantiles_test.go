package tracing

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// exactQuantile is the nearest-rank definition Quantiles estimates.
func exactQuantile(sorted []float64, p float64) float64 {
	rank := int(math.Ceil(p * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

func TestQuantilesWithinRelativeError(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := []struct {
		name string
		gen  func() float64
	}{
		{"uniform 1..10000 ms", func() float64 { return 1 + rng.Float64()*9999 }},
		{"log-normal around 20 ms", func() float64 { return math.Exp(3 + rng.NormFloat64()) }},
		{"bimodal cache hit / Tier 2 fetch", func() float64 {
			if rng.IntN(10) == 0 {
				return 800 + rng.Float64()*1500
			}
			return 0.2 + rng.Float64()*2
		}},
		{"sub-millisecond", func() float64 { return 0.001 + rng.Float64()*0.5 }},
	}
	for _, d := range dists {
		t.Run(d.name, func(t *testing.T) {
			q := NewQuantiles()
			vals := make([]float64, 20000)
			for i := range vals {
				vals[i] = d.gen()
				q.Observe(vals[i])
			}
			slices.Sort(vals)
			for _, p := range []float64{0.01, 0.25, 0.5, 0.9, 0.99, 0.999} {
				want := exactQuantile(vals, p)
				got := q.Quantile(p)
				if rel := math.Abs(got-want) / want; rel > 1.0/128+1e-12 {
					t.Errorf("p%v = %v, exact %v: relative error %.4f > 1/128", p*100, got, want, rel)
				}
			}
			if q.Quantile(0) != vals[0] || q.Quantile(1) != vals[len(vals)-1] {
				t.Errorf("Quantile(0), Quantile(1) = %v, %v; want exact min %v, max %v",
					q.Quantile(0), q.Quantile(1), vals[0], vals[len(vals)-1])
			}
		})
	}
}

func TestQuantilesEdgeCases(t *testing.T) {
	q := NewQuantiles()
	if q.Quantile(0.5) != 0 || q.Summary() != (QuantileSummary{}) {
		t.Fatal("empty estimator should report zeros")
	}
	q.Observe(-1)
	q.Observe(math.NaN())
	if q.Summary().Count != 0 {
		t.Fatal("negative and NaN observations were counted")
	}
	q.Observe(42)
	s := q.Summary()
	if s.Count != 1 || s.P50 != 42 || s.P99 != 42 || s.Min != 42 || s.Max != 42 || s.Mean != 42 {
		t.Fatalf("single observation summary %+v, want every figure 42", s)
	}
	q.Observe(0)
	if got := q.Quantile(0.5); got != 0 {
		t.Errorf("p50 of {0, 42} = %v, want 0", got)
	}
	q.Observe(1e12) // beyond the last bucket: clamped to the true max
	if got := q.Quantile(1); got != 1e12 {
		t.Errorf("max = %v, want 1e12", got)
	}
	q.Reset()
	if q.Summary().Count != 0 {
		t.Error("Reset kept observations")
	}
	var nilQ *Quantiles
	nilQ.Observe(1)
	if nilQ.Quantile(0.5) != 0 {
		t.Error("nil Quantiles should report 0")
	}
}

// Every positive float in range lands in a bucket whose midpoint is within
// 1/128 of it, and indexes are monotone.
func TestQuantIndexBounds(t *testing.T) {
	prev := -1
	for v := math.Ldexp(1, quantMinExp-1); v < math.Ldexp(1, quantMaxExp); v *= 1.003 {
		i := quantIndex(v)
		if i < prev {
			t.Fatalf("index not monotone at %v: %d after %d", v, i, prev)
		}
		prev = i
		if rel := math.Abs(quantMid(i)-v) / v; rel > 1.0/128+1e-12 {
			t.Fatalf("value %v in bucket %d with midpoint %v: relative error %v", v, i, quantMid(i), rel)
		}
	}
}

func TestQuantilesConcurrent(t *testing.T) {
	q := NewQuantiles()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				q.Observe(float64(w*1000 + i + 1))
				_ = q.Quantile(0.99)
			}
		}()
	}
	wg.Wait()
	if s := q.Summary(); s.Count != 4000 || s.Max != 4000 || s.Min != 1 {
		t.Fatalf("summary %+v, want count 4000, min 1, max 4000", s)
	}
}

func BenchmarkQuantilesObserve(b *testing.B) {
	q := NewQuantiles()
	for i := 0; b.Loop(); i++ {
		q.Observe(float64(i%10000) + 0.5)
	}
}

// Baseline for BenchmarkQuantilesObserve: the cost of the lock alone.
func BenchmarkMutexBaseline(b *testing.B) {
	var mu sync.Mutex
	var n uint64
	for b.Loop() {
		mu.Lock()
		n++
		mu.Unlock()
	}
	_ = n
}
