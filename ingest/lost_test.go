package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bop-aof/aof/tracing"
)

// lockedBuffer is a log destination shared by the pipeline's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records returns the JSON log records named msg.
func (b *lockedBuffer) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(b.buf.String(), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// lostRig is a rig whose pipelines log as JSON and count in instruments.
type lostRig struct {
	*rig
	reader *sdkmetric.ManualReader
	logs   *lockedBuffer
}

func newLostRig(t *testing.T, maxAge time.Duration) *lostRig {
	t.Helper()
	r := newRig(t, 5*time.Second)
	if maxAge > 0 {
		// Below the gateway's own bound (config.IngestDuplicateWindow), to
		// make messages expire within a test.
		st, err := r.js.Stream(context.Background(), "AOF_INGEST")
		if err != nil {
			t.Fatal(err)
		}
		cfg := st.CachedInfo().Config
		cfg.MaxAge, cfg.Duplicates = maxAge, maxAge
		if _, err := r.js.UpdateStream(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
	}
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { provider.Shutdown(context.Background()) })
	inst, err := tracing.NewInstruments(provider.Meter("test"))
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			logs.mu.Lock()
			t.Log("pipeline log:\n" + logs.buf.String())
			logs.mu.Unlock()
		}
	})
	r.opts.Instruments = inst
	r.opts.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	return &lostRig{rig: r, reader: reader, logs: logs}
}

func (r *lostRig) pipeline() *Pipeline {
	r.t.Helper()
	p, err := NewPipeline(r.js, r.store, r.opts)
	if err != nil {
		r.t.Fatal(err)
	}
	return p
}

// lostCount is the ingest_lost_messages counter.
func (r *lostRig) lostCount() int64 {
	r.t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.reader.Collect(context.Background(), &rm); err != nil {
		r.t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == tracing.MetricIngestLostMessages {
				var n int64
				for _, dp := range sum.DataPoints {
					n += dp.Value
				}
				return n
			}
		}
	}
	return 0
}

// expectLostLog checks the last ingest_lost_messages record is an error
// naming the JetStream stream and the sequence range.
func (r *lostRig) expectLostLog(first, last uint64) {
	r.t.Helper()
	recs := r.logs.records(r.t, "ingest_lost_messages")
	if len(recs) == 0 {
		r.t.Fatal("no ingest_lost_messages logged")
	}
	rec := recs[len(recs)-1]
	if rec["level"] != "ERROR" || rec["stream"] != "AOF_INGEST" || rec["first_sequence"] != float64(first) || rec["last_sequence"] != float64(last) {
		r.t.Fatalf("ingest_lost_messages logged as %v, want an error for AOF_INGEST sequences %d to %d", rec, first, last)
	}
}

func (r *lostRig) deleteMsgs(seqs ...uint64) {
	r.t.Helper()
	st, err := r.js.Stream(context.Background(), "AOF_INGEST")
	if err != nil {
		r.t.Fatal(err)
	}
	for _, seq := range seqs {
		if err := st.DeleteMsg(context.Background(), seq); err != nil {
			r.t.Fatal(err)
		}
	}
}

// Messages deleted from the ingest stream before any gateway read them
// are counted and logged when the pipeline starts, once.
func TestMessagesDeletedBeforeTheGatewayRanAreCountedAndLogged(t *testing.T) {
	r := newLostRig(t, 0)
	r.publish("s", 10)
	r.deleteMsgs(1, 2, 3)
	if err := r.run(r.pipeline()); err != nil {
		t.Fatal(err)
	}
	if n := r.lostCount(); n != 3 {
		t.Fatalf("ingest_lost_messages = %d, want 3", n)
	}
	r.expectLostLog(1, 3)
	if v, _ := r.store.DedupeView("s"); !v.Stored(10) || v.Stored(11) {
		t.Fatalf("the messages still held were not stored: %+v", v)
	}
	if err := r.run(r.pipeline()); err != nil {
		t.Fatal(err)
	}
	if n := r.lostCount(); n != 3 {
		t.Fatalf("ingest_lost_messages = %d after a second start, want the same 3", n)
	}
}

