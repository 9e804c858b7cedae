package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/aofclient"
)

// archivedOffset is the next offset of stream's archived record in the
// cluster bucket, 0 when it has none.
func archivedOffset(t testing.TB, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, "AOF_CLUSTER")
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, "archived."+stream)
	if err != nil {
		return 0
	}
	var doc struct {
		Offset uint64 `json:"offset"`
	}
	if err := json.Unmarshal(e.Value(), &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Offset
}

func waitArchivedOffset(t testing.TB, js jetstream.JetStream, stream string, min uint64, timeout time.Duration) uint64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if off := archivedOffset(t, js, stream); off >= min {
			return off
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s archived to %d after %v, want at least %d", stream, archivedOffset(t, js, stream), timeout, min)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readAll reads stream [0, to) (to the tail when to is 0) and checks that
// record i is body fmt(i), at offset i.
func readBodies(t testing.TB, nc *nats.Conn, stream string, to uint64, body func(int) string) int {
	t.Helper()
	c, err := aofclient.New(nc, aofclient.WithBatch(500, 0), aofclient.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := []aofclient.ReadOption{aofclient.FromOffset(0)}
	if to > 0 {
		opts = append(opts, aofclient.ToOffset(to))
	}
	n := 0
	for rec, err := range c.Read(ctx, stream, opts...) {
		if err != nil {
			t.Fatalf("read %s after %d records: %v", stream, n, err)
		}
		if rec.Offset != uint64(n) || string(rec.Data) != body(n) {
			t.Fatalf("record %d of %s: offset %d body %q, want %q", n, stream, rec.Offset, rec.Data, body(n))
		}
		n++
	}
	return n
}

// A gateway started with --follower and an empty data root owns no
// partition, yet reads a whole stream another gateway wrote, every record
// once, in order: with the owner running (archived history from the
// follower's replica, the tail from the owner) and with the owner gone
// (everything archived: the follower alone answers).
func TestAFollowerWithAnEmptyRootServesAStreamItNeverOwned(t *testing.T) {
	e := newEnv(t)
	owner, follower := e.newNode("gw-a"), e.newNode("gw-f")
	follower.args = []string{"--follower"}
	owner.start()
	follower.start()
	nc := e.nats.Connect(t)
	js := e.nats.JetStream(t)
	const n = 3000
	body := func(i int) string { return fmt.Sprintf("orders-%05d", i) }
	for i := range n {
		if _, err := js.Publish(context.Background(), "aof.ingest.orders", []byte(body(i))); err != nil {
			t.Fatal(err)
		}
	}
	waitArchivedOffset(t, js, "orders", n/2, 30*time.Second)
	if got := readBodies(t, nc, "orders", 0, body); got != n {
		t.Fatalf("read %d records with the owner running, want %d", got, n)
	}
	owner.gw.stop() // hands over: seals and archives everything
	waitArchivedOffset(t, js, "orders", n, 10*time.Second)
	if got := readBodies(t, nc, "orders", n, body); got != n {
		t.Fatalf("read %d records from the follower alone, want %d", got, n)
	}
	if st, err := follower.gw.status(); err != nil || len(st.OwnedPartitions) != 0 || !st.Ready {
		t.Fatalf("follower status %+v (%v): want ready with no partition", st, err)
	}
	if !strings.Contains(e.fullGatewayLog(), "msg=replica_adopted node=gw-f") {
		t.Fatalf("the follower never adopted a copy:\n%s", e.gatewayLog())
	}
	if out := e.mustAdmin("cluster"); !strings.Contains(out, "gw-f") {
		t.Fatalf("aof2-admin cluster does not list the follower:\n%s", out)
	}
}

// follower collects what a Follow of one stream yields.
type followed struct {
	mu   sync.Mutex
	nums []int
	offs []uint64
}

func (f *followed) run(ctx context.Context, t testing.TB, nc *nats.Conn, stream string) {
	c, err := aofclient.New(nc, aofclient.WithBatch(100, 0), aofclient.WithTimeout(5*time.Second),
		aofclient.WithHeartbeat(500*time.Millisecond))
	if err != nil {
		t.Error(err)
		return
	}
	for rec, err := range c.Follow(ctx, stream, aofclient.FromOffset(0)) {
		if err != nil {
			t.Errorf("follow %s: %v", stream, err)
			return
		}
		num, _ := strconv.Atoi(strings.TrimPrefix(string(rec.Data), stream+"-"))
		f.mu.Lock()
		f.nums, f.offs = append(f.nums, num), append(f.offs, rec.Offset)
		f.mu.Unlock()
	}
}

func (f *followed) len() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.nums) }

// A reader following a stream, through a follower and two owners, while
// producers publish, the owner hands over and then the new owner is
// SIGKILLed: it sees every acked record once, in order, at dense offsets.
func TestAReaderFollowsAStreamThroughAHandoverAndAFailover(t *testing.T) {
	e := newEnv(t)
	a, b, f := e.newNode("gw-a"), e.newNode("gw-b"), e.newNode("gw-f")
	f.args = []string{"--follower"}
	a.start()
	b.start()
	f.start()
	nc := e.nats.Connect(t)
	pub := startPublisher(t, nc, []string{"orders"})
	// The reader starts behind the archived end, in small batches, so
	// that some of its requests reach the follower there (the queue group
	// picks one gateway of three for each).
	waitArchivedOffset(t, e.nats.JetStream(t), "orders", 1500, 60*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := &followed{}
	done := make(chan struct{})
	go func() { defer close(done); got.run(ctx, t, e.nats.Connect(t), "orders") }()

	time.Sleep(2 * time.Second)
	e.mustAdmin("cluster", "handover", "--node", "gw-a")
	time.Sleep(2 * time.Second)
	b.gw.kill() // gw-a drains until it restarts: restart it to take over
	a.gw.stop()
	a.start()
	time.Sleep(2 * time.Second)
	acked, _ := pub.finish()
	want := len(acked["orders"])
	deadline := time.Now().Add(30 * time.Second)
	for got.len() < want && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // anything more would be a repeat
	cancel()
	<-done
	got.mu.Lock()
	defer got.mu.Unlock()
	seen := map[int]bool{}
	for i, num := range got.nums {
		if got.offs[i] != uint64(i) {
			t.Fatalf("record %d at offset %d: a gap or a repeat", i, got.offs[i])
		}
		if seen[num] || (i > 0 && num <= got.nums[i-1]) {
			t.Fatalf("message %d seen twice or out of order (record %d)", num, i)
		}
		seen[num] = true
	}
	unsure := pub.maybe()
	for _, num := range acked["orders"] {
		if !seen[num] {
			t.Fatalf("acked message %d never read (%d read, %d acked)", num, len(got.nums), want)
		}
	}
	for num := range seen {
		if !unsure[fmt.Sprintf("orders-%08d", num)] && !contains(acked["orders"], num) {
			t.Fatalf("message %d read but neither acked nor unsure", num)
		}
	}
	if !strings.Contains(e.fullGatewayLog(), "msg=replica_adopted node=gw-f") {
		t.Fatalf("the follower never answered from a copy of the stream")
	}
	t.Logf("%d records followed through a handover and a failover (%d acked), %d copies adopted by the follower",
		len(got.nums), want, strings.Count(e.fullGatewayLog(), "msg=replica_adopted node=gw-f"))
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
