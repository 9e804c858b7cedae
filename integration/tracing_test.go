package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tracing"
)

// traceRig is the in-process gateway of the trace tests: an embedded
// JetStream server, a versitygw Tier 2, a real tiers.Store and an
// ingest.Pipeline wired as cmd/aof-gateway wires them, all sharing one SDK
// TracerProvider whose spans a tracetest.SpanRecorder sees synchronously.
type traceRig struct {
	t        *testing.T
	rec      *tracetest.SpanRecorder
	tp       *sdktrace.TracerProvider
	producer trace.Tracer
	js       jetstream.JetStream
	store    *tiers.Store
}

const traceStream = "orders"

func newTraceRig(t *testing.T, segmentTargetBytes int64) *traceRig {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	tr := tp.Tracer(tracing.InstrumentationName)

	n := harness.StartNATS(t)
	s3 := harness.StartS3(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t2, err := tier2.New(ctx, tier2.Options{Endpoint: s3.Endpoint, Bucket: s3.Bucket, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey})
	if err != nil {
		t.Fatalf("tier2: %v", err)
	}
	store, err := tiers.Open(ctx, tiers.Options{
		Root:               filepath.Join(t.TempDir(), "data"),
		Tier2:              t2,
		SegmentTargetBytes: segmentTargetBytes,
		Tracer:             tr,
	})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { store.Close() })

	js := n.JetStream(t)
	if _, err := ingest.EnsureIngestStream(ctx, js, ingest.StreamSettings{Name: "AOF_INGEST", Subjects: []string{"aof.ingest.>"}}); err != nil {
		t.Fatal(err)
	}
	if err := ingest.EnsureDeadLetterStream(ctx, js, "AOF_INGEST_DEADLETTER", "aof.deadletter"); err != nil {
		t.Fatal(err)
	}
	p, err := ingest.NewPipeline(js, store, ingest.Options{
		Consumer: ingest.ConsumerSettings{Stream: "AOF_INGEST", Durable: "aof-gateway"},
		Tracer:   tr,
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("pipeline run: %v", err)
		}
	})
	return &traceRig{t: t, rec: rec, tp: tp, producer: tp.Tracer("producer"), js: js, store: store}
}

