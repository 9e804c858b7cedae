package integration

import (
	"bufio"
	"context"
	ebin "encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sys/unix"

	"github.com/bop-aof/aof/config"
	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/internal/options"
)

// e2eInt reads a positive integer setting of BenchmarkGatewayVsPlainConsumer.
func e2eInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

const e2eBodyBytes = 1024

// BenchmarkGatewayVsPlainConsumer drains the same stream contents
// (AOF_BENCH_E2E_MESSAGES messages of 1 KiB, default 1,000,000, over
// AOF_BENCH_E2E_STREAMS streams, default 1 as `nats bench js pub`
// publishes to one subject) once with a plain durable pull
// consumer that acks every message explicitly (what `nats bench js consume
// --acks explicit` does: Consume with batches of 500), and once with the
// aof-gateway binary as it runs by default: its partitions and leases,
// 64 MiB segments, Tier 1 compression, uploads to a real versitygw,
// archive then purge. Each side gets a fresh nats-server process with the
// stream published anew, in alternating order for AOF_BENCH_E2E_ROUNDS
// rounds (default 3). With two or more CPUs the broker is pinned to the
// first and everything else (the benchmark, the gateway, versitygw) to
// the others.
//
// It reports every round's ratio (gateway drain rate over the plain
// consumer's), the gateway's CPU per message split by stage from CPU
// profiles of its gateway rounds (AOF_GATEWAY_PPROF), the top functions
// of the costliest stage, then one more gateway drain with
// tier1.compression_defer 0 (compression keeping pace with ingest: what
// the gateway sustains past a burst), and then the publish-to-durable
// latency at half that sustained rate: a producer publishes at that rate
// for AOF_BENCH_E2E_LATENCY_SECONDS (default 10) while the gateway
// ingests, and a record counts as durable when the gateway acks its
// message (it acks only after the fsync), seen on $JS.ACK.>. The same
// round with a plain consumer that acks on arrival gives the floor of the
// layout and the measurement.
//
//	go test -run '^$' -bench GatewayVsPlainConsumer -benchtime 1x -timeout 60m ./integration/
func BenchmarkGatewayVsPlainConsumer(b *testing.B) {
	n := e2eInt("AOF_BENCH_E2E_MESSAGES", 1_000_000)
	rounds := e2eInt("AOF_BENCH_E2E_ROUNDS", 3)
	streams := e2eInt("AOF_BENCH_E2E_STREAMS", 1)
	gwBin := binary(b, "aof-gateway")
	layout := pinLayout(b)
	b.ResetTimer()
	var base, gw []float64
	var stages []stageCPU
	var profiles []string
	for r := range rounds {
		runBase := func() { base = append(base, e2eBaselineRound(b, layout, n, streams)) }
		runGw := func() {
			res := e2eGatewayRound(b, layout, gwBin, n, streams)
			gw = append(gw, res.rate)
			stages = append(stages, res.cpu)
			if res.profile != "" {
				profiles = append(profiles, res.profile)
			}
		}
		if r%2 == 0 {
			runBase()
			runGw()
		} else {
			runGw()
			runBase()
		}
		fmt.Printf("round %d: plain consumer %.0f msgs/s, gateway %.0f msgs/s, ratio %.3f\n", r, base[r], gw[r], gw[r]/base[r])
	}
	e2eReport(b, layout, n, streams, base, gw, stages, profiles, gwBin)

	// A burst drains before its compression (tier1.compression_defer), and
	// compression's threads give way to ingest's: the drain above runs
	// ahead of compression for as long as Tier 0 holds the difference.
	// What the gateway keeps up for good is the rate at which it must also
	// compress and upload everything it takes: the same drain with pacing
	// off and Tier 0 at four segments (e2eSustainedTier0), so that all but
	// the first 256 MiB are admitted only as compression frees Tier 0.
	sus := e2eGatewayRound(b, layout, gwBin, n, streams, "AOF2_TIER1_COMPRESSION_DEFER=0", "AOF2_TIER0_CLUSTER_MAX_BYTES="+e2eSustainedTier0)
	b.StopTimer()
	b.ReportMetric(sus.rate, "sustained_msgs/s")
	b.ReportMetric(sus.rate/median(base), "sustained_ratio")
	fmt.Printf("gateway sustained (compression keeping pace: pacing off, Tier 0 at %s): %.0f msgs/s, %.3f of the plain consumer's median; CPU %.2f µs/msg, versitygw %.2f µs/msg, broker %.2f µs/msg\n",
		e2eSustainedTier0, sus.rate, sus.rate/median(base), perMsgUS(sus.cpu.user+sus.cpu.sys, n), perMsgUS(sus.cpu.s3, n), perMsgUS(sus.cpu.broker, n))

	// Half load is half of what the gateway sustains. The plain consumer,
	// acking each message as it arrives, at the same rate in the same
	// layout, shows what the broker, the producer and the measurement
	// cost before the gateway's append and fsync.
	half := sus.rate / 2
	if r := e2eInt("AOF_BENCH_E2E_LATENCY_RATE", 0); r > 0 {
		half = float64(r) // for experiments; the reported figures run without it
	}
	d := time.Duration(e2eInt("AOF_BENCH_E2E_LATENCY_SECONDS", 10)) * time.Second
	bp50, bp99, bseen := e2eLatencyRound(b, layout, func(br *e2eBroker) func() { return startPlainConsumer(b, br) }, streams, half, d)
	fmt.Printf("publish-to-ack at %.0f msgs/s, plain consumer (acks on arrival), %d messages: p50 %v p99 %v\n",
		half, bseen, bp50.Round(10*time.Microsecond), bp99.Round(10*time.Microsecond))
	p50, p99, seen := e2eLatencyRound(b, layout, func(br *e2eBroker) func() {
		s3 := harness.StartS3(b)
		gw, _, metrics := startE2EGateway(b, gwBin, br.url, s3, true)
		return func() {
			printIngestHistograms(metrics)
			killE2E(gw)
			s3.Stop()
			os.RemoveAll(s3.Dir)
		}
	}, streams, half, d)
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99_ms")
	b.ReportMetric(float64(bp99.Microseconds())/1000, "plain_p99_ms")
	fmt.Printf("publish-to-durable at %.0f msgs/s (half of what the gateway sustains), %d messages: p50 %v p99 %v\n",
		half, seen, p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond))
}

