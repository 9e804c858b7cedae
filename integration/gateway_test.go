package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/ingest"
)

// published remembers what the producer got a JetStream ack for.
type published struct {
	mu     sync.Mutex
	bodies map[uint64][]byte // stream sequence -> body
	stream map[uint64]string // stream sequence -> store stream
}

func newPublished() *published {
	return &published{bodies: map[uint64][]byte{}, stream: map[uint64]string{}}
}

// publish sends n messages round-robin over streams with async publishes
// and records every acknowledged one. It returns the number of failures.
func (p *published) publish(t *testing.T, js jetstream.JetStream, streams []string, n int, body func(i int) []byte) int {
	t.Helper()
	type pending struct {
		f      jetstream.PubAckFuture
		stream string
		body   []byte
	}
	failed := 0
	window := make([]pending, 0, 1024)
	flush := func() {
		<-js.PublishAsyncComplete()
		for _, pm := range window {
			select {
			case ack := <-pm.f.Ok():
				p.mu.Lock()
				p.bodies[ack.Sequence] = pm.body
				p.stream[ack.Sequence] = pm.stream
				p.mu.Unlock()
			case <-pm.f.Err():
				failed++
			}
		}
		window = window[:0]
	}
	for i := 0; i < n; i++ {
		stream := streams[i%len(streams)]
		b := body(i)
		msg := nats.NewMsg("aof.ingest." + stream)
		msg.Data = b
		msg.Header.Set("X-Seq", strconv.Itoa(i))
		f, err := js.PublishMsgAsync(msg)
		if err != nil {
			failed++
			continue
		}
		window = append(window, pending{f, stream, b})
		if len(window) == cap(window) {
			flush()
		}
	}
	flush()
	return failed
}

// verify checks that the store holds exactly one record per acknowledged
// publish, byte-identical, in sequence order per stream.
func (p *published) verify(t *testing.T, e *env, streams []string) {
	t.Helper()
	s := e.openStore()
	total := 0
	for _, stream := range streams {
		got := readStream(t, s, stream)
		var last uint64
		for i, m := range got {
			if m.Offset != uint64(i) {
				t.Fatalf("%s: record %d has offset %d", stream, i, m.Offset)
			}
			if m.Seq <= last {
				t.Fatalf("%s: sequence %d after %d: duplicate or out of order", stream, m.Seq, last)
			}
			last = m.Seq
			want, ok := p.bodies[m.Seq]
			if !ok {
				t.Fatalf("%s: stored sequence %d was never acknowledged to the producer", stream, m.Seq)
			}
			if p.stream[m.Seq] != stream || m.Subject != "aof.ingest."+stream || !bytes.Equal(m.Body, want) {
				t.Fatalf("%s: sequence %d differs: subject %q body %q, want body %q", stream, m.Seq, m.Subject, m.Body, want)
			}
			if m.Header["X-Seq"] == nil {
				t.Fatalf("%s: sequence %d lost its headers: %v", stream, m.Seq, m.Header)
			}
		}
		total += len(got)
	}
	if total != len(p.bodies) {
		missing := 0
		for seq := range p.bodies {
			_ = seq
			missing++
		}
		t.Fatalf("stored %d records, producer had %d acknowledged publishes", total, len(p.bodies))
	}
}

func streamNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("stream-%02d", i)
	}
	return out
}

func TestGatewayStoresEveryMessageOnceInOrderAcross20Streams(t *testing.T) {
	e := newEnv(t)
	g := e.startGateway()
	js := e.nats.JetStream(t)
	streams := streamNames(20)
	p := newPublished()
	if failed := p.publish(t, js, streams, 100_000, func(i int) []byte {
		return []byte(fmt.Sprintf("payload %d %s", i, strings.Repeat("z", i%200)))
	}); failed != 0 {
		t.Fatalf("%d publishes failed", failed)
	}
	e.waitDrained(js, 3*time.Minute)
	st, err := g.status()
	if err != nil || st.Ingest.Stored != 100_000 || st.Ingest.Duplicates != 0 {
		t.Fatalf("gateway status %+v %v: want 100000 stored, no duplicates", st, err)
	}
	g.stop()
	p.verify(t, e, streams)
}

