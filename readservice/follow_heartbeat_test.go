package readservice

import (
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/readapi"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tiers/tier2/memory"
)

// slowBucket is the in-memory bucket whose reads of a segment object
// (Get, GetRange) take delay once armed: a cold segment on a slow Tier 2.
type slowBucket struct {
	*memory.Bucket
	delay time.Duration
	armed atomic.Bool
}

func (b *slowBucket) wait(ctx context.Context, key string) {
	if !b.armed.Load() || !strings.Contains(key, "seg") {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(b.delay):
	}
}

func (b *slowBucket) Get(ctx context.Context, key string, w io.Writer) (tier2.ObjectMeta, error) {
	b.wait(ctx, key)
	return b.Bucket.Get(ctx, key, w)
}

func (b *slowBucket) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	b.wait(ctx, key)
	return b.Bucket.GetRange(ctx, key, off, n)
}

// evictToTier2 waits until every sealed segment of stream is in Tier 2
// and drops its local copies, so a read must fetch it back.
func evictToTier2(t *testing.T, s *tiers.Store, stream string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, st := range s.Segments(stream) {
		if st.State != "sealed" {
			continue
		}
		for !segmentInTier2(s, stream, st.Segment) {
			if time.Now().After(deadline) {
				t.Fatalf("segment %d of %s not uploaded", st.Segment, stream)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := s.EvictLocal(testCtx(t), stream, st.Segment); err != nil {
			t.Fatalf("evict local copies of segment %d: %v", st.Segment, err)
		}
	}
}

func segmentInTier2(s *tiers.Store, stream string, id uint64) bool {
	for _, st := range s.Segments(stream) {
		if st.Segment == id {
			return st.InTier2
		}
	}
	return false
}

// A follow request that meets a segment only in Tier 2 (fetched by
// ranged GETs for a small batch or a seek, hydrated for a large batch)
// keeps sending heartbeats while the segment comes back: the client takes
// three missed heartbeats for a lost gateway and asks again.
func TestFollowGetsHeartbeatsWhileAColdSegmentIsFetched(t *testing.T) {
	for _, tc := range []struct {
		maxMsgs  int
		startSeq uint64
	}{{1, 0}, {100, 0}, {100, 1}} {
		maxMsgs := tc.maxMsgs
		b := &slowBucket{Bucket: memory.New(), delay: 1500 * time.Millisecond}
		f := newFixtureWith(t, b, Options{})
		appendN(t, f.store, "orders", 0, 10, seqPlusOne)
		seal(t, f.store, "orders")
		evictToTier2(t, f.store, "orders")
		b.armed.Store(true)
		if !hasSegmentKey(b.Keys()) {
			t.Fatalf("no segment object among the bucket's keys %v", b.Keys())
		}
		start := time.Now()
		a := request(t, f.nc, "orders", readapi.Request{MaxMsgs: maxMsgs, StartSeq: tc.startSeq, Follow: true, HeartbeatMS: 200, ExpiresMS: 5000}, 0)
		t.Logf("max_msgs %d start_seq %d: %d heartbeats, %d records in %v", maxMsgs, tc.startSeq, a.heartbeats, len(a.records), time.Since(start))
		if time.Since(start) < b.delay {
			t.Fatalf("max_msgs %d: answered in %v, before the slow Tier 2 read of %v", maxMsgs, time.Since(start), b.delay)
		}
		if a.heartbeats < 3 {
			t.Fatalf("max_msgs %d: %d heartbeats during a %v fetch with heartbeat_ms 200, want at least 3", maxMsgs, a.heartbeats, b.delay)
		}
		want := min(maxMsgs, 10)
		if len(a.records) != want {
			t.Fatalf("max_msgs %d: %d records (%s), want %d", maxMsgs, len(a.records), a.final.Data, want)
		}
		checkRecords(t, "orders", a.records, 0, seqPlusOne)
		a.eob(t)
	}
}

func hasSegmentKey(keys []string) bool {
	for _, k := range keys {
		if strings.Contains(k, "seg") {
			return true
		}
	}
	return false
}

// The end of batch is the last message of a follow request: no heartbeat
// is published after it, whether it ended at the expiry, at the tail or
// after a cold segment was fetched.
func TestFollowSendsNoHeartbeatAfterTheEndOfBatch(t *testing.T) {
	b := &slowBucket{Bucket: memory.New(), delay: 500 * time.Millisecond}
	f := newFixtureWith(t, b, Options{})
	appendN(t, f.store, "orders", 0, 5, seqPlusOne)
	seal(t, f.store, "orders")
	evictToTier2(t, f.store, "orders")
	b.armed.Store(true)
	appendN(t, f.store, "orders", 5, 5, seqPlusOne)
	reqs := []readapi.Request{
		{StartOffset: 10, Follow: true, HeartbeatMS: 100, ExpiresMS: 350}, // expires
		{StartOffset: 5, Follow: true, HeartbeatMS: 100, ExpiresMS: 350},  // at the tail
		{StartOffset: 0, Follow: true, HeartbeatMS: 100, ExpiresMS: 350},  // cold, then tail
	}
	for i := 0; i < 3; i++ {
		for _, req := range reqs {
			sub := send(t, f.nc, "orders", req)
			a := collect(t, sub, 0)
			a.eob(t)
			if m, err := sub.NextMsg(500 * time.Millisecond); err != nats.ErrTimeout {
				t.Fatalf("request %+v: after the end of batch got %v (%v), want nothing", req, msgStatus(m), err)
			}
			sub.Unsubscribe()
		}
	}
}

func msgStatus(m *nats.Msg) string {
	if m == nil {
		return "no message"
	}
	return "status " + m.Header.Get(readapi.HeaderStatus)
}
