package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bop-aof/aof/control"
	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/readservice"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/segment"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func fixedNow() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// cli runs aof2-admin in process with a clean environment (no user
// configuration) and returns the exit code and outputs.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := []string{"HOME=" + t.TempDir()}
	code := run(testCtx(t), args, &out, &errOut, env)
	return code, out.String(), errOut.String()
}

// buildRoot writes stream demo (two sealed segments in Tiers 0 and 1, an
// active one) with a fixed clock, so the files are the same every run.
func buildRoot(t *testing.T) (string, *tiers.Store) {
	t.Helper()
	root := t.TempDir()
	s, err := tiers.Open(testCtx(t), tiers.Options{Root: root, SegmentTargetBytes: 1 << 20, FrameBytes: 1 << 10,
		CompressionWorkers: 1, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	add := func(k int) {
		for i := 0; i < k; i++ {
			p := ingest.AppendEnvelope(nil, ingest.Envelope{Subject: "aof.ingest.demo", Header: map[string][]string{"Seq": {fmt.Sprint(n)}},
				Body: fmt.Appendf(nil, "demo message %04d", n)})
			if err := s.AppendDurable(testCtx(t), "demo", []tiers.Record{{Payload: p, ExtID: uint64(n + 1)}}); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	seal := func() {
		id, err := s.Seal(testCtx(t), "demo", false)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			done := false
			for _, st := range s.Segments("demo") {
				done = done || st.Segment == id && st.InTier1
			}
			if done {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("segment %d not compressed", id)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	add(20)
	seal()
	add(20)
	seal()
	add(5)
	return root, s
}

func stoppedRoot(t *testing.T) string {
	root, s := buildRoot(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return root
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update): %v", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n--- got\n%s--- want\n%s", name, path, got, want)
	}
}

func TestGoldenOutputs(t *testing.T) {
	root := stoppedRoot(t)
	cases := []struct {
		name string
		args []string
	}{
		{"dump", []string{"dump", "--root", root}},
		{"dump_json_only", []string{"dump", "--root", root, "--json-only"}},
		{"segments_list", []string{"segments", "list", "--root", root}},
		{"segments_list_tier1", []string{"segments", "list", "--root", root, "--tier", "1"}},
		{"manifest_inspect", []string{"manifest", "inspect", "--root", root, "--stream", "demo", "--recent", "6"}},
		{"read", []string{"read", "--root", root, "--stream", "demo", "--from", "18", "--count", "4"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := cli(t, c.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden(t, c.name, out)
		})
	}
	// The dump's last line is the JSON footer with per-tier counts.
	_, out, _ := cli(t, "dump", "--root", root)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, `{"tier0":{"segments":3,`) || !strings.Contains(last, `"tier1":{"segments":2,`) ||
		!strings.Contains(last, `"hydration_latency_ms":{"p50":0,"p90":0,"p99":0}`) {
		t.Errorf("dump footer %s", last)
	}
}

// online starts NATS, a store, the control service and the read API; it
// returns the --nats-url flag.
func online(t *testing.T) (string, *tiers.Store) {
	t.Helper()
	_, s := buildRoot(t)
	t.Cleanup(func() { s.Close() })
	n := harness.StartNATS(t)
	svc, err := control.New(n.Connect(t), s, control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })
	rs, err := readservice.New(n.Connect(t), s, readservice.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Stop)
	return "--nats-url=" + n.URL, s
}

func TestOnlineCommands(t *testing.T) {
	url, _ := online(t)
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"status"}, "streams: demo"},
		{[]string{"dump", "--stream", "demo"}, "Tier 1 | stream demo | seg 2 | state sealed | bytes "},
		{[]string{"segments", "list", "--tier", "0"}, "3 segment(s)"},
		{[]string{"read", "--stream", "demo", "--from", "43"}, `offset 44 | ext 45 | 2025-01-02T03:04:05.000Z | subject aof.ingest.demo | header Seq=44 | body "demo message 0044"`},
		{[]string{"flush", "--stream", "demo"}, "durable through offset 45"},
		{[]string{"seal", "--stream", "demo"}, "sealed segment 3"},
		{[]string{"seal", "--all"}, "nothing sealed"},
		{[]string{"manifest", "inspect", "--stream", "demo", "--recent", "2"}, "last 2 record(s)"},
		{[]string{"manifest", "check"}, "OK: no problems found"},
		{[]string{"snapshot", "create", "--stream", "demo"}, "snapshot 1 written"},
		{[]string{"snapshot", "list"}, "demo"},
		{[]string{"hydrate", "--stream", "demo", "--segment", "1"}, "already local"},
	}
	for _, s := range steps {
		code, out, errOut := cli(t, append([]string{url}, s.args...)...)
		if code != 0 || !strings.Contains(out, s.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %q", s.args, code, out, errOut, s.want)
		}
	}
}

