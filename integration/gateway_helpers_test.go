package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/cluster"
	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/tier2"
)

var (
	buildMu sync.Mutex
	binDir  string
	built   = map[string]error{}
)

// binary builds the project command name once per test run and returns
// its path.
func binary(t testing.TB, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if binDir == "" {
		dir, err := os.MkdirTemp("", "aof-integration-bin")
		if err != nil {
			t.Fatal(err)
		}
		binDir = dir
	}
	err, done := built[name]
	if !done {
		cmd := exec.Command("go", "build", "-o", binDir+"/", "./cmd/"+name)
		cmd.Dir = harness.RepoRoot(t)
		if out, berr := cmd.CombinedOutput(); berr != nil {
			err = fmt.Errorf("go build ./cmd/%s: %v\n%s", name, berr, out)
		}
		built[name] = err
	}
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(binDir, name)
}

// env is one test's servers and data root.
type env struct {
	t     testing.TB
	nats  *harness.NATS
	s3    *harness.S3
	root  string
	extra []string // additional AOF2_* settings
	// cluster, when set, is the NATS the gateways use instead of nats.
	cluster *harness.Cluster
}

func newEnv(t testing.TB, extra ...string) *env {
	return &env{t: t, nats: harness.StartNATS(t), s3: harness.StartS3(t), root: t.TempDir(), extra: extra}
}

func (e *env) natsURL() string {
	if e.cluster != nil {
		return e.cluster.URL()
	}
	return e.nats.URL
}

func (e *env) environ(metricsAddr string) []string {
	base := []string{
		"AOF2_DATA_ROOT=" + filepath.Join(e.root, "data"),
		"AOF2_NATS_URL=" + e.natsURL(),
		"AOF2_TIER2_ENDPOINT=" + e.s3.Endpoint,
		"AOF2_TIER2_BUCKET=" + e.s3.Bucket,
		"AOF2_TIER2_ACCESS_KEY=" + e.s3.AccessKey,
		"AOF2_TIER2_SECRET_KEY=" + e.s3.SecretKey,
		"AOF2_METRICS_LISTEN=" + metricsAddr,
		"AOF2_SEGMENT_TARGET_BYTES=256KiB",
		"AOF2_TIER0_CLUSTER_MAX_BYTES=64MiB",
		"AOF2_TIER1_MAX_BYTES=64MiB",
		"AOF2_LOG_LEVEL=info",
	}
	out := append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.root}, base...)
	return append(out, e.extra...)
}

// gateway is one running aof-gateway process.
type gateway struct {
	t       testing.TB
	cmd     *exec.Cmd
	metrics string
	log     *os.File
	done    chan error
}

func (e *env) startGateway(args ...string) *gateway {
	e.t.Helper()
	return e.startGatewayWith(nil, args...)
}

