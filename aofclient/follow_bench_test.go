package aofclient_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/aofclient"
	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/readservice"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/tier2"
)

const (
	followBenchStream = "follow"
	// followBenchMaxRecords are published as fast as possible for the
	// sustained ingest rate.
	followBenchMaxRecords = 100_000
	// followBenchSeconds is how long the follow phase publishes.
	followBenchSeconds = 5
)

// liveGateway is a gateway as aof-gateway runs one, in this process:
// an embedded nats-server with the ingest stream, the ingest pipeline on a
// store with the default options and versitygw on loopback as Tier 2 (so
// segments seal and upload while the follower reads), the read service on
// a connection of its own, and a producer and a reader on theirs.
type liveGateway struct {
	producer jetstream.JetStream
	store    *tiers.Store
	client   *aofclient.Client
}

func startLiveGateway(b *testing.B) *liveGateway {
	b.Helper()
	ctx := context.Background()
	n := harness.StartNATS(b)
	s3 := harness.StartS3(b)
	t2, err := tier2.New(ctx, tier2.Options{Endpoint: s3.Endpoint, Bucket: s3.Bucket, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey})
	if err != nil {
		b.Fatal(err)
	}
	store, err := tiers.Open(ctx, tiers.Options{Root: b.TempDir(), Tier2: t2})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	js := n.JetStream(b)
	if _, err := ingest.EnsureIngestStream(ctx, js, ingest.StreamSettings{Name: "AOF_INGEST", Subjects: []string{"aof.ingest.>"}}); err != nil {
		b.Fatal(err)
	}
	p, err := ingest.NewPipeline(js, store, ingest.Options{
		Consumer: ingest.ConsumerSettings{Stream: "AOF_INGEST", Durable: "gateway", AckWait: 30 * time.Second, MaxAckPending: 20000},
	})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- p.Run(runCtx) }()
	b.Cleanup(func() { cancel(); <-errc })
	svc, err := readservice.New(n.Connect(b), store, readservice.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(svc.Stop)
	client, err := aofclient.New(n.Connect(b))
	if err != nil {
		b.Fatal(err)
	}
	return &liveGateway{producer: n.JetStream(b), store: store, client: client}
}

// durableEnd is the offset the next record stored in the stream gets.
func (g *liveGateway) durableEnd() uint64 {
	segs := g.store.Segments(followBenchStream)
	if len(segs) == 0 {
		return 0
	}
	return segs[len(segs)-1].NextOffset
}

// publish publishes count records of readBenchBodyBytes, the first 8
// bytes of each its index i, paced at rate records/s (as fast as the
// async publish window allows for rate 0); sent[i] is the time of
// record i's publish, in Unix nanoseconds.
func (g *liveGateway) publish(b *testing.B, count int, rate float64, sent []atomic.Int64) {
	b.Helper()
	body := benchBody(0)
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(time.Second) / rate)
	}
	next := time.Now()
	for i := range count {
		if interval > 0 {
			// Behind schedule (a sleep overslept) it catches up in a
			// burst, as a producer with a backlog would.
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
			next = next.Add(interval)
		}
		binary.LittleEndian.PutUint64(body, uint64(i))
		if sent != nil {
			sent[i].Store(time.Now().UnixNano())
		}
		if _, err := g.producer.PublishAsync("aof.ingest."+followBenchStream, body); err != nil {
			b.Fatalf("publish %d: %v", i, err)
		}
	}
	<-g.producer.PublishAsyncComplete()
}

// sustainedRate publishes count records as fast as possible and returns
// the rate at which they became durable in the store: publish and ingest
// share the machine, as they do in the follow phase.
func (g *liveGateway) sustainedRate(b *testing.B, count int) float64 {
	b.Helper()
	from := g.durableEnd()
	start := time.Now()
	g.publish(b, count, 0, nil)
	deadline := start.Add(5 * time.Minute)
	for g.durableEnd() < from+uint64(count) {
		if time.Now().After(deadline) {
			b.Fatalf("sustained rate: %d of %d records stored after 5 minutes", g.durableEnd()-from, count)
		}
		time.Sleep(time.Millisecond)
	}
	return float64(count) / time.Since(start).Seconds()
}

// follow reads the stream with aofclient.Follow from offset from until it
// has seen count records, and returns for each the time from its publish
// until the loop body had it.
func (g *liveGateway) follow(ctx context.Context, from uint64, count int, sent []atomic.Int64, ready chan<- struct{}) ([]time.Duration, error) {
	lat := make([]time.Duration, 0, count)
	close(ready)
	for rec, err := range g.client.Follow(ctx, followBenchStream, aofclient.FromOffset(from)) {
		if err != nil {
			return lat, err
		}
		now := time.Now().UnixNano()
		i := binary.LittleEndian.Uint64(rec.Data)
		lat = append(lat, time.Duration(now-sent[i].Load()))
		if len(lat) == count {
			return lat, nil
		}
	}
	return lat, ctx.Err()
}

