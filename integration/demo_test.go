package integration

import (
	"bytes"
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// demoRun is one aof2-demo process's outcome.
type demoRun struct {
	code   int
	stdout string
	stderr string
}

func runDemo(t *testing.T, natsURL string, args ...string) demoRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t, "aof2-demo"), append([]string{"--nats-url", natsURL}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := demoRun{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run aof2-demo: %v", err)
	}
	return r
}

// row returns the fields of the summary row that starts with name.
func (r demoRun) row(t *testing.T, name string) []string {
	t.Helper()
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(line, name+" ") {
			return strings.Fields(strings.TrimPrefix(line, name))
		}
	}
	t.Fatalf("summary has no %q row:\n%s", name, r.stdout)
	return nil
}

func (r demoRun) count(t *testing.T, name string) int {
	t.Helper()
	n, err := strconv.Atoi(r.row(t, name)[0])
	if err != nil {
		t.Fatalf("%s row: count %q: %v\n%s", name, r.row(t, name)[0], err, r.stdout)
	}
	return n
}

var readRow = regexp.MustCompile(`(?m)^read tier (\d)\s+segment (\d+)\s+offset (\d+)\s+.*\s(OK|FAIL) \(`)

// checkDemoSummary checks a successful run of n records: every count is n,
// every check OK, and the three tiers were each read once.
func checkDemoSummary(t *testing.T, r demoRun, n int, firstOffset int) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("aof2-demo exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, name := range []string{"published", "acked", "stored"} {
		if got := r.count(t, name); got != n {
			t.Errorf("%s = %d, want %d\n%s", name, got, n, r.stdout)
		}
	}
	if f := r.row(t, "stored"); !strings.Contains(strings.Join(f, " "), "from offset "+strconv.Itoa(firstOffset)) {
		t.Errorf("stored row %v does not start at offset %d", f, firstOffset)
	}
	sealed := r.count(t, "sealed")
	if f := r.row(t, "sealed"); len(f) < 2 || f[1] != strconv.Itoa(n) {
		t.Errorf("sealed row %v: want %d records in the sealed segments", f, n)
	}
	if sealed < 2 {
		t.Errorf("sealed %d segments; with 256 KiB segments the run must fill several", sealed)
	}
	if got := r.count(t, "compressed"); got != sealed {
		t.Errorf("compressed %d segments, sealed %d", got, sealed)
	}
	if got := r.count(t, "uploaded"); got != sealed {
		t.Errorf("uploaded %d objects, sealed %d", got, sealed)
	}
	if h := strings.Join(r.row(t, "hydrated"), " "); !strings.Contains(h, "back from tier 2") || !strings.HasSuffix(h, "OK") {
		t.Errorf("hydrated row: %q", h)
	}
	tiersRead := map[string]bool{}
	for _, m := range readRow.FindAllStringSubmatch(r.stdout, -1) {
		tiersRead[m[1]] = true
		if m[4] != "OK" {
			t.Errorf("read check of tier %s (segment %s, offset %s) failed", m[1], m[2], m[3])
		}
	}
	if !regexp.MustCompile(`(?m)^read tier 1 .*tier 1 artifact`).MatchString(r.stdout) {
		t.Errorf("the tier 1 read check was not served by a tier 1 artifact:\n%s", r.stdout)
	}
	if len(tiersRead) != 3 {
		t.Errorf("read checks of tiers %v, want 0, 1 and 2\n%s", tiersRead, r.stdout)
	}
	if !strings.Contains(r.stdout, "\nresult: OK\n") {
		t.Errorf("no `result: OK` line:\n%s", r.stdout)
	}
}

// TestDemoEndToEnd runs the real gateway and the real aof2-demo against
// NATS and versitygw, twice on the same stream (the second run must find
// its records after the first run's), and checks the summary and what
// Tier 2 holds.
func TestDemoEndToEnd(t *testing.T) {
	e := newEnv(t)
	e.startGateway()

	first := runDemo(t, e.nats.URL, "--records", "3000", "--stream", "e2e", "--timeout", "2m")
	checkDemoSummary(t, first, 3000, 0)
	if !strings.Contains(first.stderr, "publish") {
		t.Errorf("no progress lines on stderr:\n%s", first.stderr)
	}

	second := runDemo(t, e.nats.URL, "--records", "1000", "--stream", "e2e", "--record-bytes", "700", "--timeout", "2m")
	checkDemoSummary(t, second, 1000, 3000)

	// What the demo says was uploaded is in the bucket.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	objects := 0
	for obj := range e.s3.Client(t).ListObjects(ctx, e.s3.Bucket, minio.ListObjectsOptions{Prefix: "segments/e2e/", Recursive: true}) {
		if obj.Err != nil {
			t.Fatalf("list tier 2: %v", obj.Err)
		}
		objects++
	}
	if want := first.count(t, "uploaded") + second.count(t, "uploaded"); objects < want {
		t.Errorf("tier 2 holds %d segment objects of e2e, the demo runs uploaded %d", objects, want)
	}
}

// TestDemoWithoutGatewayExitsWithIOError: with NATS up but no gateway,
// the demo fails fast with exit code 4 and says what is missing.
func TestDemoWithoutGatewayExitsWithIOError(t *testing.T) {
	e := newEnv(t)
	r := runDemo(t, e.nats.URL, "--records", "10", "--timeout", "20s")
	if r.code != 4 {
		t.Fatalf("exit %d, want 4\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "is the gateway running?") {
		t.Errorf("stderr does not say the gateway is missing:\n%s", r.stderr)
	}
}
