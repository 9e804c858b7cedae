package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tracing"
)

// holdRig is a rig whose store runs on a fault-injecting file system and
// rolls segments every few records, so that a stream's appends soon reach
// its manifest (SealSegment records).
type holdRig struct {
	*rig
	ffs    *vfs.FaultFS
	reader *sdkmetric.ManualReader
	// seqs are the JetStream sequences of the messages published, per
	// stream, in publish order.
	seqs map[string][]uint64
}

func newHoldRig(t *testing.T) *holdRig {
	t.Helper()
	n := harness.StartNATS(t)
	js := n.JetStream(t)
	ctx := context.Background()
	if _, err := EnsureIngestStream(ctx, js, StreamSettings{Name: "AOF_INGEST", Subjects: []string{"aof.ingest.>"}}); err != nil {
		t.Fatal(err)
	}
	if err := EnsureDeadLetterStream(ctx, js, "AOF_INGEST_DEADLETTER", "aof.deadletter"); err != nil {
		t.Fatal(err)
	}
	ffs := vfs.NewFaultFS(nil)
	store, err := tiers.Open(ctx, tiers.Options{Root: t.TempDir(), FS: ffs, SegmentTargetBytes: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { provider.Shutdown(context.Background()) })
	inst, err := tracing.NewInstruments(provider.Meter("test"))
	if err != nil {
		t.Fatal(err)
	}
	return &holdRig{
		rig: &rig{t: t, js: js, store: store, opts: Options{
			Consumer:    ConsumerSettings{Stream: "AOF_INGEST", Durable: "gw", AckWait: 5 * time.Second, MaxAckPending: 1000},
			BatchSize:   16,
			Instruments: inst,
		}},
		ffs: ffs, reader: reader, seqs: map[string][]uint64{},
	}
}

// publishBodies publishes stream-from .. stream-(from+n-1) and records
// their sequences.
func (r *holdRig) publishBodies(stream string, from, n int) {
	r.t.Helper()
	for i := from; i < from+n; i++ {
		ack, err := r.js.Publish(context.Background(), "aof.ingest."+stream, []byte(fmt.Sprintf("%s-%d", stream, i)))
		if err != nil {
			r.t.Fatal(err)
		}
		r.seqs[stream] = append(r.seqs[stream], ack.Sequence)
	}
}

// pipeline returns a pipeline that retries held streams quickly.
func (r *holdRig) pipeline() *Pipeline {
	r.t.Helper()
	p, err := NewPipeline(r.js, r.store, r.opts)
	if err != nil {
		r.t.Fatal(err)
	}
	p.resumeFirst, p.resumeMax = 50*time.Millisecond, 200*time.Millisecond
	return p
}

// start runs p in the background, running it again after ErrDeliveryLost
// as the gateway does (a loaded machine drops deliveries); any other
// return ends it. The returned stop ends it and returns what Run returned.
func (r *holdRig) start(p *Pipeline) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		for {
			err := p.Run(ctx)
			if errors.Is(err, ErrDeliveryLost) && ctx.Err() == nil {
				continue
			}
			errc <- err
			return
		}
	}()
	r.t.Cleanup(cancel)
	return func() error {
		cancel()
		select {
		case err := <-errc:
			return err
		case <-time.After(30 * time.Second):
			r.t.Fatal("Run did not return within 30s of its context ending")
			return nil
		}
	}
}

// waitUntil polls cond until it holds, failing the test after timeout.
func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// extIDs reads stream from its first record and returns the ext_id of
// each, in offset order.
func extIDs(t *testing.T, s *tiers.Store, stream string) []uint64 {
	t.Helper()
	rd, err := s.Reader(stream)
	if errors.Is(err, tiers.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var out []uint64
	for {
		e, err := rd.TryNext(context.Background())
		if err != nil {
			return out
		}
		out = append(out, e.ExtID)
	}
}

// consumerPending is what the consumer has not had acked: delivered and
// unacked, plus not delivered yet.
func (r *holdRig) consumerPending() (int, bool) {
	c, err := r.js.Consumer(context.Background(), "AOF_INGEST", "gw")
	if err != nil {
		return 0, false
	}
	info, err := c.Info(context.Background())
	if err != nil {
		return 0, false
	}
	return info.NumAckPending + int(info.NumPending), true
}

// backpressureCount is the backpressure counter of kind.
func (r *holdRig) backpressureCount(kind string) int64 {
	r.t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.reader.Collect(context.Background(), &rm); err != nil {
		r.t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if m.Name != tracing.MetricBackpressure || !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				if v, ok := dp.Attributes.Value(tracing.MetricAttrKind); ok && v.AsString() == kind {
					return dp.Value
				}
			}
		}
	}
	return 0
}