// publish sends one message inside a producer span, the way an instrumented
// client would (traceparent injected into the NATS headers), waits until the
// gateway has stored it, and returns the producer span's context and the
// message's JetStream sequence.
func (r *traceRig) publish(body string) (trace.SpanContext, uint64) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pctx, span := r.producer.Start(ctx, "producer.publish", trace.WithSpanKind(trace.SpanKindProducer))
	msg := nats.NewMsg("aof.ingest." + traceStream)
	msg.Data = []byte(body)
	tracing.Inject(pctx, msg.Header)
	ack, err := r.js.PublishMsg(pctx, msg)
	span.End()
	if err != nil {
		r.t.Fatalf("publish: %v", err)
	}
	for {
		d, err := r.store.DedupeView(traceStream)
		if err != nil {
			r.t.Fatal(err)
		}
		if d.Last >= ack.Sequence {
			return span.SpanContext(), ack.Sequence
		}
		select {
		case <-ctx.Done():
			r.t.Fatalf("message %d not stored within 30s", ack.Sequence)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// waitSpan waits until an ended span satisfies match and returns it.
func (r *traceRig) waitSpan(what string, match func(sdktrace.ReadOnlySpan) bool) sdktrace.ReadOnlySpan {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, s := range r.rec.Ended() {
			if match(s) {
				return s
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("no ended span %s within 30s; ended spans:\n%s", what, describeSpans(r.rec.Ended()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func named(name string) func(sdktrace.ReadOnlySpan) bool {
	return func(s sdktrace.ReadOnlySpan) bool { return s.Name() == name }
}

func and(ps ...func(sdktrace.ReadOnlySpan) bool) func(sdktrace.ReadOnlySpan) bool {
	return func(s sdktrace.ReadOnlySpan) bool {
		for _, p := range ps {
			if !p(s) {
				return false
			}
		}
		return true
	}
}

func inTrace(id trace.TraceID) func(sdktrace.ReadOnlySpan) bool {
	return func(s sdktrace.ReadOnlySpan) bool { return s.SpanContext().TraceID() == id }
}

func childOf(sc trace.SpanContext) func(sdktrace.ReadOnlySpan) bool {
	return func(s sdktrace.ReadOnlySpan) bool { return s.Parent().SpanID() == sc.SpanID() }
}

func withInt(k attribute.Key, v int64) func(sdktrace.ReadOnlySpan) bool {
	return func(s sdktrace.ReadOnlySpan) bool {
		got, ok := spanAttr(s, k)
		return ok && got.Type() == attribute.INT64 && got.AsInt64() == v
	}
}

func linkedTo(sc trace.SpanContext) func(sdktrace.ReadOnlySpan) bool {
	return func(s sdktrace.ReadOnlySpan) bool {
		for _, l := range s.Links() {
			if l.SpanContext.TraceID() == sc.TraceID() && l.SpanContext.SpanID() == sc.SpanID() {
				return true
			}
		}
		return false
	}
}

func spanAttr(s sdktrace.ReadOnlySpan, k attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == k {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// requireAttrs fails unless s carries aof.stream = stream (unless stream is
// empty) and a positive int64 for every other key given.
func requireAttrs(t *testing.T, s sdktrace.ReadOnlySpan, stream string, positive ...attribute.Key) {
	t.Helper()
	if v, ok := spanAttr(s, tracing.AttrStream); stream != "" && (!ok || v.AsString() != stream) {
		t.Errorf("%s: %s = %q (present %v), want %q", s.Name(), tracing.AttrStream, v.Emit(), ok, stream)
	}
	for _, k := range positive {
		if v, ok := spanAttr(s, k); !ok || v.Type() != attribute.INT64 || v.AsInt64() <= 0 {
			t.Errorf("%s: %s = %s (present %v), want a positive integer", s.Name(), k, v.Emit(), ok)
		}
	}
}

func describeSpans(spans []sdktrace.ReadOnlySpan) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "  %s trace=%s span=%s parent=%s links=%d attrs=%v\n", s.Name(),
			s.SpanContext().TraceID(), s.SpanContext().SpanID(), s.Parent().SpanID(), len(s.Links()), s.Attributes())
	}
	return b.String()
}

// A producer's message is followed, in one trace, from the producer's span
// through the ingest batch to the append and fsync of its record; sealing
// the segment on behalf of that trace puts the seal span in the same trace,
// and the Tier 1 compress and Tier 2 upload of that very segment are linked
// to it: compress to the trace's span that sealed, upload to compress.
func TestOneTraceFromProducerThroughAppendFsyncSealCompressUpload(t *testing.T) {
	r := newTraceRig(t, 0)
	producer, _ := r.publish("order 1")
	tid := producer.TraceID()

	batch := r.waitSpan("aof.ingest.batch child of the producer span",
		and(named(tracing.SpanIngestBatch), inTrace(tid), childOf(producer)))
	requireAttrs(t, batch, "", tracing.AttrRecords) // the batch spans streams: no aof.stream
	appendSpan := r.waitSpan("aof.append child of the batch",
		and(named(tracing.SpanAppend), inTrace(tid), childOf(batch.SpanContext())))
	requireAttrs(t, appendSpan, traceStream, tracing.AttrSegment, tracing.AttrRecords, tracing.AttrBytes)
	fsync := r.waitSpan("aof.fsync child of the batch",
		and(named(tracing.SpanFsync), inTrace(tid), childOf(batch.SpanContext())))
	requireAttrs(t, fsync, traceStream, tracing.AttrSegment)

	seg, _ := spanAttr(appendSpan, tracing.AttrSegment)
	if v, _ := spanAttr(fsync, tracing.AttrSegment); v.AsInt64() != seg.AsInt64() {
		t.Errorf("fsync of segment %d, append to segment %d", v.AsInt64(), seg.AsInt64())
	}

	// Seal on behalf of the producer's trace, as an operator's or a
	// producer's traced request for a seal would.
	sealCtx := trace.ContextWithSpanContext(context.Background(), producer)
	id, err := r.store.Seal(sealCtx, traceStream, false)
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	if int64(id) != seg.AsInt64() {
		t.Fatalf("sealed segment %d, the producer's record went to segment %d", id, seg.AsInt64())
	}
	seal := r.waitSpan("aof.seal of the segment in the producer's trace",
		and(named(tracing.SpanSeal), inTrace(tid), withInt(tracing.AttrSegment, seg.AsInt64())))
	requireAttrs(t, seal, traceStream, tracing.AttrSegment, tracing.AttrRecords, tracing.AttrBytes)
	if v, _ := spanAttr(seal, tracing.AttrRecords); v.AsInt64() != 1 {
		t.Errorf("seal: %s = %d, want 1 (the producer's one record)", tracing.AttrRecords, v.AsInt64())
	}

	// The background work has no parent: it is linked into the trace that
	// sealed. tiers links compress to the span context of the seal
	// request (the seal span's parent); accept a link to the seal span
	// itself too, which is the stricter design.
	compress := r.waitSpan("aof.tier1.compress of the segment",
		and(named(tracing.SpanTier1Compress), withInt(tracing.AttrSegment, seg.AsInt64())))
	if !linkedTo(seal.SpanContext())(compress) && !linkedTo(seal.Parent())(compress) {
		t.Errorf("aof.tier1.compress links %v, want a link to the seal span %s or its parent %s",
			compress.Links(), seal.SpanContext().SpanID(), seal.Parent().SpanID())
	}
	requireAttrs(t, compress, traceStream, tracing.AttrSegment, tracing.AttrBytes)
	upload := r.waitSpan("aof.tier2.upload of the segment linked to compress",
		and(named(tracing.SpanTier2Upload), withInt(tracing.AttrSegment, seg.AsInt64()), linkedTo(compress.SpanContext())))
	requireAttrs(t, upload, traceStream, tracing.AttrSegment)
	for _, s := range []sdktrace.ReadOnlySpan{compress, upload} {
		if s.Status().Code.String() == "Error" {
			t.Errorf("%s ended with error status: %s", s.Name(), s.Status().Description)
		}
	}
}

// When a segment rolls because the next append does not fit, the seal runs
// inside that next message's trace: the seal span of the full segment is a
// child of the ingest batch that rolled it, and the Tier 1 compress and
// Tier 2 upload of the sealed segment are linked back into that trace. This
// is the path the gateway takes with segment.target_bytes.
func TestSizeRollSealsInTheTraceOfTheAppendThatRolled(t *testing.T) {
	r := newTraceRig(t, 1000)
	body := strings.Repeat("x", 700) // one record fills most of a 1000-byte segment
	first, _ := r.publish(body)
	firstAppend := r.waitSpan("aof.append of the first message",
		and(named(tracing.SpanAppend), inTrace(first.TraceID())))
	seg, _ := spanAttr(firstAppend, tracing.AttrSegment)

	second, _ := r.publish(body)
	tid := second.TraceID()
	batch := r.waitSpan("aof.ingest.batch of the second message",
		and(named(tracing.SpanIngestBatch), inTrace(tid), childOf(second)))
	seal := r.waitSpan("aof.seal of the first segment in the second message's trace",
		and(named(tracing.SpanSeal), inTrace(tid), childOf(batch.SpanContext()), withInt(tracing.AttrSegment, seg.AsInt64())))
	requireAttrs(t, seal, traceStream, tracing.AttrSegment, tracing.AttrRecords, tracing.AttrBytes)
	secondAppend := r.waitSpan("aof.append of the second message",
		and(named(tracing.SpanAppend), inTrace(tid), childOf(batch.SpanContext())))
	if v, _ := spanAttr(secondAppend, tracing.AttrSegment); v.AsInt64() != seg.AsInt64()+1 {
		t.Errorf("second record appended to segment %d, want the next segment %d", v.AsInt64(), seg.AsInt64()+1)
	}

	compress := r.waitSpan("aof.tier1.compress of the sealed segment",
		and(named(tracing.SpanTier1Compress), withInt(tracing.AttrSegment, seg.AsInt64())))
	if !linkedTo(seal.SpanContext())(compress) && !linkedTo(batch.SpanContext())(compress) {
		t.Errorf("aof.tier1.compress links %v, want the seal span %s or the batch that sealed %s",
			compress.Links(), seal.SpanContext().SpanID(), batch.SpanContext().SpanID())
	}
	r.waitSpan("aof.tier2.upload of the sealed segment linked to compress",
		and(named(tracing.SpanTier2Upload), withInt(tracing.AttrSegment, seg.AsInt64()), linkedTo(compress.SpanContext())))
}
