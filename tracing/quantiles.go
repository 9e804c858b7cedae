package tracing

import (
	"math"
	"sync"
)

// Quantiles estimates quantiles of a stream of non-negative observations
// (hydration latencies in milliseconds) in constant memory.
//
// It is a log-linear histogram in the manner of HdrHistogram: each power of
// two between 2^quantMinExp and 2^quantMaxExp is split into quantSubBuckets
// equal-width buckets, so a bucket is at most 1/64 of its lower bound wide,
// and reporting a bucket's midpoint is within 1/128 (0.8 %) of every value
// it holds. Reports are clamped to the exact minimum and maximum seen, so
// Quantile(0) and Quantile(1) are exact. Values below 2^(quantMinExp-1)
// (about 0.5 ns when observing milliseconds), zero included, are reported as
// the minimum seen; values above 2^quantMaxExp (about 35 min) count in the
// last bucket; negative and NaN values are ignored.
//
// The zero value is not usable; create one with NewQuantiles. Safe for
// concurrent use.
type Quantiles struct {
	mu     sync.Mutex
	counts [quantBuckets]uint64
	under  uint64 // observations below the first bucket
	n      uint64
	sum    float64
	min    float64
	max    float64
}

const (
	quantMinExp     = -20 // 2^-21 .. 2^-20 is the first range (≈ 0.5-1 ns in ms)
	quantMaxExp     = 21  // 2^20 .. 2^21 ms is the last range (≈ 17-35 min)
	quantSubBuckets = 64
	quantBuckets    = (quantMaxExp - quantMinExp + 1) * quantSubBuckets
)

// NewQuantiles returns an empty estimator.
func NewQuantiles() *Quantiles {
	return &Quantiles{min: math.Inf(1), max: math.Inf(-1)}
}

// quantIndex maps v to its bucket, -1 for values below the first one. math.Frexp gives v = frac * 2^exp
// with frac in [0.5, 1); the sub-bucket is the position of frac in that
// half-open interval.
func quantIndex(v float64) int {
	if v <= 0 {
		return -1
	}
	frac, exp := math.Frexp(v)
	if exp < quantMinExp {
		return -1
	}
	if exp > quantMaxExp {
		return quantBuckets - 1
	}
	sub := int((frac - 0.5) * 2 * quantSubBuckets)
	if sub >= quantSubBuckets { // guard against rounding at frac just below 1
		sub = quantSubBuckets - 1
	}
	return (exp-quantMinExp)*quantSubBuckets + sub
}

// quantMid is the midpoint of bucket i.
func quantMid(i int) float64 {
	exp := i/quantSubBuckets + quantMinExp
	sub := i % quantSubBuckets
	lo := math.Ldexp(0.5+float64(sub)/(2*quantSubBuckets), exp)
	hi := math.Ldexp(0.5+float64(sub+1)/(2*quantSubBuckets), exp)
	return (lo + hi) / 2
}

// Observe adds one observation.
func (q *Quantiles) Observe(v float64) {
	if q == nil || v < 0 || math.IsNaN(v) {
		return
	}
	i := quantIndex(v)
	q.mu.Lock()
	if i < 0 {
		q.under++
	} else {
		q.counts[i]++
	}
	q.n++
	q.sum += v
	q.min = math.Min(q.min, v)
	q.max = math.Max(q.max, v)
	q.mu.Unlock()
}

// Quantile returns the nearest-rank estimate of quantile p in [0, 1]: the
// observation of rank ceil(p*n), within 0.8 %. It returns 0 when nothing was
// observed; p outside [0, 1] is clamped.
func (q *Quantiles) Quantile(p float64) float64 {
	if q == nil {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.quantileLocked(p)
}

func (q *Quantiles) quantileLocked(p float64) float64 {
	if q.n == 0 {
		return 0
	}
	switch {
	case !(p > 0): // also NaN
		return q.min
	case p >= 1:
		return q.max
	}
	rank := uint64(math.Ceil(p * float64(q.n)))
	if rank < 1 {
		rank = 1
	}
	seen := q.under
	if seen >= rank {
		return q.min
	}
	for i, c := range q.counts {
		seen += c
		if seen >= rank {
			return math.Min(math.Max(quantMid(i), q.min), q.max)
		}
	}
	return q.max
}

// QuantileSummary is what dumps print.
type QuantileSummary struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean"`
	Min   float64 `json:"min"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

// Summary returns count, mean, min, p50, p90, p99 and max from one
// consistent view. All are 0 when nothing was observed.
func (q *Quantiles) Summary() QuantileSummary {
	if q == nil {
		return QuantileSummary{}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return QuantileSummary{}
	}
	return QuantileSummary{
		Count: q.n,
		Mean:  q.sum / float64(q.n),
		Min:   q.min,
		P50:   q.quantileLocked(0.50),
		P90:   q.quantileLocked(0.90),
		P99:   q.quantileLocked(0.99),
		Max:   q.max,
	}
}

// Reset forgets every observation.
func (q *Quantiles) Reset() {
	if q == nil {
		return
	}
	q.mu.Lock()
	q.counts = [quantBuckets]uint64{}
	q.under, q.n, q.sum = 0, 0, 0
	q.min, q.max = math.Inf(1), math.Inf(-1)
	q.mu.Unlock()
}