// printIngestHistograms prints the gateway's own view of a latency round:
// its fsync and ack latency histograms (cumulative counts per bound), so
// that a tail the producer sees can be told apart from one inside the
// gateway.
func printIngestHistograms(metricsAddr string) {
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		fmt.Printf("gateway metrics: %v\n", err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "ingest_fsync_seconds_") || strings.HasPrefix(line, "ingest_ack_latency_seconds_") {
			fmt.Printf("gateway: %s\n", line)
		}
	}
}

// e2eSustainedTier0 is the Tier 0 budget of the sustained round: four
// default segments.
const e2eSustainedTier0 = "256MiB"

func perMsgUS(d time.Duration, n int) float64 { return float64(d.Nanoseconds()) / 1000 / float64(n) }

// startPlainConsumer runs a plain durable consumer on the ingest stream,
// on a connection of its own as the bench tool has, that acks each
// message explicitly as it arrives (as `nats bench js consume --acks
// explicit` does: Consume with batches of 500); it returns stop.
func startPlainConsumer(b *testing.B, br *e2eBroker) func() {
	ctx := context.Background()
	if _, err := br.js.CreateConsumer(ctx, "AOF_INGEST", jetstream.ConsumerConfig{
		Durable: "plain", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second,
	}); err != nil {
		b.Fatal(err)
	}
	nc, err := nats.Connect(br.url)
	if err != nil {
		b.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	c, err := js.Consumer(ctx, "AOF_INGEST", "plain")
	if err != nil {
		b.Fatal(err)
	}
	cc, err := c.Consume(func(m jetstream.Msg) { m.Ack() }, jetstream.PullMaxMessages(500))
	if err != nil {
		b.Fatal(err)
	}
	return func() { cc.Stop(); nc.Close() }
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// e2eReport prints and reports the ratio rounds and the stage split.
func e2eReport(b *testing.B, layout cpuLayout, n, streams int, base, gw []float64, stages []stageCPU, profiles []string, gwBin string) {
	ratios := make([]float64, len(base))
	var baseT, gwT float64
	for i := range base {
		ratios[i] = gw[i] / base[i]
		baseT += float64(n) / base[i]
		gwT += float64(n) / gw[i]
	}
	b.ReportMetric(median(base), "plain_msgs/s")
	b.ReportMetric(median(gw), "gateway_msgs/s")
	b.ReportMetric(baseT/gwT, "ratio")
	b.ReportMetric(median(ratios), "median_ratio")
	fmt.Printf("layout: %s\n", layout.describe)
	fmt.Printf("%d x %d B over %d streams, %d rounds: plain consumer %s msgs/s; gateway %s msgs/s; ratio of total times %.3f; rounds %s; median %.3f\n",
		n, e2eBodyBytes, streams, len(base), fmtRates(base), fmtRates(gw), baseT/gwT, fmtRatios(ratios), median(ratios))
	var sum stageCPU
	for _, s := range stages {
		sum.user += s.user
		sum.sys += s.sys
		sum.s3 += s.s3
		sum.broker += s.broker
		sum.msgs += s.msgs
	}
	perMsg := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 / float64(sum.msgs) }
	fmt.Printf("gateway CPU per message: %.2f µs user + %.2f µs system; versitygw %.2f µs; broker %.2f µs\n",
		perMsg(sum.user), perMsg(sum.sys), perMsg(sum.s3), perMsg(sum.broker))
	b.ReportMetric(perMsg(sum.user+sum.sys), "gateway_cpu_us/msg")
	if len(profiles) == 0 {
		return
	}
	split, top, err := profileStages(gwBin, profiles)
	if err != nil {
		b.Logf("profile: %v", err)
		return
	}
	total := perMsg(sum.user + sum.sys)
	fmt.Printf("gateway CPU per message by stage (profile shares of %.2f µs):", total)
	for _, st := range stageNames {
		fmt.Printf(" %s %.2f µs (%.1f%%);", st, total*split[st], 100*split[st])
	}
	fmt.Println()
	fmt.Print(top)
}

type cpuLayout struct {
	pinned   bool
	broker   int    // the broker's CPU
	rest     string // taskset list of the others
	describe string
}

// pinLayout pins this process (and so every child it starts) to all CPUs
// but the first, which the broker gets, when there are two or more.
func pinLayout(b *testing.B) cpuLayout {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil || all.Count() < 2 {
		return cpuLayout{describe: "not pinned: fewer than 2 CPUs"}
	}
	l := cpuLayout{pinned: true, broker: -1}
	var rest unix.CPUSet
	var others []string
	for c := 0; c < 1024; c++ {
		if !all.IsSet(c) {
			continue
		}
		if l.broker < 0 {
			l.broker = c
			continue
		}
		rest.Set(c)
		others = append(others, strconv.Itoa(c))
	}
	l.rest = strings.Join(others, ",")
	setThreadsAffinity(b, os.Getpid(), &rest)
	b.Cleanup(func() { setThreadsAffinity(b, os.Getpid(), &all) })
	l.describe = fmt.Sprintf("nats-server pinned to CPU %d; the benchmark, its plain consumer, aof-gateway and versitygw on CPU %s", l.broker, l.rest)
	return l
}

// setThreadsAffinity sets the CPUs of every thread of pid: affinity is per
// thread on Linux, and threads started later inherit it.
func setThreadsAffinity(b *testing.B, pid int, set *unix.CPUSet) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, t := range tasks {
		tid, _ := strconv.Atoi(t.Name())
		if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
			b.Fatalf("set the CPUs of thread %d: %v", tid, err)
		}
	}
}