// Messages that expire (the stream's max age) while no gateway runs are
// counted at the next start, from the first one the consumer had not
// handled.
func TestMessagesExpiredWhileNoGatewayRanAreCountedAndLogged(t *testing.T) {
	r := newLostRig(t, time.Second)
	r.publish("s", 2)
	if err := r.run(r.pipeline()); err != nil {
		t.Fatal(err)
	}
	r.publish("t", 5) // sequences 3 to 7
	waitFirstSeq(t, r.js, 8)
	r.publish("u", 1)
	if err := r.run(r.pipeline()); err != nil {
		t.Fatal(err)
	}
	if n := r.lostCount(); n != 5 {
		t.Fatalf("ingest_lost_messages = %d, want 5", n)
	}
	r.expectLostLog(3, 7)
	r.expectStored("u", 1)
}

func waitFirstSeq(t *testing.T, js jetstream.JetStream, want uint64) {
	t.Helper()
	waitUntil(t, "messages to expire", 10*time.Second, func() bool {
		st, err := js.Stream(context.Background(), "AOF_INGEST")
		if err != nil {
			return false
		}
		info, err := st.Info(context.Background())
		return err == nil && info.State.FirstSeq >= want
	})
}

// blockedSync holds every fsync until released.
type blockedSync struct {
	Store
	release chan struct{}
}

func (s *blockedSync) SyncTo(ctx context.Context, stream string, next uint64) error {
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.Store.SyncTo(ctx, stream, next)
}

// Messages removed while the pipeline runs but cannot take them (here its
// fsync is stuck and max_ack_pending is full) are counted by the periodic
// check, from the one after the last delivered: JetStream itself moves
// the consumer over them once it has terminated the delivered ones. The
// two delivered before are stored, not counted. (Deleted from the newest,
// so that no message is delivered in between; an expiry by max age
// removes them the same way, from the oldest.)
func TestMessagesRemovedWhileRunningAreCountedAndLogged(t *testing.T) {
	r := newLostRig(t, 0)
	r.opts.Consumer.MaxAckPending = 2
	r.opts.LostCheckInterval = 100 * time.Millisecond
	store := &blockedSync{Store: r.store, release: make(chan struct{})}
	p, err := NewPipeline(r.js, store, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	r.publish("s", 10)
	waitUntil(t, "two deliveries", 10*time.Second, func() bool {
		c, err := r.js.Consumer(context.Background(), "AOF_INGEST", "gw")
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.NumAckPending == 2
	})
	r.deleteMsgs(10, 9, 8, 7, 6, 5, 4, 3, 2, 1)
	waitUntil(t, "the periodic check", 10*time.Second, func() bool { return r.lostCount() > 0 })
	close(store.release)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := r.lostCount(); n != 8 {
		t.Fatalf("ingest_lost_messages = %d, want the 8 never delivered", n)
	}
	r.expectLostLog(3, 10)
	if v, _ := r.store.DedupeView("s"); v.Last != 2 {
		t.Fatalf("stored through %d, want the 2 delivered before the removal", v.Last)
	}
}

// On a partitioned stream without a max age, nothing but a purge removes
// a message, and the other partitions' owners purge what they archived:
// a first sequence above this partition's position is no loss.
func TestOtherPartitionsPurgesAreNotCountedAsLost(t *testing.T) {
	r := newLostRig(t, 0)
	const partitions = 4
	if _, err := EnsureIngestStream(context.Background(), r.js, StreamSettings{Name: "AOF_INGEST", Subjects: []string{"aof.ingest.>"}, Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
	r.opts.Partitions, r.opts.PartitionOf = partitions, serverPartition(partitions)
	a, b := "a", "b"
	if serverPartition(partitions)(a) == serverPartition(partitions)(b) {
		t.Fatal("pick streams of different partitions")
	}
	r.publish(a, 3) // sequences 1 to 3
	r.publish(b, 3)
	pu := newPurger(t, r.js, PurgerOptions{Partitions: partitions, PartitionOf: serverPartition(partitions)})
	if err := pu.PurgeArchived(context.Background(), a, 3); err != nil {
		t.Fatal(err)
	}
	r.opts.Partition = serverPartition(partitions)(b)
	if err := r.run(r.pipeline()); err != nil {
		t.Fatal(err)
	}
	r.expectStored(b, 3)
	if n := r.lostCount(); n != 0 {
		t.Fatalf("ingest_lost_messages = %d after another partition's purge", n)
	}
}