// ackLog counts the distinct messages a pipeline acked, per subject token.
type ackLog struct {
	mu   sync.Mutex
	seqs map[string]map[uint64]bool
}

// recordAcks makes p record every message it acks.
func recordAcks(p *Pipeline) *ackLog {
	l := &ackLog{seqs: map[string]map[uint64]bool{}}
	p.ack = func(m jetstream.Msg) error {
		seq, _, err := deliverySequences(m)
		if err != nil {
			return err
		}
		stream := strings.TrimPrefix(m.Subject(), "aof.ingest.")
		l.mu.Lock()
		if l.seqs[stream] == nil {
			l.seqs[stream] = map[uint64]bool{}
		}
		l.seqs[stream][seq] = true
		l.mu.Unlock()
		return m.Ack()
	}
	return l
}

func (l *ackLog) count(stream string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seqs[stream])
}

func manifestOfStream(stream string) func(string) bool {
	return func(n string) bool {
		return strings.Contains(n, "/manifest/"+stream+"/") && strings.HasSuffix(n, ".mlog")
	}
}

func heldKinds(p *Pipeline) map[string]string {
	out := map[string]string{}
	for _, h := range p.Status().HeldStreams {
		out[h.Stream] = h.Kind
	}
	return out
}

// TestStreamWithFailedManifestIsHeldWhileOthersIngest: stream a's manifest
// cannot be fsynced (ENOSPC), so the seal of its segment cannot be
// recorded and the store answers Flush backpressure for it. The pipeline
// holds a alone: b's messages published afterwards are stored and acked
// while a waits, unacked, in JetStream. When the disk has room again the
// same Run resumes a and stores every one of its messages once, in
// publish order.
func TestStreamWithFailedManifestIsHeldWhileOthersIngest(t *testing.T) {
	r := newHoldRig(t)
	p := r.pipeline()
	acked := recordAcks(p)
	stop := r.start(p)

	r.publishBodies("a", 0, 5)
	r.publishBodies("b", 0, 5)
	waitUntil(t, "the first messages stored", 30*time.Second, func() bool {
		return len(extIDs(t, r.store, "a")) == 5 && len(extIDs(t, r.store, "b")) == 5
	})

	r.ffs.Inject(vfs.Fault{Op: vfs.OpSync, Err: vfs.ENOSPC, Match: manifestOfStream("a")})
	// Enough for a to roll over its 1 KiB segments, interleaved with b.
	for i := 0; i < 4; i++ {
		r.publishBodies("a", 5+10*i, 10)
		r.publishBodies("b", 5+10*i, 10)
	}
	waitUntil(t, "stream a held", 30*time.Second, func() bool { return heldKinds(p)["a"] == "flush" })
	if got := r.backpressureCount("flush"); got < 1 {
		t.Fatalf("backpressure{kind=flush} = %d after a was held, want at least 1", got)
	}
	storedA := len(extIDs(t, r.store, "a"))
	if storedA >= 45 {
		t.Fatalf("all %d messages of a stored while its manifest cannot be written", storedA)
	}

	// b goes on: messages published after a was held are stored and
	// acked; what the consumer still holds is a's alone. (Some of a's
	// may be stored and yet unacked: the failed seal made them durable
	// after their sync was refused. They are acked as duplicates once a
	// resumes.)
	r.publishBodies("b", 45, 30)
	waitUntil(t, "b's messages stored and acked while a is held", 30*time.Second, func() bool {
		if len(extIDs(t, r.store, "b")) != 75 || acked.count("b") != 75 {
			return false
		}
		pending, ok := r.consumerPending()
		return ok && pending == 45-acked.count("a")
	})
	if held := heldKinds(p); held["a"] != "flush" || held["b"] != "" {
		t.Fatalf("held streams %v, want a alone (flush)", held)
	}
	r.expectStored("b", 75)

	// The disk has room again: the same Run resumes a.
	r.ffs.Reset()
	r.publishBodies("a", 45, 5)
	waitUntil(t, "a resumed and drained", 60*time.Second, func() bool {
		pending, ok := r.consumerPending()
		return ok && pending == 0 && len(p.Status().HeldStreams) == 0
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v, want nil: the pipeline must not stop for one stream's full disk", err)
	}
	r.expectStored("a", 50)
	r.expectStored("b", 75)
}

// TestHeldStreamStoresEachRecordOnceInSequenceOrder: stream a fails twice
// while both streams take a steady flow (its manifest, then its segment's
// fsync), and each time the pipeline holds and resumes it. a's records
// must be exactly its published sequences, each once, in sequence order:
// one stored out of order would make sequence dedupe drop an older one.
func TestHeldStreamStoresEachRecordOnceInSequenceOrder(t *testing.T) {
	r := newHoldRig(t)
	p := r.pipeline()
	stop := r.start(p)

	publish := func(rounds int) {
		for range rounds {
			r.publishBodies("a", len(r.seqs["a"]), 3)
			r.publishBodies("b", len(r.seqs["b"]), 2)
		}
	}
	publish(10)
	manifestFault := r.ffs.Inject(vfs.Fault{Op: vfs.OpSync, Err: vfs.ENOSPC, Match: manifestOfStream("a")})
	publish(20)
	waitUntil(t, "a held for its manifest", 30*time.Second, func() bool { return heldKinds(p)["a"] != "" })
	publish(10)
	r.ffs.Reset()
	publish(10)
	waitUntil(t, "a resumed", 30*time.Second, func() bool { return heldKinds(p)["a"] == "" })
	if manifestFault.Fired() == 0 {
		t.Fatal("the manifest fault never fired")
	}
	dataFault := r.ffs.Inject(vfs.Fault{Op: vfs.OpSync, Err: vfs.ENOSPC, Times: 3,
		Match: func(n string) bool { return strings.Contains(n, "/tier0/a/") && strings.HasSuffix(n, ".seg") }})
	publish(30)
	waitUntil(t, "everything stored and acked", 60*time.Second, func() bool {
		pending, ok := r.consumerPending()
		return ok && pending == 0 && len(p.Status().HeldStreams) == 0
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if dataFault.Fired() == 0 {
		t.Fatal("the segment fsync fault never fired")
	}

	for _, stream := range []string{"a", "b"} {
		got := extIDs(t, r.store, stream)
		counts := storedSeqs(t, r.store, stream)
		for _, seq := range r.seqs[stream] {
			if counts[seq] != 1 {
				t.Errorf("%s: sequence %d stored %d times", stream, seq, counts[seq])
			}
		}
		if len(got) != len(r.seqs[stream]) {
			t.Errorf("%s: %d records stored, %d published", stream, len(got), len(r.seqs[stream]))
		}
		for i := 1; i < len(got); i++ {
			if got[i] <= got[i-1] {
				t.Fatalf("%s: ext_id %d at offset %d after %d: stored out of sequence order", stream, got[i], i, got[i-1])
			}
		}
	}
}

// TestHeldStreamFillingMaxAckPendingResumes: the held stream's messages
// fill the consumer's max_ack_pending, so JetStream delivers nothing more,
// for any stream. The pipeline keeps trying to resume the held stream
// without deliveries, and once the disk has room every message of both
// streams is stored once, in order.
func TestHeldStreamFillingMaxAckPendingResumes(t *testing.T) {
	r := newHoldRig(t)
	r.opts.Consumer.MaxAckPending = 20
	p := r.pipeline()
	stop := r.start(p)

	r.publishBodies("a", 0, 5)
	waitUntil(t, "the first messages stored", 30*time.Second, func() bool { return len(extIDs(t, r.store, "a")) == 5 })
	r.ffs.Inject(vfs.Fault{Op: vfs.OpSync, Err: vfs.ENOSPC, Match: manifestOfStream("a")})
	r.publishBodies("a", 5, 60)
	r.publishBodies("b", 0, 20)
	waitUntil(t, "a held with max_ack_pending full", 30*time.Second, func() bool {
		c, err := r.js.Consumer(context.Background(), "AOF_INGEST", "gw")
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.NumAckPending == 20 && heldKinds(p)["a"] == "flush"
	})
	if n := len(extIDs(t, r.store, "b")); n == 20 {
		t.Fatalf("all of b stored although a's held messages fill max_ack_pending ahead of it")
	}

	r.ffs.Reset()
	waitUntil(t, "everything stored and acked", 60*time.Second, func() bool {
		pending, ok := r.consumerPending()
		return ok && pending == 0 && len(p.Status().HeldStreams) == 0
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	r.expectStored("a", 65)
	r.expectStored("b", 20)
}
