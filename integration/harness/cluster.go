package harness

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var (
	serverBinOnce sync.Once
	serverBin     string
	serverBinErr  error
)

// natsServerBinary builds the nats-server of go.mod once per test binary:
// a cluster test kills servers with SIGKILL, which an embedded server in
// the test process cannot take.
func natsServerBinary(t testing.TB) string {
	t.Helper()
	serverBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "aof-nats-server")
		if err != nil {
			serverBinErr = err
			return
		}
		serverBin = filepath.Join(dir, "nats-server")
		cmd := exec.Command("go", "build", "-o", serverBin, "github.com/nats-io/nats-server/v2")
		cmd.Dir = RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			serverBinErr = fmt.Errorf("go build nats-server: %v\n%s", err, out)
		}
	})
	if serverBinErr != nil {
		t.Fatal(serverBinErr)
	}
	return serverBin
}

// Cluster is a JetStream cluster of nats-server processes on loopback.
type Cluster struct {
	t       testing.TB
	bin     string
	dir     string
	clients []int
	routes  []int
	procs   []*exec.Cmd
	done    []chan error
	// URLs are the client URLs of every server.
	URLs []string
}

// StartCluster starts n nats-server processes forming one JetStream
// cluster, and waits until it has a meta leader. They are killed when
// the test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t, bin: natsServerBinary(t), dir: t.TempDir()}
	for range n {
		c.clients = append(c.clients, FreePort(t))
		c.routes = append(c.routes, FreePort(t))
	}
	for _, p := range c.clients {
		c.URLs = append(c.URLs, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	c.procs = make([]*exec.Cmd, n)
	c.done = make([]chan error, n)
	for i := range n {
		c.Start(i)
	}
	t.Cleanup(func() {
		for i := range c.procs {
			c.Kill(i)
		}
	})
	c.WaitReady(30 * time.Second)
	return c
}

// URL is every server's client URL, comma separated, as clients take it.
func (c *Cluster) URL() string { return strings.Join(c.URLs, ",") }

func (c *Cluster) config(i int) string {
	var routes []string
	for j, p := range c.routes {
		if j != i {
			routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
		}
	}
	return fmt.Sprintf(`server_name: n%d
listen: 127.0.0.1:%d
jetstream { store_dir: %q }
cluster {
  name: aof-test
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, i, c.clients[i], filepath.Join(c.dir, fmt.Sprintf("n%d", i)), c.routes[i], strings.Join(routes, ", "))
}

// Start starts server i (again, after Kill, with its store kept).
func (c *Cluster) Start(i int) {
	c.t.Helper()
	conf := filepath.Join(c.dir, fmt.Sprintf("n%d.conf", i))
	if err := os.WriteFile(conf, []byte(c.config(i)), 0o644); err != nil {
		c.t.Fatal(err)
	}
	logf, err := os.OpenFile(filepath.Join(c.dir, fmt.Sprintf("n%d.log", i)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(c.bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start nats-server n%d: %v", i, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); logf.Close() }()
	c.procs[i], c.done[i] = cmd, done
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", c.clients[i]), 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("nats-server n%d not listening: %v", i, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill sends SIGKILL to server i and waits for it to exit.
func (c *Cluster) Kill(i int) {
	cmd := c.procs[i]
	if cmd == nil || cmd.ProcessState != nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-c.done[i]:
	case <-time.After(10 * time.Second):
	}
	c.procs[i] = nil
}

// WaitReady waits until JetStream answers through every running server
// and can place a stream on every running server: the cluster has its
// meta leader and every peer.
func (c *Cluster) WaitReady(timeout time.Duration) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	running := 0
	for _, p := range c.procs {
		if p != nil {
			running++
		}
	}
	for i, u := range c.URLs {
		if c.procs[i] == nil {
			continue
		}
		for {
			err := placeProbe(ctx, u, running)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				c.t.Fatalf("JetStream not ready through %s: %v", u, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// placeProbe creates and deletes a stream with replicas replicas
// through url.
func placeProbe(ctx context.Context, url string, replicas int) error {
	nc, err := nats.Connect(url, nats.Timeout(time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := js.CreateOrUpdateStream(rctx, jetstream.StreamConfig{Name: "HARNESS_PROBE", Subjects: []string{"harness.probe"},
		Replicas: replicas, Storage: jetstream.MemoryStorage}); err != nil {
		return err
	}
	return js.DeleteStream(rctx, "HARNESS_PROBE")
}

// Connect returns a client connection to every server, closed when the
// test ends; it reconnects forever.
func (c *Cluster) Connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(c.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("harness: connect %s: %v", c.URL(), err)
	}
	t.Cleanup(nc.Close)
	return nc
}