var (
	natsBinOnce sync.Once
	natsBin     string
)

// e2eBroker is one nats-server process of a round.
type e2eBroker struct {
	cmd    *exec.Cmd
	remove func()
	url    string
	// profPort serves the broker's profiles when
	// AOF_BENCH_E2E_BROKER_PROFILE is set (0 otherwise).
	profPort int
	nc       *nats.Conn
	js       jetstream.JetStream
}

// startBroker starts a fresh nats-server process with JetStream (pinned
// to its CPU), provisions the ingest stream as the gateway does, and
// publishes n messages over streams streams into it.
func startBroker(b *testing.B, layout cpuLayout, n, streams int) *e2eBroker {
	natsBinOnce.Do(func() {
		natsBin = filepath.Join(b.TempDir(), "nats-server")
		cmd := exec.Command("go", "build", "-o", natsBin, "github.com/nats-io/nats-server/v2")
		cmd.Dir = harness.RepoRoot(b)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("go build nats-server: %v\n%s", err, out)
		}
	})
	dir, remove := tempE2E(b)
	port := harness.FreePort(b)
	args := []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", dir}
	profPort := 0
	if os.Getenv("AOF_BENCH_E2E_BROKER_PROFILE") != "" {
		profPort = harness.FreePort(b)
		args = append(args, "--profile", strconv.Itoa(profPort))
	}
	cmd := exec.Command(natsBin, args...)
	if layout.pinned {
		cmd = exec.Command("taskset", append([]string{"-c", strconv.Itoa(layout.broker), natsBin}, args...)...)
	}
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the benchmark
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	br := &e2eBroker{cmd: cmd, remove: remove, profPort: profPort, url: fmt.Sprintf("nats://127.0.0.1:%d", port)}
	deadline := time.Now().Add(20 * time.Second)
	for {
		nc, err := nats.Connect(br.url)
		if err == nil {
			br.nc = nc
			break
		}
		if time.Now().After(deadline) {
			br.stop()
			b.Fatalf("nats-server: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	br.js, _ = jetstream.New(br.nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(30*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := ingest.EnsureIngestStream(ctx, br.js, options.IngestStream(config.Default())); err != nil {
		br.stop()
		b.Fatal(err)
	}
	publishE2E(b, br.js, n, streams)
	return br
}

// profile prints the top of a CPU profile of the broker while a side
// drains, when AOF_BENCH_E2E_BROKER_PROFILE is set; it closes done.
func (br *e2eBroker) profile(b *testing.B, side string, done chan struct{}) {
	defer close(done)
	if br.profPort == 0 {
		return
	}
	path := filepath.Join(b.TempDir(), "broker.pprof")
	fetchProfile(b, fmt.Sprintf("127.0.0.1:%d", br.profPort), e2eInt("AOF_BENCH_E2E_PROFILE_SECONDS", 8), path)
	out, err := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount", "40", natsBin, path).CombinedOutput()
	if err != nil {
		b.Logf("broker profile: %v", err)
	}
	fmt.Printf("broker CPU profile while the %s side drains:\n%s\n", side, out)
}

func (br *e2eBroker) stop() {
	if br.nc != nil {
		br.nc.Close()
	}
	killE2E(br.cmd)
	br.remove()
}

// e2eBody is the pool message bodies are cut from: words and numbers as
// in a log line, which zstd shrinks about as much as typical application
// records, so compression and upload cost what they would in production
// (zero bodies would make both nearly free).
var e2eBody = func() []byte {
	words := strings.Fields("order id user amount currency status created updated shipped paid refund eu us api v2 GET POST " +
		"200 404 500 latency_ms trace span region host service checkout cart item sku price qty total tax discount")
	rng := rand.New(rand.NewPCG(1, 2))
	var sb strings.Builder
	for sb.Len() < 1<<20 {
		sb.WriteString(words[rng.IntN(len(words))])
		sb.WriteByte('=')
		sb.WriteString(strconv.Itoa(rng.IntN(100000)))
		sb.WriteByte(' ')
	}
	return []byte(sb.String())
}()

// bodyOf is message i's body: its index, then a slice of the pool.
func bodyOf(buf []byte, i int) []byte {
	off := (i * 7919) % (len(e2eBody) - e2eBodyBytes)
	copy(buf, e2eBody[off:off+e2eBodyBytes])
	ebin.LittleEndian.PutUint64(buf, uint64(i))
	return buf
}

func publishE2E(b *testing.B, js jetstream.JetStream, n, streams int) {
	buf := make([]byte, e2eBodyBytes)
	for i := range n {
		if _, err := js.PublishAsync(fmt.Sprintf("aof.ingest.bench-%d", i%streams), bodyOf(buf, i)); err != nil {
			b.Fatal(err)
		}
		if i%2048 == 2047 {
			<-js.PublishAsyncComplete()
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		b.Fatal("publish did not complete")
	}
}

// settleE2E lets the disk and the heap catch up before a timed phase.
func settleE2E() {
	unix.Sync()
	time.Sleep(time.Second)
}

// drainWatch polls the ingest stream's consumers until every message is
// acked: first is when a consumer first showed a delivery, last when all
// were acked. The same poller times both sides.
func drainWatch(b *testing.B, js jetstream.JetStream, n int, timeout time.Duration, onStart func()) (first, last time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	st, err := js.Stream(ctx, "AOF_INGEST")
	if err != nil {
		b.Fatal(err)
	}
	for {
		var delivered uint64
		var pending int
		var acked uint64
		lister := st.ListConsumers(ctx)
		for ci := range lister.Info() {
			delivered += ci.Delivered.Consumer
			pending += int(ci.NumPending) + ci.NumAckPending
			acked += ci.Delivered.Consumer - uint64(ci.NumAckPending)
		}
		if err := lister.Err(); err != nil && ctx.Err() == nil {
			b.Logf("list consumers: %v", err)
		}
		now := time.Now()
		if first.IsZero() && delivered > 0 {
			first = now
			if onStart != nil {
				onStart()
			}
		}
		if pending == 0 && acked >= uint64(n) {
			return first, now
		}
		if ctx.Err() != nil {
			b.Fatalf("drain not finished after %v: %d acked of %d, %d pending", timeout, acked, n, pending)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// e2eBaselineRound drains a fresh broker's stream with a plain durable
// consumer and returns messages per second.
func e2eBaselineRound(b *testing.B, layout cpuLayout, n, streams int) float64 {
	br := startBroker(b, layout, n, streams)
	defer br.stop()
	settleE2E()
	defer startPlainConsumer(b, br)()
	var k0 time.Duration
	done := make(chan struct{})
	first, last := drainWatch(b, br.js, n, 10*time.Minute, func() {
		k0 = sumCPU(br.cmd.Process.Pid)
		go br.profile(b, "plain", done)
	})
	<-done
	fmt.Printf("plain consumer: broker %.2f µs/msg\n", float64((sumCPU(br.cmd.Process.Pid)-k0).Nanoseconds())/1000/float64(n))
	return float64(n) / last.Sub(first).Seconds()
}

// stageCPU is the CPU a gateway round took.
type stageCPU struct {
	user, sys, s3, broker time.Duration
	msgs                  int
}

type gatewayResult struct {
	rate    float64
	cpu     stageCPU
	profile string
}

// e2eGatewayRound drains a fresh broker's stream with the aof-gateway
// binary as configured by default, Tier 2 on a fresh versitygw, and
// returns messages per second, the CPU the gateway took while draining,
// and a CPU profile of it.
func e2eGatewayRound(b *testing.B, layout cpuLayout, gwBin string, n, streams int, env ...string) gatewayResult {
	br := startBroker(b, layout, n, streams)
	defer br.stop()
	s3 := harness.StartS3(b)
	defer func() { s3.Stop(); os.RemoveAll(s3.Dir) }()
	settleE2E()
	// The clock starts at the first delivery the gateway takes, not at
	// ready: it consumes as soon as it holds a partition. Taking the
	// partitions is in the time.
	started := time.Now()
	gw, pprofAddr, _ := startE2EGateway(b, gwBin, br.url, s3, false, env...)
	defer killE2E(gw)
	profile := filepath.Join(b.TempDir(), "gateway.pprof")
	profDone, brokerDone := make(chan struct{}), make(chan struct{})
	secs := e2eInt("AOF_BENCH_E2E_PROFILE_SECONDS", 8)
	var u0, s0, v0, k0 time.Duration
	first, last := drainWatch(b, br.js, n, 10*time.Minute, func() {
		u0, s0 = procCPU(gw.Process.Pid)
		v0 = sumCPU(s3Pid(s3))
		k0 = sumCPU(br.cmd.Process.Pid)
		go func() {
			defer close(profDone)
			fetchProfile(b, pprofAddr, secs, profile)
		}()
		go br.profile(b, "gateway", brokerDone)
	})
	<-brokerDone
	fmt.Printf("gateway: first delivery %v after its start; drained in %v", first.Sub(started).Round(time.Millisecond), last.Sub(first).Round(time.Millisecond))
	fmt.Println()
	u1, s1 := procCPU(gw.Process.Pid)
	v1, k1 := sumCPU(s3Pid(s3)), sumCPU(br.cmd.Process.Pid)
	<-profDone
	if fi, err := os.Stat(profile); err != nil || fi.Size() == 0 {
		profile = ""
	}
	return gatewayResult{rate: float64(n) / last.Sub(first).Seconds(), profile: profile,
		cpu: stageCPU{user: u1 - u0, sys: s1 - s0, s3: v1 - v0, broker: k1 - k0, msgs: n}}
}

// startE2EGateway starts aof-gateway with the default configuration but
// for where NATS, Tier 2 and the data root are, and waits until it is
// ready if waitReady.
func startE2EGateway(b *testing.B, bin, natsURL string, s3 *harness.S3, waitReady bool, env ...string) (cmd *exec.Cmd, pprofAddr, metricsAddr string) {
	root, remove := tempE2E(b)
	b.Cleanup(remove)
	metrics := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(b))
	pprofAddr = fmt.Sprintf("127.0.0.1:%d", harness.FreePort(b))
	cmd = exec.Command(bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + root,
		"AOF2_DATA_ROOT=" + filepath.Join(root, "data"),
		"AOF2_NATS_URL=" + natsURL,
		"AOF2_TIER2_ENDPOINT=" + s3.Endpoint,
		"AOF2_TIER2_BUCKET=" + s3.Bucket,
		"AOF2_TIER2_ACCESS_KEY=" + s3.AccessKey,
		"AOF2_TIER2_SECRET_KEY=" + s3.SecretKey,
		"AOF2_METRICS_LISTEN=" + metrics,
		"AOF2_LOG_LEVEL=warn",
		"AOF_GATEWAY_PPROF=" + pprofAddr,
	}
	// AOF_BENCH_E2E_GATEWAY_ENV adds settings (AOF2_K=V, space separated)
	// for experiments; the reported figures run without it.
	cmd.Env = append(cmd.Env, strings.Fields(os.Getenv("AOF_BENCH_E2E_GATEWAY_ENV"))...)
	cmd.Env = append(cmd.Env, env...)
	logf, err := os.Create(filepath.Join(root, "gateway.log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		logf.Close()
		if os.Getenv("AOF_BENCH_E2E_LOG") != "" {
			out, _ := os.ReadFile(logf.Name())
			b.Logf("gateway log:\n%s", out)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for waitReady {
		resp, err := http.Get("http://" + metrics + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cmd, pprofAddr, metrics
			}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			out, _ := os.ReadFile(logf.Name())
			b.Fatalf("gateway not ready after 60s:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cmd, pprofAddr, metrics
}

func fetchProfile(b *testing.B, addr string, secs int, path string) {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs))
	if err != nil {
		b.Logf("profile: %v", err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		b.Logf("profile: %v", err)
		return
	}
	defer f.Close()
	io.Copy(f, resp.Body)
}

// procCPU is a process's user and system CPU time so far.
func procCPU(pid int) (user, sys time.Duration) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	if len(f) < 13 {
		return 0, 0
	}
	tick := time.Second / 100 // USER_HZ
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut) * tick, time.Duration(st) * tick
}

func sumCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	u, s := procCPU(pid)
	return u + s
}

// s3Pid finds versitygw's process id from its listening port's owner:
// the harness keeps the command to itself, so it is looked up by name and
// argument.
func s3Pid(s3 *harness.S3) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && strings.Contains(string(cmdline), s3.Host) && strings.Contains(string(cmdline), "versitygw") {
			return pid
		}
	}
	return 0
}

// stageNames are the stages the gateway's CPU is split into.
var stageNames = []string{"consume", "append+fsync", "compress", "upload", "archive/ownership", "gc/runtime/other"}

// stageOf names the stage of one sampled stack (leaf first).
func stageOf(frames []string) string {
	has := func(subs ...string) bool {
		for _, f := range frames {
			for _, s := range subs {
				if strings.Contains(f, s) {
					return true
				}
			}
		}
		return false
	}
	switch {
	case has("aof/tiers/tier2.", "minio-go", "net/http."):
		return "upload"
	case has("aof/tiers/tier1.", "klauspost/compress"):
		return "compress"
	case has("aof/tiers/segment.", "(*Store).Append", "(*Store).SyncTo", "aof/tiers.(*Log)"):
		return "append+fsync"
	case has("nats.go", "aof/ingest."):
		return "consume"
	case has("aof/manifest", "aof/cluster", "aof/ownership", "aof/tiers."):
		return "archive/ownership"
	}
	return "gc/runtime/other"
}

// unescapeFrame undoes pprof's escape of the dots in a module path
// (nats%2ego is nats.go).
func unescapeFrame(f string) string { return strings.ReplaceAll(f, "%2e", ".") }

// profileStages splits the samples of profiles by stage and lists the
// top functions (flat) of the costliest stage.
func profileStages(bin string, profiles []string) (map[string]float64, string, error) {
	out, err := exec.Command("go", append([]string{"tool", "pprof", "-traces", bin}, profiles...)...).Output()
	if err != nil {
		return nil, "", fmt.Errorf("go tool pprof -traces: %w", err)
	}
	byStage := map[string]float64{}
	flat := map[string]map[string]float64{}
	var total float64
	var frames []string
	var value float64
	flush := func() {
		if len(frames) > 0 {
			st := stageOf(frames)
			byStage[st] += value
			if flat[st] == nil {
				flat[st] = map[string]float64{}
			}
			flat[st][frames[0]] += value
			total += value
		}
		frames, value = nil, 0
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "-----") {
			flush()
			continue
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(frames) == 0 && value == 0 {
			if d, err := time.ParseDuration(fields[0]); err == nil && len(fields) > 1 {
				value = d.Seconds()
				frames = append(frames, unescapeFrame(fields[1]))
				continue
			}
		}
		if value > 0 {
			frames = append(frames, unescapeFrame(fields[0]))
		}
	}
	flush()
	if total == 0 {
		return nil, "", fmt.Errorf("no samples")
	}
	worst := ""
	for _, st := range stageNames {
		byStage[st] /= total
		if worst == "" || byStage[st] > byStage[worst] {
			worst = st
		}
	}
	type fn struct {
		name string
		v    float64
	}
	var fns []fn
	for name, v := range flat[worst] {
		fns = append(fns, fn{name, v})
	}
	slices.SortFunc(fns, func(a, b fn) int {
		if a.v > b.v {
			return -1
		}
		if a.v < b.v {
			return 1
		}
		return 0
	})
	var sb strings.Builder
	fmt.Fprintf(&sb, "costliest stage %s (%.1f%% of %.2f s of samples): top functions by own time\n", worst, 100*byStage[worst], total)
	for _, f := range fns[:min(12, len(fns))] {
		fmt.Fprintf(&sb, "  %5.1f%%  %s\n", 100*f.v/total, f.name)
	}
	return byStage, sb.String(), nil
}

// e2eWarmUp is the start of a latency round left out of its figures: the
// first messages create the stream (its directory, manifest and first
// segment) and warm the consumer, which a steady rate does not see again.
const e2eWarmUp = time.Second

// e2eLatencyRound publishes at rate for d into a fresh broker with the
// consumer startConsumer starts, and returns the percentiles of the time
// from each publish to its ack (after e2eWarmUp).
func e2eLatencyRound(b *testing.B, layout cpuLayout, startConsumer func(*e2eBroker) (stop func()), streams int, rate float64, d time.Duration) (p50, p99 time.Duration, seen int) {
	br := startBroker(b, layout, 0, streams)
	defer br.stop()
	defer startConsumer(br)()
	// Acks of the gateway's consumers, by stream sequence.
	var mu sync.Mutex
	acked := map[uint64]time.Time{}
	// A connection of its own: the acks of every message must not crowd
	// out the producer's publish acks on its connection.
	acks, err := nats.Connect(br.url)
	if err != nil {
		b.Fatal(err)
	}
	defer acks.Close()
	sub, err := acks.Subscribe("$JS.ACK.>", func(m *nats.Msg) {
		if seq, ok := ackStreamSeq(m.Subject); ok {
			now := time.Now()
			mu.Lock()
			acked[seq] = now
			mu.Unlock()
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	sub.SetPendingLimits(-1, -1)
	defer sub.Unsubscribe()
	acks.Flush()
	settleE2E()
	count := int(rate * d.Seconds())
	sent := make([]time.Time, count)
	futs := make([]jetstream.PubAckFuture, count)
	buf := make([]byte, e2eBodyBytes)
	start := time.Now()
	for i := range count {
		if wait := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); wait > 0 {
			time.Sleep(wait)
		}
		sent[i] = time.Now()
		f, err := br.js.PublishAsync(fmt.Sprintf("aof.ingest.bench-%d", i%streams), bodyOf(buf, i))
		if err != nil {
			b.Fatal(err)
		}
		futs[i] = f
	}
	select {
	case <-br.js.PublishAsyncComplete():
	case <-time.After(time.Minute):
	}
	var lat []time.Duration
	lost := 0
	deadline := time.Now().Add(2 * time.Minute)
	for i := 0; i < count; {
		var ack *jetstream.PubAck
		select {
		case ack = <-futs[i].Ok():
		case <-futs[i].Err():
		case <-time.After(time.Until(deadline)):
			// Seen once: a future that neither resolved nor timed out.
		}
		if ack == nil {
			// Its publish ack was lost or timed out: the stream
			// sequence is unknown, so the message is left out (and
			// counted).
			lost++
			i++
			continue
		}
		mu.Lock()
		t, ok := acked[ack.Sequence]
		mu.Unlock()
		if !ok {
			if time.Now().After(deadline) {
				b.Fatalf("message %d (seq %d) never acked by the gateway", i, ack.Sequence)
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if sent[i].Sub(start) >= e2eWarmUp {
			lat = append(lat, t.Sub(sent[i]))
		}
		if os.Getenv("AOF_BENCH_E2E_SLOW") != "" && t.Sub(sent[i]) > 20*time.Millisecond {
			fmt.Printf("slow: message %d sent at +%v durable after %v\n", i, sent[i].Sub(start).Round(time.Millisecond), t.Sub(sent[i]).Round(time.Millisecond))
		}
		i++
	}
	if lost > 0 {
		fmt.Printf("latency: %d publish acks timed out, left out\n", lost)
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100], len(lat)
}

// ackStreamSeq reads the stream sequence from an ack subject:
// $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>, or
// with the domain and account hash before the stream (and a token after).
func ackStreamSeq(subject string) (uint64, bool) {
	t := strings.Split(subject, ".")
	if len(t) < 9 || t[0] != "$JS" || t[1] != "ACK" {
		return 0, false
	}
	i := 5
	if len(t) >= 11 {
		i = 7
	}
	seq, err := strconv.ParseUint(t[i], 10, 64)
	return seq, err == nil
}

// fmtRates and fmtRatios print a round's figures compactly.
func fmtRates(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'f', 0, 64)
	}
	return strings.Join(s, ", ")
}

func fmtRatios(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'f', 3, 64)
	}
	return strings.Join(s, ", ")
}

// killE2E ends a process of a round and waits for it.
func killE2E(cmd *exec.Cmd) {
	cmd.Process.Kill()
	cmd.Wait()
}

// tempE2E is a directory removed as soon as the round ends (b.TempDir
// would keep every round's gigabytes until the benchmark ends).
func tempE2E(b *testing.B) (string, func()) {
	dir, err := os.MkdirTemp("", "aof-e2e")
	if err != nil {
		b.Fatal(err)
	}
	return dir, func() { os.RemoveAll(dir) }
}