// durable returns, for each of count records from offset from, the time
// from its publish until the store had it durable (what ingest alone
// costs of the follow latency), read from the store directly.
func (g *liveGateway) durable(ctx context.Context, from uint64, count int, sent []atomic.Int64) ([]time.Duration, error) {
	r, err := g.store.Reader(followBenchStream)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	r.Seek(from)
	lat := make([]time.Duration, 0, count)
	for len(lat) < count {
		e, err := r.Next(ctx)
		if err != nil {
			return lat, err
		}
		now := time.Now().UnixNano()
		env, err := ingest.DecodeEnvelope(e.Payload)
		if err != nil {
			return lat, err
		}
		lat = append(lat, time.Duration(now-sent[binary.LittleEndian.Uint64(env.Body)].Load()))
	}
	return lat, nil
}

// BenchmarkFollowLatency measures how long a live record takes from the
// producer's publish until an aofclient.Follow loop sees it, through the
// whole gateway: JetStream ingest stream, ingest pipeline (group fsync),
// store, read service, client (issue 16 target: p99 < 20 ms at half the
// sustained ingest rate).
//
// It first publishes followBenchMaxRecords records of 512 B as fast as
// possible for the sustained ingest rate (publish and ingest on the same
// machine), then publishes at half that rate for followBenchSeconds while
// one follower reads from the tail, and reports the sustained rate, the
// rate used and the latencies' p50 and p99, and beside them the latency
// from publish until the store has the record durable (what ingest alone
// costs). AOF_BENCH_FOLLOW_RATE sets the follow phase's rate instead.
//
//	go test -run '^$' -bench FollowLatency -benchtime 1x -timeout 30m ./aofclient/
func BenchmarkFollowLatency(b *testing.B) {
	g := startLiveGateway(b)
	// A first record creates the stream, so that the follower does not
	// start before it exists.
	g.publish(b, 1, 0, nil)
	maxRate := g.sustainedRate(b, followBenchMaxRecords)
	settleRead(b)

	rate := maxRate / 2
	if v, err := strconv.ParseFloat(os.Getenv("AOF_BENCH_FOLLOW_RATE"), 64); err == nil && v > 0 {
		// A fixed rate instead, to tell the read path's share from a
		// saturated machine's.
		rate = v
	}
	count := int(rate * followBenchSeconds)
	sent := make([]atomic.Int64, count)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	type result struct {
		lat []time.Duration
		err error
	}
	done, stored := make(chan result, 1), make(chan result, 1)
	ready := make(chan struct{})
	from := g.durableEnd()
	b.ResetTimer()
	go func() {
		lat, err := g.follow(ctx, from, count, sent, ready)
		done <- result{lat, err}
	}()
	go func() {
		lat, err := g.durable(ctx, from, count, sent)
		stored <- result{lat, err}
	}()
	<-ready
	// Let the follower's first request reach the tail and wait there.
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	g.publish(b, count, rate, sent)
	published := time.Since(start)
	res, dres := <-done, <-stored
	b.StopTimer()
	if res.err != nil || len(res.lat) < count {
		b.Fatalf("follow saw %d of %d records: %v", len(res.lat), count, res.err)
	}
	if dres.err != nil || len(dres.lat) < count {
		b.Fatalf("the store reader saw %d of %d records: %v", len(dres.lat), count, dres.err)
	}
	lat, dlat := res.lat, dres.lat
	slices.Sort(lat)
	slices.Sort(dlat)
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	dp50, dp99 := dlat[len(dlat)/2], dlat[len(dlat)*99/100]
	b.ReportMetric(maxRate, "ingest_max_records/s")
	b.ReportMetric(float64(count)/published.Seconds(), "published_records/s")
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99_ms")
	b.ReportMetric(float64(dp50.Microseconds())/1000, "durable_p50_ms")
	b.ReportMetric(float64(dp99.Microseconds())/1000, "durable_p99_ms")
	fmt.Printf("follow %d x %d B: sustained ingest %.0f records/s; published at %.0f records/s (asked %.0f); "+
		"publish to Follow: p50 %v p99 %v max %v; publish to durable: p50 %v p99 %v\n",
		count, readBenchBodyBytes, maxRate, float64(count)/published.Seconds(), rate, p50, p99, lat[len(lat)-1], dp50, dp99)
}