// startGatewayWith starts the gateway with its environment passed through
// edit first.
func (e *env) startGatewayWith(edit func([]string) []string, args ...string) *gateway {
	e.t.Helper()
	metrics := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(e.t))
	logf, err := os.OpenFile(filepath.Join(e.root, "gateway.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(binary(e.t, "aof-gateway"), args...)
	cmd.Env = e.environ(metrics)
	if edit != nil {
		cmd.Env = edit(cmd.Env)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start gateway: %v", err)
	}
	g := &gateway{t: e.t, cmd: cmd, metrics: metrics, log: logf, done: make(chan error, 1)}
	go func() { g.done <- cmd.Wait() }()
	e.t.Cleanup(func() { g.kill() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if st, err := g.status(); err == nil && st.Ready {
			return g
		}
		select {
		case err := <-g.done:
			g.done <- err
			e.t.Fatalf("gateway exited during start: %v\n%s", err, e.gatewayLog())
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("gateway not ready after 30s\n%s", e.gatewayLog())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// gatewayLog returns the end of the gateway's log, for failure messages.
func (e *env) gatewayLog() string {
	b := e.fullGatewayLog()
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return b
}

// fullGatewayLog returns every line the gateway processes of e logged.
func (e *env) fullGatewayLog() string {
	b, _ := os.ReadFile(filepath.Join(e.root, "gateway.log"))
	return string(b)
}

type readyz struct {
	Ready           bool          `json:"ready"`
	Ingest          ingest.Status `json:"ingest"`
	OwnedPartitions []int         `json:"owned_partitions"`
}

func (g *gateway) status() (readyz, error) {
	var st readyz
	resp, err := http.Get("http://" + g.metrics + "/readyz")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

func (g *gateway) metricsText() string {
	resp, err := http.Get("http://" + g.metrics + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return b.String()
}

// tail returns the last n bytes of the file at path.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	return string(b[max(0, len(b)-n):])
}

// stop sends SIGTERM and waits for a clean exit.
func (g *gateway) stop() {
	g.t.Helper()
	if g.cmd.ProcessState != nil {
		return
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-g.done:
		if err != nil {
			g.t.Fatalf("gateway exit after SIGTERM: %v\n%s", err, tail(g.log.Name(), 8000))
		}
	case <-time.After(30 * time.Second):
		g.t.Fatal("gateway did not stop within 30s of SIGTERM")
	}
}

// kill sends SIGKILL: a crash at an arbitrary point.
func (g *gateway) kill() {
	if g.cmd.ProcessState != nil {
		return
	}
	g.cmd.Process.Kill()
	select {
	case <-g.done:
	case <-time.After(10 * time.Second):
	}
}

// waitDrained waits until the gateway's consumers (one per partition,
// aof-gateway-p<n>) have acked everything in AOF_INGEST.
func (e *env) waitDrained(js jetstream.JetStream, timeout time.Duration) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		if drained(ctx, js) {
			return
		}
		select {
		case <-ctx.Done():
			e.t.Fatalf("ingest not drained within %v\n%s", timeout, e.gatewayLog())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// drained reports whether every partition consumer of AOF_INGEST exists
// and has nothing pending or unacked.
func drained(ctx context.Context, js jetstream.JetStream) bool {
	st, err := js.Stream(ctx, "AOF_INGEST")
	if err != nil {
		return false
	}
	partitions, ok := cluster.PartitionsOf(st.CachedInfo().Config.SubjectTransform, "aof.ingest")
	if !ok {
		return false
	}
	lister := st.ListConsumers(ctx)
	n := 0
	for info := range lister.Info() {
		if !strings.HasPrefix(info.Name, "aof-gateway-p") {
			continue
		}
		n++
		if info.NumPending != 0 || info.NumAckPending != 0 {
			return false
		}
	}
	return lister.Err() == nil && n == partitions
}

// waitReplayStarted waits until a gateway started on a recovered data
// root has taken the recovery marker, that is, recreated its consumer at
// the start of the ingest stream. Until then the old consumer shows
// nothing pending, and waitDrained alone would return at once.
func (e *env) waitReplayStarted() {
	e.t.Helper()
	marker := filepath.Join(e.root, "data", "RECOVERED_FROM_TIER2")
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := os.Stat(marker); os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the gateway did not start the replay after the recovery within a minute\n%s", e.gatewayLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openStore opens the data root offline (the gateway must be stopped),
// with Tier 2 so evicted segments can be read.
func (e *env) openStore() *tiers.Store {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	t2, err := tier2.New(ctx, tier2.Options{Endpoint: e.s3.Endpoint, Bucket: e.s3.Bucket, AccessKey: e.s3.AccessKey, SecretKey: e.s3.SecretKey})
	if err != nil {
		e.t.Fatal(err)
	}
	s, err := tiers.Open(ctx, tiers.Options{Root: filepath.Join(e.root, "data"), Tier2: t2})
	if err != nil {
		e.t.Fatalf("open store offline: %v", err)
	}
	e.t.Cleanup(func() { s.Close() })
	return s
}

// storedMessage is one record read back and decoded.
type storedMessage struct {
	Offset  uint64
	Seq     uint64
	Subject string
	Header  map[string][]string
	Body    []byte
}

// readStream reads every record of stream.
func readStream(t testing.TB, s *tiers.Store, stream string) []storedMessage {
	t.Helper()
	return readSegment(t, s, stream, 0, 0)
}

// readSegment reads the records of stream from offset from up to to (0:
// to the end of what is stored).
func readSegment(t testing.TB, s *tiers.Store, stream string, from, to uint64) []storedMessage {
	t.Helper()
	r, err := s.Reader(stream)
	if err != nil {
		t.Fatalf("reader %s: %v", stream, err)
	}
	defer r.Close()
	r.Seek(from)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []storedMessage
	for to == 0 || r.Offset() < to {
		e, err := r.TryNext(ctx)
		if err != nil {
			if strings.Contains(err.Error(), "backpressure: tail") {
				return out
			}
			if strings.Contains(err.Error(), "backpressure: hydration") {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			t.Fatalf("read %s at %d: %v", stream, r.Offset(), err)
		}
		env, err := ingest.DecodeEnvelope(e.Payload)
		if err != nil {
			t.Fatalf("%s offset %d: %v", stream, e.Offset, err)
		}
		out = append(out, storedMessage{Offset: e.Offset, Seq: e.ExtID, Subject: env.Subject, Header: env.Header, Body: append([]byte(nil), env.Body...)})
	}
	return out
}
