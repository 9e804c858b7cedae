package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/tiers"
)

var (
	adminBinOnce sync.Once
	adminBin     string
	adminBinErr  error
)

// adminBinary builds the real aof2-admin once per test run.
func adminBinary(t *testing.T) string {
	t.Helper()
	adminBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "aof2-admin-bin")
		if err != nil {
			adminBinErr = err
			return
		}
		adminBin = filepath.Join(dir, "aof2-admin")
		if out, err := exec.Command("go", "build", "-o", adminBin, ".").CombinedOutput(); err != nil {
			adminBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if adminBinErr != nil {
		t.Fatal(adminBinErr)
	}
	return adminBin
}

// TestOfflineReadCommandsWhileGatewayHoldsRoot: while a store has the data
// root open (as a running gateway does), every offline command refuses at
// once with exit code 1, naming the holder's pid and the online command:
// dump, segments list, manifest inspect and read open the store, whose
// recovery writes, so they need the writer's lock; manifest check takes a
// shared lock, which a writer excludes too. Both in process and from the
// real binary, another process.
func TestOfflineReadCommandsWhileGatewayHoldsRoot(t *testing.T) {
	root, s := buildRoot(t)
	defer s.Close()
	commands := [][]string{
		{"dump", "--root", root},
		{"segments", "list", "--root", root},
		{"manifest", "inspect", "--root", root},
		{"manifest", "check", "--root", root},
		{"manifest", "check", "--root", root, "--repair"},
		{"read", "--root", root, "--stream", "demo"},
	}
	want := fmt.Sprintf("aof2-admin: data root %s is locked by pid %d (another aof-gateway or aof2-admin --root holds it); "+
		"offline commands (--root) need the gateway stopped: while it runs, leave out --root and the command asks the gateway\n", root, os.Getpid())
	bin := adminBinary(t)
	for _, args := range commands {
		code, out, errOut := cli(t, args...)
		if code != 1 || errOut != want || out != "" {
			t.Errorf("%v in process: exit %d, stdout %q, stderr %q; want exit 1 and %q", args, code, out, errOut, want)
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 1 || stderr.String() != want {
			t.Errorf("%v binary: %v, stderr %q; want exit 1 and %q", args, err, stderr.String(), want)
		}
	}
	// The refused commands changed nothing: the store goes on, and once
	// it is closed the same commands work.
	appendOne(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, args := range commands {
		if code, _, errOut := cli(t, args...); code != 0 {
			t.Errorf("%v after the holder closed: exit %d %s", args, code, errOut)
		}
	}
}

// TestRecoverRefusesARootAGatewayHolds: recover --from-tier2 --force would
// rewrite the root under a running gateway; it refuses, naming the pid.
func TestRecoverRefusesARootAGatewayHolds(t *testing.T) {
	root, s := buildRoot(t)
	defer s.Close()
	s3 := harness.StartS3(t)
	env := []string{"HOME=" + t.TempDir(), "AOF2_TIER2_ENDPOINT=" + s3.Endpoint, "AOF2_TIER2_BUCKET=" + s3.Bucket,
		"AOF2_TIER2_ACCESS_KEY=" + s3.AccessKey, "AOF2_TIER2_SECRET_KEY=" + s3.SecretKey}
	var out, errOut bytes.Buffer
	code := run(testCtx(t), []string{"recover", "--from-tier2", "--force", "--root", root}, &out, &errOut, env)
	want := fmt.Sprintf("data root %s is locked by pid %d (another aof-gateway or aof2-admin --root holds it); stop it before recovering", root, os.Getpid())
	if code != 1 || !strings.Contains(errOut.String(), want) {
		t.Fatalf("recover into a held root: exit %d, stdout %q, stderr %q; want %q", code, out.String(), errOut.String(), want)
	}
}

// appendOne appends a record to demo: the holder still writes.
func appendOne(t *testing.T, s *tiers.Store) {
	t.Helper()
	p := ingest.AppendEnvelope(nil, ingest.Envelope{Subject: "aof.ingest.demo", Body: []byte("after the refusals")})
	if err := s.AppendDurable(testCtx(t), "demo", []tiers.Record{{Payload: p, ExtID: 1000}}); err != nil {
		t.Fatal(err)
	}
}
