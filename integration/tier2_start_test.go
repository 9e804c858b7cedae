package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/bop-aof/aof/control"
)

// tier2Readyz is the tier2 part of /readyz.
type tier2Readyz struct {
	Ready bool `json:"ready"`
	Tier2 *struct {
		State         string `json:"state"`
		BucketChecked bool   `json:"bucket_checked"`
		Breaker       string `json:"breaker"`
		LastError     string `json:"last_error"`
	} `json:"tier2"`
}

func (g *gateway) tier2Readyz() tier2Readyz {
	g.t.Helper()
	var st tier2Readyz
	resp, err := http.Get("http://" + g.metrics + "/readyz")
	if err != nil {
		g.t.Fatalf("readyz: %v", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		g.t.Fatalf("readyz: %v", err)
	}
	if st.Tier2 == nil {
		g.t.Fatal("/readyz has no tier2 field")
	}
	return st
}

// TestGatewayStartsWhileTier2IsDown: a gateway (re)started during an
// object store outage starts, reports Tier 2 degraded, ingests and acks,
// serves reads from its local tiers, and uploads everything once the
// store is back, without a restart.
func TestGatewayStartsWhileTier2IsDown(t *testing.T) {
	e := newEnv(t, "AOF2_SEGMENT_TARGET_BYTES=64KiB", "AOF2_TIER1_RETRY_BACKOFF=50ms",
		"AOF2_TIER2_BREAKER_COOLDOWN=500ms", "AOF2_TIER2_RETRY_MAX_ATTEMPTS=2")
	e.s3.Stop()
	g := e.startGateway() // fails if the gateway exits during start

	st := g.tier2Readyz()
	if !st.Ready || st.Tier2.State != "degraded" || st.Tier2.BucketChecked || st.Tier2.LastError == "" {
		t.Fatalf("/readyz with Tier 2 down: %+v %+v; want ready, tier2 degraded with the error", st, *st.Tier2)
	}
	var status struct {
		Gateway struct {
			Tier2 struct {
				State string `json:"state"`
			} `json:"tier2"`
		} `json:"gateway"`
	}
	if err := json.Unmarshal([]byte(e.mustAdmin("status", "--json")), &status); err != nil || status.Gateway.Tier2.State != "degraded" {
		t.Fatalf("aof2-admin status: tier2 %q (%v), want degraded", status.Gateway.Tier2.State, err)
	}

	js := e.nats.JetStream(t)
	p := newPublished()
	streams := []string{"outage"}
	const n = 400
	if failed := p.publish(t, js, streams, n, func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, 1000) }); failed != 0 {
		t.Fatalf("%d publishes failed", failed)
	}
	e.waitDrained(js, time.Minute) // stored and acked while Tier 2 is down

	var read control.ReadResponse
	if err := json.Unmarshal([]byte(e.mustAdmin("read", "--stream", "outage", "--from", "0", "--count", fmt.Sprint(n), "--json")), &read); err != nil {
		t.Fatal(err)
	}
	if len(read.Messages) != n {
		t.Fatalf("read %d records from the local tiers during the outage, want %d", len(read.Messages), n)
	}
	segs := e.mustAdmin("segments", "list", "--stream", "outage")
	if !strings.Contains(segs, "sealed") {
		t.Fatalf("no sealed segment to upload:\n%s", segs)
	}

	e.s3.Start()
	e.waitAllUploaded()
	deadline := time.Now().Add(time.Minute)
	for g.tier2Readyz().Tier2.State != "ok" {
		if time.Now().After(deadline) {
			t.Fatalf("tier2 still %+v a minute after the store came back\n%s", *g.tier2Readyz().Tier2, e.gatewayLog())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if g.cmd.ProcessState != nil {
		t.Fatal("the gateway restarted")
	}
	log := e.fullGatewayLog()
	if !strings.Contains(log, "tier2_degraded_at_start") || !strings.Contains(log, "tier2_available") {
		t.Fatalf("the log does not say Tier 2 was degraded at start, then available:\n%s", e.gatewayLog())
	}
	g.stop()
	p.verify(t, e, streams)
}

// startRefused runs the gateway with edit applied to its environment and
// returns its exit code and output; the gateway must exit within 30 s.
func (e *env) startRefused(edit func([]string) []string) (int, string) {
	e.t.Helper()
	cmd := exec.Command(binary(e.t, "aof-gateway"))
	cmd.Env = edit(e.environ(""))
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		e.t.Fatalf("the gateway did not refuse to start within 30s:\n%s", out)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		e.t.Fatalf("gateway exit: %v, want a refusal\n%s", err, out)
	}
	return ee.ExitCode(), string(out)
}

