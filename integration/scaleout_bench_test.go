package integration

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bop-aof/aof/ingest"
)

// BenchmarkScaleOut measures, with the defaults a user runs
// (cluster.rebalance_pause 2s, lease TTL 10s):
//
//   - rebalance_1_to_3_s: gw-a owns all 16 partitions under publishing;
//     gw-b and gw-c start together; the time until the partitions are
//     spread 6/5/5.
//   - cpu_<n>gw: the CPU time (user + system, from /proc) all n gateway
//     processes spend per message while draining the same burst of
//     messages over 32 streams, published while the partition consumers
//     were paused, for
//     n = 1, 2, 3 on one machine; and the busiest gateway's share. On one machine the gateways share its
//     cores, so throughput cannot grow; the per-message cost shows what
//     each added gateway costs, and that the work divides.
//
// Run by `make bench`:
//
//	go test -run '^$' -bench BenchmarkScaleOut -benchtime 1x ./integration/
func BenchmarkScaleOut(b *testing.B) {
	b.Run("rebalance", benchRebalance)
	for n := 1; n <= 3; n++ {
		b.Run(fmt.Sprintf("cpu_%dgw", n), func(b *testing.B) { benchCPUPerMessage(b, n) })
	}
}

func benchRebalance(b *testing.B) {
	e := newEnv(b)
	nodes := []*node{e.newNode("gw-a"), e.newNode("gw-b"), e.newNode("gw-c")}
	for _, n := range nodes {
		n.leaseTTL, n.movePause = 10*time.Second, 2*time.Second
	}
	nodes[0].start()
	pub := startPublisher(b, e.nats.Connect(b), []string{"orders", "audit", "clicks", "payments"})
	defer pub.finish()
	waitSpread(b, time.Minute, nodes[0]) // all 16 on gw-a
	t0 := time.Now()
	nodes[1].start()
	nodes[2].start()
	waitSpread(b, 3*time.Minute, nodes...)
	took := time.Since(t0) // from the start of gw-b, both start-ups included
	b.ReportMetric(took.Seconds(), "rebalance_1_to_3_s")
	b.Logf("16 partitions from 1 to 3 gateways in %v (pause 2s): %v", took.Round(time.Millisecond), owned(nodes...))
}

func benchCPUPerMessage(b *testing.B, gateways int) {
	const msgs, streams, body = 60000, 32, 256
	e := newEnv(b)
	var nodes []*node
	for i := range gateways {
		n := e.newNode(fmt.Sprintf("gw-%c", 'a'+i))
		n.leaseTTL = 10 * time.Second
		// A user's segment size: seals and uploads at the rate they would
		// have, not one per 64 KiB.
		n.env = []string{"AOF2_SEGMENT_TARGET_BYTES=8MiB"}
		nodes = append(nodes, n)
		n.start()
	}
	if gateways > 1 {
		waitSpread(b, 3*time.Minute, nodes...)
	}
	// The burst waits in AOF_INGEST while every partition consumer is
	// paused (JetStream consumer pause), so each gateway drains its share
	// of a full stream, as after an outage, not a trickle whose batches
	// are as small as the publisher's pace.
	js := e.nats.JetStream(b)
	ctx := context.Background()
	for p := range 16 {
		if _, err := js.PauseConsumer(ctx, "AOF_INGEST", ingest.PartitionDurable("aof-gateway", p), time.Now().Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	payload := []byte(strings.Repeat("x", body))
	for i := range msgs {
		if _, err := js.PublishAsync(fmt.Sprintf("aof.ingest.s%02d", i%streams), payload); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			<-js.PublishAsyncComplete()
		}
	}
	<-js.PublishAsyncComplete()
	before := make([]time.Duration, gateways)
	for i, n := range nodes {
		before[i] = processCPU(b, n.gw.cmd.Process.Pid)
	}
	t0 := time.Now()
	for p := range 16 {
		if _, err := js.ResumeConsumer(ctx, "AOF_INGEST", ingest.PartitionDurable("aof-gateway", p)); err != nil {
			b.Fatal(err)
		}
	}
	e.waitDrained(js, 5*time.Minute)
	wall := time.Since(t0)
	var total, busiest time.Duration
	for i, n := range nodes {
		d := processCPU(b, n.gw.cmd.Process.Pid) - before[i]
		total += d
		busiest = max(busiest, d)
	}
	perMsg := float64(total.Microseconds()) / msgs
	b.ReportMetric(perMsg, "cpu_us_per_msg")
	b.ReportMetric(float64(busiest)/float64(total), "busiest_share")
	b.ReportMetric(msgs/wall.Seconds(), "msgs_per_s")
	b.Logf("%d gateway(s): %d messages drained in %v, CPU %v in all (%.1f µs/msg), busiest gateway %.0f%% of it: %v",
		gateways, msgs, wall.Round(time.Millisecond), total.Round(time.Millisecond), perMsg, 100*float64(busiest)/float64(total), owned(nodes...))
}

// processCPU returns the user + system CPU time of pid (Linux /proc).
func processCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatalf("CPU time of %d: %v", pid, err)
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from the last ')'.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks
}