func TestGatewaySIGKILLedTenTimesLosesAndDuplicatesNothing(t *testing.T) {
	e := newEnv(t, "AOF2_SEGMENT_TARGET_BYTES=128KiB")
	g := e.startGateway()
	js := e.nats.JetStream(t)
	streams := streamNames(5)
	p := newPublished()

	done := make(chan int)
	go func() {
		done <- p.publish(t, js, streams, 200_000, func(i int) []byte { return []byte(fmt.Sprintf("kill-test %d", i)) })
	}()
	seed := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(os.Getenv("AOF_KILL_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("kill schedule seed %d (AOF_KILL_SEED=%d reproduces it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	for kill := 0; kill < 10; kill++ {
		time.Sleep(time.Duration(50+rng.IntN(400)) * time.Millisecond)
		g.kill()
		g = e.startGateway()
	}
	if failed := <-done; failed != 0 {
		t.Logf("%d publishes not acknowledged by JetStream (not counted)", failed)
	}
	e.waitDrained(js, 3*time.Minute)
	g.stop()
	if len(p.bodies) < 100_000 {
		t.Fatalf("only %d publishes acknowledged", len(p.bodies))
	}
	p.verify(t, e, streams)
}

func TestDeadLettersCarryTheirReasonAndTheStreamGoesOn(t *testing.T) {
	e := newEnv(t, "AOF2_INGEST_MAX_RECORD_BYTES=4KiB")
	g := e.startGateway()
	js := e.nats.JetStream(t)
	ctx := context.Background()

	big := bytes.Repeat([]byte("B"), 8<<10)
	for i, m := range []struct {
		subj string
		body []byte
	}{
		{"aof.ingest.orders", []byte("first")},
		{"aof.ingest.orders", big},
		{"aof.ingest.bad$name", []byte("x")},
		{"aof.ingest.orders", []byte("last")},
	} {
		if _, err := js.Publish(ctx, m.subj, m.body); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	// A subject deeper than aof.ingest.<stream> is refused at once: no
	// partition's consumer would ever read it.
	if _, err := js.Publish(ctx, "aof.ingest.orders.too.deep", []byte("y")); !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("publish to a subject of five tokens: %v, want JetStream's no-stream error", err)
	}
	e.waitDrained(js, time.Minute)

	dl, err := js.OrderedConsumer(ctx, "AOF_INGEST_DEADLETTER", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("dead-letter stream: %v", err)
	}
	reasons := map[string]string{}
	for range 2 {
		msg, err := dl.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("dead letter: %v", err)
		}
		reasons[msg.Subject()+" <- "+msg.Headers().Get(ingest.HeaderOriginalSubject)] = msg.Headers().Get(ingest.HeaderError)
	}
	want := map[string]*regexp.Regexp{
		"aof.deadletter.orders <- aof.ingest.orders":     regexp.MustCompile(`exceeds ingest.max_record_bytes`),
		"aof.deadletter._invalid <- aof.ingest.bad$name": regexp.MustCompile(`stream name`),
	}
	for k, re := range want {
		if !re.MatchString(reasons[k]) {
			t.Errorf("dead letter %s: reason %q, want match %s (all: %v)", k, reasons[k], re, reasons)
		}
	}
	g.stop()
	got := readStream(t, e.openStore(), "orders")
	if len(got) != 2 || string(got[0].Body) != "first" || string(got[1].Body) != "last" {
		t.Fatalf("orders holds %d records, want first and last", len(got))
	}
}

func TestTinyTier0BudgetAppliesAdmissionBackpressureThenDrains(t *testing.T) {
	e := newEnv(t,
		"AOF2_SEGMENT_TARGET_BYTES=64KiB",
		"AOF2_TIER0_CLUSTER_MAX_BYTES=192KiB",
		"AOF2_TIER1_MAX_BYTES=192KiB",
		"AOF2_INGEST_ACK_WAIT=2s",
	)
	g := e.startGateway()
	js := e.nats.JetStream(t)
	p := newPublished()
	streams := []string{"tiny"}
	if failed := p.publish(t, js, streams, 20_000, func(i int) []byte {
		return []byte(fmt.Sprintf("%06d %s", i, strings.Repeat("w", 200)))
	}); failed != 0 {
		t.Fatalf("%d publishes failed", failed)
	}
	e.waitDrained(js, 3*time.Minute)
	metrics := g.metricsText()
	m := regexp.MustCompile(`backpressure_total\{[^}]*kind="admission"[^}]*\} (\d+)`).FindStringSubmatch(metrics)
	if m == nil || m[1] == "0" {
		t.Fatalf("no admission backpressure recorded with a 192 KiB tier 0 budget: %v", m)
	}
	g.stop()
	p.verify(t, e, streams)
}
