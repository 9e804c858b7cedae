package ingest

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/bop-aof/aof/tiers/backpressure"
)

// resumeRecordingStore is the pipeline's Store reduced to what a consumer
// start calls: it records which streams are resumed.
type resumeRecordingStore struct {
	Store
	mu      sync.Mutex
	resumed []string
}

func (s *resumeRecordingStore) Resume() error { return nil }

func (s *resumeRecordingStore) ResumeStream(stream string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resumed = append(s.resumed, stream)
	return nil
}

// A consumer restart caused by one stream must not resume another held
// stream before its backoff ends: each resume of a flapping stream
// restarts delivery from the ack floor, and the backoff is what limits
// how often that happens.
func TestConsumerStartResumesOnlyHeldStreamsThatAreDue(t *testing.T) {
	store := &resumeRecordingStore{}
	p, err := NewPipeline(nil, store, Options{})
	if err != nil {
		t.Fatal(err)
	}
	p.resumeFirst, p.resumeMax = time.Hour, time.Hour
	ctx := context.Background()
	for _, stream := range []string{"due", "flapping"} {
		p.holdStream(ctx, stream, backpressure.New(backpressure.Flush, stream, errors.New("no space left on device")))
	}
	p.holds.mu.Lock()
	p.holds.streams["due"].nextTry = time.Now().Add(-time.Second)
	p.holds.mu.Unlock()

	if err := p.resumeAtStart(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"due"}; !reflect.DeepEqual(store.resumed, want) {
		t.Fatalf("streams resumed at the consumer start: %v, want %v (flapping's backoff has an hour to run)", store.resumed, want)
	}
	if p.isHeld("due") || !p.isHeld("flapping") {
		t.Fatalf("held after the start: due=%v flapping=%v, want only flapping", p.isHeld("due"), p.isHeld("flapping"))
	}
}
