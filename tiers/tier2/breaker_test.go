package tier2

import (
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

func minioStatOpts() minio.StatObjectOptions { return minio.StatObjectOptions{} }

func TestBreakerOpensFailsFastAndLetsOneProbeThrough(t *testing.T) {
	now := time.Unix(0, 0)
	b := newBreaker(BreakerPolicy{Failures: 3, Cooldown: time.Second})
	b.now = func() time.Time { return now }

	for range 2 {
		b.allow()
		b.record(false)
	}
	b.allow()
	b.record(true) // a success resets the count
	for range 2 {
		b.allow()
		b.record(false)
	}
	if b.State() != BreakerClosed {
		t.Fatal("opened before 3 consecutive failures")
	}
	b.allow()
	b.record(false)
	if b.State() != BreakerOpen || b.allow() {
		t.Fatalf("after 3 consecutive failures: state %v, want open and failing fast", b.State())
	}
	now = now.Add(time.Second)
	if !b.allow() {
		t.Fatal("no probe after the cooldown")
	}
	if b.allow() {
		t.Fatal("a second call went through while the probe is in flight")
	}
	b.record(false) // probe fails: open again for a full cooldown
	now = now.Add(500 * time.Millisecond)
	if b.allow() {
		t.Fatal("failed probe did not reopen the breaker")
	}
	now = now.Add(500 * time.Millisecond)
	if !b.allow() {
		t.Fatal("no second probe")
	}
	b.record(true)
	if b.State() != BreakerClosed || !b.allow() || !b.allow() {
		t.Fatal("successful probe did not close the breaker")
	}
}

// TestBreakerThresholdsChangeAtRuntime: a reload's new failure count and
// cooldown apply to the next failures and to an open breaker's probe.
func TestBreakerThresholdsChangeAtRuntime(t *testing.T) {
	now := time.Unix(0, 0)
	b := newBreaker(BreakerPolicy{Failures: 5, Cooldown: time.Minute})
	b.now = func() time.Time { return now }
	b.set(BreakerPolicy{Failures: 2, Cooldown: time.Second})
	for range 2 {
		b.allow()
		b.record(false)
	}
	if b.State() != BreakerOpen {
		t.Fatalf("state %v after 2 failures with the threshold lowered to 2, want open", b.State())
	}
	now = now.Add(time.Second)
	if !b.allow() {
		t.Fatal("no probe after the new one-second cooldown")
	}
	b.set(BreakerPolicy{}) // zero fields keep their value
	if b.failures != 2 || b.cooldown != time.Second {
		t.Fatalf("zero policy changed the thresholds: %d, %v", b.failures, b.cooldown)
	}
}
