package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestPprofListenerServesACPUProfile(t *testing.T) {
	addr, err := startPprof("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr.String() + "/debug/pprof/profile?seconds=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	// A CPU profile is gzipped protobuf.
	if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(body, []byte{0x1f, 0x8b}) {
		t.Fatalf("status %d, %d bytes starting %q: not a CPU profile", resp.StatusCode, len(body), body[:min(len(body), 16)])
	}
}

// The listener starts only when AOF_GATEWAY_PPROF is set: the test
// binary runs every init of package main, so a child run of it shows
// whether init started one.
func TestPprofListenerIsOffByDefault(t *testing.T) {
	if os.Getenv("AOF_PPROF_CHILD") == "1" {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	run := func(env ...string) string {
		cmd := exec.Command(exe, "-test.run", "^TestPprofListenerIsOffByDefault$", "-test.v")
		cmd.Env = append(append(withoutEnv(os.Environ(), pprofEnv), "AOF_PPROF_CHILD=1"), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := run(); strings.Contains(out, "pprof_listening") {
		t.Fatalf("without %s a listener started:\n%s", pprofEnv, out)
	}
	if out := run(pprofEnv + "=127.0.0.1:0"); !strings.Contains(out, "pprof_listening") {
		t.Fatalf("with %s set no listener started:\n%s", pprofEnv, out)
	}
}

func withoutEnv(env []string, key string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}
