package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/aofclient"
	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/readservice"
	"github.com/bop-aof/aof/tiers"
)

// replayBenchRecords is the record count of BenchmarkReplayVsJetStreamPublishAsync:
// 200,000, or AOF_BENCH_REPLAY_RECORDS.
func replayBenchRecords() int {
	if v, err := strconv.Atoi(os.Getenv("AOF_BENCH_REPLAY_RECORDS")); err == nil && v > 0 {
		return v
	}
	return 200_000
}

const (
	replayBenchStream    = "bench"
	replayBenchSubject   = "bench.records"
	replayBenchBodyBytes = 512
	replayBenchWindow    = 256 // replay's --window default
	replayBenchRounds    = 3
)

// replayBenchBody is body i: its index, then random bytes.
func replayBenchBody(i int) []byte {
	body := make([]byte, replayBenchBodyBytes)
	binary.LittleEndian.PutUint64(body, uint64(i))
	r := rand.New(rand.NewPCG(uint64(i), 0))
	for k := 8; k < len(body); k += 8 {
		binary.LittleEndian.PutUint64(body[k:], r.Uint64())
	}
	return body
}

// replayBench is the gateway the replay reads from (an embedded
// nats-server with JetStream, a store holding the records, the read
// service on its own connection) and the connection aof2-admin would
// have: the read client and the JetStream publishes share it, as in
// `aof2-admin replay`.
type replayBench struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	client *aofclient.Client
}

func startReplayBench(b *testing.B, n int) *replayBench {
	b.Helper()
	ctx := context.Background()
	srv := harness.StartNATS(b)
	store, err := tiers.Open(ctx, tiers.Options{Root: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	const batch = 2048
	for from := 0; from < n; from += batch {
		recs := make([]tiers.Record, 0, batch)
		for i := from; i < min(from+batch, n); i++ {
			env := ingest.Envelope{Subject: replayBenchSubject, Body: replayBenchBody(i)}
			recs = append(recs, tiers.Record{Payload: ingest.AppendEnvelope(nil, env), ExtID: uint64(i + 1)})
		}
		if err := store.AppendDurable(ctx, replayBenchStream, recs); err != nil {
			b.Fatal(err)
		}
	}
	svc, err := readservice.New(srv.Connect(b), store, readservice.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(svc.Stop)
	nc := srv.Connect(b)
	client, err := aofclient.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(replayBenchWindow))
	if err != nil {
		b.Fatal(err)
	}
	return &replayBench{nc: nc, js: js, client: client}
}

// target creates the file-storage stream subjects prefix.> go to, and
// returns a function that deletes it: each run stores into a fresh one,
// so that the replay's Nats-Msg-Ids find no duplicates of the last run.
func (r *replayBench) target(b *testing.B, prefix string) func() {
	b.Helper()
	ctx := context.Background()
	name := "R_" + prefix
	if _, err := r.js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{prefix + ".>"}, Storage: jetstream.FileStorage}); err != nil {
		b.Fatal(err)
	}
	return func() {
		if err := r.js.DeleteStream(ctx, name); err != nil {
			b.Fatal(err)
		}
	}
}

