package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/tier2"
)

// clusterLeaseTTL is the lease TTL of the failover tests: short, so a
// takeover after a SIGKILL takes seconds.
const clusterLeaseTTL = 2 * time.Second

// clusterMovePause is cluster.rebalance_pause in these tests: short, so a
// join rebalances in seconds, yet moves are still one at a time.
const clusterMovePause = 200 * time.Millisecond

// node is one gateway of a failover test: its own node id, data root,
// log and metrics port, on the env's NATS and bucket.
type node struct {
	e    *env
	id   string
	root string
	gw   *gateway
	// leaseTTL is cluster.lease_ttl (clusterLeaseTTL when 0).
	leaseTTL time.Duration
	// movePause is cluster.rebalance_pause (clusterMovePause when 0).
	movePause time.Duration
	// env is appended last: it overrides the settings above.
	env  []string
	args []string // of aof-gateway
}

func (e *env) newNode(id string) *node {
	return &node{e: e, id: id, root: filepath.Join(e.root, id)}
}

// start starts the node's gateway and waits until it answers /readyz.
func (n *node) start() {
	n.e.t.Helper()
	n.gw = n.e.startGatewayWith(func(env []string) []string {
		out := env[:0:0]
		for _, kv := range env {
			if !strings.HasPrefix(kv, "AOF2_DATA_ROOT=") {
				out = append(out, kv)
			}
		}
		ttl := n.leaseTTL
		if ttl == 0 {
			ttl = clusterLeaseTTL
		}
		pause := n.movePause
		if pause == 0 {
			pause = clusterMovePause
		}
		out = append(out, "AOF2_DATA_ROOT="+n.root, "AOF2_NODE_ID="+n.id,
			"AOF2_CLUSTER_LEASE_TTL="+ttl.String(), "AOF2_CLUSTER_REBALANCE_PAUSE="+pause.String(),
			"AOF2_SEGMENT_TARGET_BYTES=64KiB")
		return append(out, n.env...)
	}, n.args...)
}

// wipe deletes the node's data root: a lost disk.
func (n *node) wipe() {
	n.e.t.Helper()
	if err := os.RemoveAll(n.root); err != nil {
		n.e.t.Fatal(err)
	}
}

func (n *node) signal(sig syscall.Signal) {
	n.e.t.Helper()
	if err := n.gw.cmd.Process.Signal(sig); err != nil {
		n.e.t.Fatalf("signal %v to %s: %v", sig, n.id, err)
	}
}

// publisher publishes numbered messages to several streams until
// stopped, and remembers every one JetStream acknowledged.
type publisher struct {
	js      jetstream.JetStream
	streams []string
	mu      sync.Mutex
	acked   map[string][]int // stream -> message numbers acked
	// unsure are the bodies whose publish failed: JetStream may have
	// stored them all the same (the ack was lost), so the archive may
	// hold them, once.
	unsure map[string]bool
	stop   chan struct{}
	done   chan struct{}
	fails  int
}

func startPublisher(t testing.TB, nc *nats.Conn, streams []string) *publisher {
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	p := &publisher{js: js, streams: streams, acked: map[string][]int{}, unsure: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	return p
}

func (p *publisher) run() {
	defer close(p.done)
	for i := 0; ; i++ {
		select {
		case <-p.stop:
			return
		default:
		}
		s := p.streams[i%len(p.streams)]
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := p.js.Publish(ctx, "aof.ingest."+s, fmt.Appendf(nil, "%s-%08d", s, i))
		cancel()
		p.mu.Lock()
		if err != nil {
			p.fails++
			p.unsure[fmt.Sprintf("%s-%08d", s, i)] = true
		} else {
			p.acked[s] = append(p.acked[s], i)
		}
		p.mu.Unlock()
		time.Sleep(2 * time.Millisecond)
	}
}

// maybe returns the bodies whose publish failed.
func (p *publisher) maybe() map[string]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.unsure
}

// finish stops publishing and returns what was acked.
func (p *publisher) finish() (map[string][]int, int) {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked, p.fails
}

func (p *publisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, v := range p.acked {
		n += len(v)
	}
	return n
}

// waitIngestEmpty waits until AOF_INGEST holds no message: everything
// was archived and purged.
func (e *env) waitIngestEmpty(js jetstream.JetStream, timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	var msgs uint64
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := js.Stream(ctx, "AOF_INGEST")
		if err == nil {
			var info *jetstream.StreamInfo
			if info, err = st.Info(ctx); err == nil {
				msgs = info.State.Msgs
			}
		}
		cancel()
		if err == nil && msgs == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	subjects := map[string]uint64{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if st, err := js.Stream(ctx, "AOF_INGEST"); err == nil {
		if info, err := st.Info(ctx, jetstream.WithSubjectFilter(">")); err == nil {
			subjects = info.State.Subjects
		}
	}
	if p := os.Getenv("AOF_TEST_KEEP_LOG"); p != "" {
		os.WriteFile(p, []byte(e.fullGatewayLog()), 0o644)
	}
	e.t.Fatalf("AOF_INGEST still holds %d messages after %v, by subject %v\n%s", msgs, timeout, subjects, e.gatewayLog())
}

// checkArchiveExactlyOnce rebuilds a data root from Tier 2 alone and
// checks that every acked message is in it exactly once, with dense
// offsets, and that anything else in it is a message whose publish
// failed (JetStream stored it but its ack was lost), also at most once.
func (e *env) checkArchiveExactlyOnce(acked map[string][]int, unsure ...map[string]bool) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t2, err := tier2.New(ctx, tier2.Options{Endpoint: e.s3.Endpoint, Bucket: e.s3.Bucket, AccessKey: e.s3.AccessKey, SecretKey: e.s3.SecretKey})
	if err != nil {
		e.t.Fatal(err)
	}
	root := filepath.Join(e.root, "from-tier2")
	if _, err := tiers.RecoverFromTier2(ctx, tiers.RecoverOptions{Root: root, Tier2: t2}); err != nil {
		e.t.Fatalf("rebuild from Tier 2: %v", err)
	}
	s, err := tiers.Open(ctx, tiers.Options{Root: root, Tier2: t2})
	if err != nil {
		e.t.Fatalf("open the rebuilt root: %v", err)
	}
	defer s.Close()
	for stream, nums := range acked {
		got := readStream(e.t, s, stream)
		seen := map[string]int{}
		for i, m := range got {
			if m.Offset != uint64(i) {
				e.t.Fatalf("%s: record %d has offset %d", stream, i, m.Offset)
			}
			seen[string(m.Body)]++
		}
		var missing, twice []string
		for _, n := range nums {
			body := fmt.Sprintf("%s-%08d", stream, n)
			switch seen[body] {
			case 0:
				missing = append(missing, body)
			case 1:
			default:
				twice = append(twice, body)
			}
		}
		sort.Strings(missing)
		extra := 0
		for body, n := range seen {
			if !strings.HasPrefix(body, stream+"-") {
				continue
			}
			if len(unsure) > 0 && unsure[0][body] {
				extra++
				if n > 1 {
					twice = append(twice, body)
				}
			}
		}
		if len(missing) > 0 || len(twice) > 0 || len(got) != len(nums)+extra {
			e.t.Fatalf("%s: %d acked, %d archived (%d of them unacked publishes); missing %d (first %v), stored twice %d (first %v)",
				stream, len(nums), len(got), extra, len(missing), first(missing), len(twice), first(twice))
		}
	}
}

func first(s []string) []string { return s[:min(len(s), 3)] }
