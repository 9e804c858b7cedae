package ingest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/segment"
)

// memStore is a Store that keeps only each stream's next offset and
// highest ext_id, so that what an allocation count of appendBatch sees is
// the pipeline's own.
type memStore struct {
	mu   sync.Mutex
	next map[string]uint64
	last map[string]uint64
}

func newMemStore() *memStore {
	return &memStore{next: map[string]uint64{}, last: map[string]uint64{}}
}

func (s *memStore) Append(_ context.Context, stream string, recs []segment.Record) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next[stream] += uint64(len(recs))
	if len(recs) > 0 {
		s.last[stream] = recs[len(recs)-1].ExtID
	}
	return s.next[stream], nil
}

func (s *memStore) SyncTo(context.Context, string, uint64) error { return nil }

func (s *memStore) DedupeView(stream string) (tiers.Dedupe, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return tiers.Dedupe{Last: s.last[stream]}, nil
}

func (s *memStore) WaitForAdmission(context.Context, int64) error { return nil }
func (s *memStore) Resume() error                                 { return nil }
func (s *memStore) ResumeStream(string) error                     { return nil }

func (s *memStore) RecordLimit() tiers.RecordLimit {
	return tiers.RecordLimit{MaxPayload: segment.MaxPayloadBytes, Limit: "segment record limit"}
}

func (s *memStore) Streams() []string { return nil }

// TestAppendBatchAllocatesPerStreamNotPerMessage keeps the hot path's
// allocation behaviour: checking, grouping, enveloping and appending a
// batch allocates per batch and per stream (the inflight, each group's
// record and ack slices), never per message, since the envelopes share a
// pooled arena and the group slices are reused across batches.
func TestAppendBatchAllocatesPerStreamNotPerMessage(t *testing.T) {
	const (
		batch   = 2048
		streams = 4
		runs    = 20
	)
	// AllocsPerRun calls the function once more than runs, and each call
	// needs the next consumer sequences.
	msgs := make([]jetstream.Msg, (runs+1)*batch)
	for i := range msgs {
		msgs[i] = &fakeMsg{
			subject: fmt.Sprintf("aof.ingest.alloc-%d", i%streams),
			reply:   fmt.Sprintf("$JS.ACK.AOF_INGEST.gw.1.%d.%d.1700000000000000000.0", i+1, i+1),
			data:    make([]byte, 64),
		}
	}
	p, err := NewPipeline(nil, newMemStore(), Options{BatchSize: batch})
	if err != nil {
		t.Fatal(err)
	}
	next := 0
	allocs := testing.AllocsPerRun(runs, func() {
		fl, err := p.appendBatch(context.Background(), msgs[next:next+batch])
		next += batch
		if err != nil {
			t.Fatal(err)
		}
		if got := len(fl.syncs); got != streams {
			t.Fatalf("batch appended to %d streams, want %d", got, streams)
		}
		fl.span.End()
	})
	st := p.Status()
	if want := uint64((runs + 1) * batch); st.Stored != want {
		t.Fatalf("stored %d messages, want %d", st.Stored, want)
	}
	// Per batch: the inflight and its map, the span, the grouping maps,
	// one goroutine per stream and each group's slices, a few dozen in
	// all (sync.Pool drops some arenas under the race detector). One
	// allocation per message would be 2048.
	t.Logf("%.1f allocations per batch of %d messages over %d streams", allocs, batch, streams)
	if limit := float64(20 * streams); allocs > limit {
		t.Fatalf("appendBatch allocates %.1f times per batch of %d messages, want at most %.0f: something allocates per message", allocs, batch, limit)
	}
}
