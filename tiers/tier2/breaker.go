package tier2

import (
	"errors"
	"sync"
	"time"
)

// ErrBreakerOpen is returned without contacting the object store while the
// circuit breaker is open, or half-open with its one probe in flight.
var ErrBreakerOpen = errors.New("tier2: circuit breaker open")

// BreakerState is the circuit breaker's state.
type BreakerState int

const (
	// BreakerClosed: calls go through.
	BreakerClosed BreakerState = iota
	// BreakerOpen: calls fail fast with ErrBreakerOpen until the cooldown ends.
	BreakerOpen
	// BreakerHalfOpen: one probe call is let through; its outcome closes or
	// reopens the breaker.
	BreakerHalfOpen
)

func (s BreakerState) String() string {
	return [...]string{"closed", "open", "half-open"}[s]
}

// breaker opens after `failures` consecutive failed attempts that say the
// store is unreachable or failing (reasons 0 and 3). Auth errors and missing
// objects are answers from a healthy store and reset the count.
type breaker struct {
	failures int
	cooldown time.Duration
	now      func() time.Time

	mu       sync.Mutex
	state    BreakerState
	count    int
	openedAt time.Time
	probing  bool
}

func newBreaker(p BreakerPolicy) *breaker {
	return &breaker{failures: p.Failures, cooldown: p.Cooldown, now: time.Now}
}

// set changes the thresholds; the current state and count stay.
func (b *breaker) set(p BreakerPolicy) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.Failures > 0 {
		b.failures = p.Failures
	}
	if p.Cooldown > 0 {
		b.cooldown = p.Cooldown
	}
}

// allow reports whether an attempt may proceed. A true answer must be
// followed by exactly one record call.
func (b *breaker) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case BreakerOpen:
		if b.now().Sub(b.openedAt) < b.cooldown {
			return false
		}
		b.state = BreakerHalfOpen
		b.probing = true
		return true
	case BreakerHalfOpen:
		if b.probing {
			return false
		}
		b.probing = true
		return true
	}
	return true
}

// record reports an attempt's outcome: healthy is false for failures that
// count against the store.
func (b *breaker) record(healthy bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == BreakerHalfOpen {
		b.probing = false
		if healthy {
			b.state, b.count = BreakerClosed, 0
		} else {
			b.state, b.openedAt = BreakerOpen, b.now()
		}
		return
	}
	if healthy {
		b.count = 0
		return
	}
	b.count++
	if b.count >= b.failures && b.state == BreakerClosed {
		b.state, b.openedAt = BreakerOpen, b.now()
	}
}

func (b *breaker) State() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == BreakerOpen && b.now().Sub(b.openedAt) >= b.cooldown {
		return BreakerHalfOpen
	}
	return b.state
}