func setEnv(env []string, kv ...string) []string {
	out := append([]string(nil), env...)
	for _, s := range kv {
		k, _, _ := strings.Cut(s, "=")
		for i, old := range out {
			if strings.HasPrefix(old, k+"=") {
				out = append(out[:i], out[i+1:]...)
				break
			}
		}
		out = append(out, s)
	}
	return out
}

// TestGatewayRefusesBadTier2Credentials: credentials the store refuses
// can never work: the gateway does not start degraded, it exits 3 and
// names the keys to fix, without showing them.
func TestGatewayRefusesBadTier2Credentials(t *testing.T) {
	e := newEnv(t)
	const secret = "wrong-secret-5c1d-must-not-leak"
	for name, kv := range map[string][]string{
		"wrong secret":       {"AOF2_TIER2_SECRET_KEY=" + secret},
		"unknown access key": {"AOF2_TIER2_ACCESS_KEY=nobody-9f8e7d", "AOF2_TIER2_SECRET_KEY=" + secret},
	} {
		t.Run(name, func(t *testing.T) {
			code, out := e.startRefused(func(env []string) []string { return setEnv(env, kv...) })
			if code != 3 {
				t.Fatalf("exit code %d, want 3\n%s", code, out)
			}
			if !strings.Contains(out, "tier2.access_key") || !strings.Contains(out, "tier2.secret_key") {
				t.Fatalf("the message does not name tier2.access_key and tier2.secret_key:\n%s", out)
			}
			if strings.Contains(out, secret) || strings.Contains(out, "nobody-9f8e7d") {
				t.Fatalf("a key shows in the output:\n%s", out)
			}
		})
	}
}

// TestGatewayRefusesABucketNameS3Refuses: a bucket name S3 does not accept
// can never work: exit 1, naming tier2.bucket.
func TestGatewayRefusesABucketNameS3Refuses(t *testing.T) {
	e := newEnv(t)
	code, out := e.startRefused(func(env []string) []string {
		return setEnv(env, "AOF2_TIER2_BUCKET=192.168.10.20", "AOF2_TIER2_CREATE_BUCKET=true")
	})
	if code != 1 || !strings.Contains(out, "tier2.bucket") {
		t.Fatalf("exit code %d, want 1 with a message naming tier2.bucket:\n%s", code, out)
	}
}

// TestGatewayStartsDegradedWhileTheBucketIsMissing: a bucket that does not
// exist yet (tier2.create_bucket off) can be created by the operator
// without a restart: the gateway starts degraded, names the keys, and
// turns ok once the bucket is there.
func TestGatewayStartsDegradedWhileTheBucketIsMissing(t *testing.T) {
	e := newEnv(t, "AOF2_TIER2_BUCKET=aof-not-yet")
	g := e.startGateway()
	if st := g.tier2Readyz(); st.Tier2.State != "degraded" || st.Tier2.BucketChecked {
		t.Fatalf("tier2 %+v with the bucket missing, want degraded", *st.Tier2)
	}
	if log := e.fullGatewayLog(); !strings.Contains(log, "tier2.create_bucket") {
		t.Fatalf("the log does not say how to fix a missing bucket:\n%s", e.gatewayLog())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.s3.Client(t).MakeBucket(ctx, "aof-not-yet", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(45 * time.Second)
	for st := g.tier2Readyz(); st.Tier2.State != "ok"; st = g.tier2Readyz() {
		if time.Now().After(deadline) {
			t.Fatalf("tier2 %+v 45s after the bucket was created\n%s", *st.Tier2, e.gatewayLog())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