func TestTailFollowsNewRecords(t *testing.T) {
	url, s := online(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{url, "tail", "--stream", "demo"}, &out, &errOut, []string{"HOME=" + t.TempDir()})
	}()
	time.Sleep(300 * time.Millisecond)
	p := ingest.AppendEnvelope(nil, ingest.Envelope{Subject: "aof.ingest.demo", Body: []byte("late arrival")})
	if err := s.AppendDurable(ctx, "demo", []tiers.Record{{Payload: p, ExtID: 100}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), `offset 45 | ext 100`) {
		if time.Now().After(deadline) {
			t.Fatalf("tail printed %q, stderr %q", out.String(), errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Contains(out.String(), "offset 44 ") {
		t.Errorf("tail started before the end of the stream: %q", out.String())
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("tail ended with exit %d after cancel: %s", code, errOut.String())
	}
}

func TestExitCodes(t *testing.T) {
	root := stoppedRoot(t)
	url, _ := online(t)

	auth := startAuthNATS(t)
	cases := []struct {
		name string
		args []string
		want int
	}{
		{"success", []string{"dump", "--root", root}, 0},
		{"unknown flag", []string{"dump", "--bogus"}, 1},
		{"unknown command", []string{"frobnicate"}, 1},
		{"seal without stream", []string{url, "seal"}, 1},
		{"read with bad count", []string{"read", "--stream", "demo", "--count", "0"}, 1},
		{"delete from tier 3", []string{url, "segments", "delete", "--segment", "1", "--tier", "3"}, 1},
		{"missing stream offline", []string{"dump", "--root", root, "--stream", "nosuch"}, 2},
		{"missing stream online", []string{url, "seal", "--stream", "nosuch"}, 2},
		{"missing segment", []string{url, "hydrate", "--stream", "demo", "--segment", "77"}, 2},
		{"missing root", []string{"segments", "list", "--root", filepath.Join(root, "nope")}, 2},
		{"nats auth", []string{"--nats-url", auth, "--user", "admin", "--password", "wrong", "status"}, 3},
		{"no server", []string{"--nats-url", "nats://127.0.0.1:1", "status"}, 4},
	}
	for _, c := range cases {
		code, out, errOut := cli(t, c.args...)
		if code != c.want {
			t.Errorf("%s %v: exit %d, want %d\nstdout %s\nstderr %s", c.name, c.args, code, c.want, out, errOut)
		}
	}
}

func startAuthNATS(t *testing.T) string {
	t.Helper()
	port := harness.FreePort(t)
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, Username: "admin", Password: "right", NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("auth nats not ready")
	}
	t.Cleanup(s.Shutdown)
	return fmt.Sprintf("nats://127.0.0.1:%d", port)
}

func TestManifestCheckFindsDamageAndRepairsTornTail(t *testing.T) {
	root := stoppedRoot(t)
	code, out, _ := cli(t, "manifest", "check", "--root", root)
	if code != 0 || !strings.Contains(out, "OK: no problems found") {
		t.Fatalf("healthy root: exit %d\n%s", code, out)
	}

	// A torn manifest tail: found (exit 4), then trimmed by --repair.
	chunk := manifest.ChunkPath(filepath.Join(root, "manifest", "demo"), 0)
	f, err := os.OpenFile(chunk, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("torn"))
	f.Close()
	code, out, _ = cli(t, "manifest", "check", "--root", root)
	if code != 4 || !strings.Contains(out, "PROBLEM stream demo | chunk 0 | torn-tail") {
		t.Fatalf("torn tail: exit %d\n%s", code, out)
	}
	code, out, _ = cli(t, "manifest", "check", "--root", root, "--repair")
	if code != 0 || !strings.Contains(out, "repaired: torn tail trimmed") || !strings.Contains(out, "all repaired") {
		t.Fatalf("repair: exit %d\n%s", code, out)
	}

	// A flipped byte in a sealed segment and in the manifest chunk: named
	// with stream, segment or chunk and reason; not repairable without Tier 2.
	flip(t, filepath.Join(root, "tier0", "demo", segment.FileName(2)), segment.HeaderSize+30)
	flip(t, chunk, manifest.ChunkHeaderSize+60)
	code, out, _ = cli(t, "manifest", "check", "--root", root, "--repair")
	if code != 4 {
		t.Errorf("damage: exit %d, want 4", code)
	}
	for _, want := range []string{"PROBLEM stream demo | segment 2 | tier0-corrupt", "PROBLEM stream demo | chunk 0 | integrity", "not repaired", "FAILED"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestHelpListsEveryFlag walks every command: its --help names each of its
// flags and shows an example.
func TestHelpListsEveryFlag(t *testing.T) {
	a := &app{}
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		code, out, errOut := cli(t, append(append([]string{}, path...), "--help")...)
		if code != 0 {
			t.Errorf("%v --help: exit %d %s", path, code, errOut)
		}
		if c.Example == "" || !strings.Contains(out, "Examples:") {
			t.Errorf("%v --help has no examples", path)
		}
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Deprecated == "" && f.Name != "help" && !strings.Contains(out, "--"+f.Name) {
				t.Errorf("%v --help does not mention --%s", path, f.Name)
			}
		})
		for _, sub := range c.Commands() {
			if sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			walk(sub, append(append([]string{}, path...), sub.Name()))
		}
	}
	walk(a.rootCommand(), nil)
}

// TestBinaryExitCode builds the real binary once and checks a usage error.
func TestBinaryExitCode(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "aof2-admin")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "read")
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "read needs --stream") {
		t.Fatalf("aof2-admin read: %v\n%s", err, out)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