// replay runs replay's publishing loop (replayer.run, --jetstream, the
// default --window) over the whole stream into prefix.bench, and returns
// how long it took.
func (r *replayBench) replay(b *testing.B, prefix string, n int) time.Duration {
	b.Helper()
	tmpl, err := parseSubjectTemplate(prefix + ".{{stream}}")
	if err != nil {
		b.Fatal(err)
	}
	pub, err := newPublisher(r.nc, true, replayBenchWindow, 30*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	rp := &replayer{stream: replayBenchStream, tmpl: tmpl, ingestPrefix: "aof.ingest", pub: pub,
		sum: replaySummary{Stream: replayBenchStream, Subject: tmpl.text, JetStream: true}}
	rng := &recordRange{stream: replayBenchStream, startsAtOffset: true}
	start := time.Now()
	if err := rp.run(context.Background(), r.client, rng, nil, newRecordProgress(io.Discard, false, "replay", nil)); err != nil {
		b.Fatal(err)
	}
	d := time.Since(start)
	if rp.sum.Records != uint64(n) || rp.sum.Stored != uint64(n) {
		b.Fatalf("replay published %d records, JetStream stored %d; want %d", rp.sum.Records, rp.sum.Stored, n)
	}
	return d
}

// publishAsync is the baseline, `nats bench js pub async` style: the same
// bodies to prefix.bench with PublishAsync, at most replayBenchWindow
// awaiting their ack, the bodies already in memory.
func (r *replayBench) publishAsync(b *testing.B, prefix string, bodies [][]byte, withIDs bool) time.Duration {
	b.Helper()
	subject := prefix + "." + replayBenchStream
	start := time.Now()
	for i, body := range bodies {
		var opts []jetstream.PublishOpt
		if withIDs {
			opts = append(opts, jetstream.WithMsgID(replayBenchStream+":"+strconv.Itoa(i)))
		}
		if _, err := r.js.PublishAsync(subject, body, opts...); err != nil {
			b.Fatalf("publish %d: %v", i, err)
		}
	}
	select {
	case <-r.js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("async publishes not acknowledged after a minute")
	}
	return time.Since(start)
}

// BenchmarkReplayVsJetStreamPublishAsync replays N records of 512 B
// (replayBenchRecords) from a warm store into a JetStream file-storage
// stream with replay's own loop (`aof2-admin replay --jetstream`: read
// through the read API, one Nats-Msg-Id per record, --window 256), and,
// as the baseline, publishes the same bodies from memory with
// PublishAsync and the same window on the same server. The two alternate
// for replayBenchRounds rounds, each into a fresh stream; it reports the
// ratio of the total times (issue 16 target: ≥ 0.8).
//
//	go test -run '^$' -bench ReplayVsJetStreamPublishAsync -benchtime 1x -timeout 30m ./cmd/aof2-admin/
func BenchmarkReplayVsJetStreamPublishAsync(b *testing.B) {
	n := replayBenchRecords()
	r := startReplayBench(b, n)
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = replayBenchBody(i)
	}
	b.ResetTimer()
	var baseTime, replayTime, idsTime time.Duration
	for round := range replayBenchRounds {
		var base, rep, ids time.Duration
		runBase := func() {
			prefix := fmt.Sprintf("base%d", round)
			drop := r.target(b, prefix)
			base = r.publishAsync(b, prefix, bodies, false)
			drop()
			// Not the baseline: what JetStream's duplicate window costs
			// the same publishes, which a replay's message ids pay.
			settleReplay(b)
			prefix = fmt.Sprintf("ids%d", round)
			drop = r.target(b, prefix)
			ids = r.publishAsync(b, prefix, bodies, true)
			drop()
		}
		runReplay := func() {
			prefix := fmt.Sprintf("replay%d", round)
			drop := r.target(b, prefix)
			rep = r.replay(b, prefix, n)
			drop()
		}
		first, second := runBase, runReplay
		if round%2 == 1 {
			first, second = runReplay, runBase
		}
		settleReplay(b)
		first()
		settleReplay(b)
		second()
		baseTime += base
		replayTime += rep
		idsTime += ids
		fmt.Printf("round %d: publish async %v (%.0f records/s), with Nats-Msg-Id %v (%.0f records/s), replay %v (%.0f records/s), ratio %.3f\n", round,
			base.Round(time.Millisecond), float64(n)/base.Seconds(), ids.Round(time.Millisecond), float64(n)/ids.Seconds(),
			rep.Round(time.Millisecond), float64(n)/rep.Seconds(), base.Seconds()/rep.Seconds())
	}
	b.StopTimer()
	total := float64(replayBenchRounds * n)
	b.ReportMetric(total/baseTime.Seconds(), "baseline_records/s")
	b.ReportMetric(total/replayTime.Seconds(), "records/s")
	b.ReportMetric(baseTime.Seconds()/replayTime.Seconds(), "ratio")
	b.ReportMetric(idsTime.Seconds()/replayTime.Seconds(), "ratio_to_msgid_publish")
	fmt.Printf("replay %d x %d B, window %d, %d rounds: publish async %.0f records/s (with Nats-Msg-Id %.0f), replay %.0f records/s, ratio %.3f (%.3f of publishing with ids)\n",
		n, replayBenchBodyBytes, replayBenchWindow, replayBenchRounds, total/baseTime.Seconds(), total/idsTime.Seconds(), total/replayTime.Seconds(),
		baseTime.Seconds()/replayTime.Seconds(), idsTime.Seconds()/replayTime.Seconds())
}

// settleReplay lets the previous run's garbage and the deleted stream's
// files go before the next run is timed.
func settleReplay(b *testing.B) {
	b.StopTimer()
	runtime.GC()
	time.Sleep(200 * time.Millisecond)
	b.StartTimer()
}
