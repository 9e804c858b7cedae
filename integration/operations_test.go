package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// admin runs aof2-admin against e's gateway and returns its output.
func (e *env) admin(args ...string) (string, error) {
	e.t.Helper()
	cmd := exec.Command(binary(e.t, "aof2-admin"), append([]string{"--nats-url", e.nats.URL}, args...)...)
	cmd.Env = e.environ("")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (e *env) mustAdmin(args ...string) string {
	e.t.Helper()
	out, err := e.admin(args...)
	if err != nil {
		e.t.Fatalf("aof2-admin %v: %v\n%s", args, err, out)
	}
	return out
}

// waitAllUploaded waits until every sealed segment of the running gateway
// is confirmed in Tier 2.
// loseDisksAndRecover deletes the gateway's Tier 0, Tier 1 and manifest
// (the gateway must be stopped), rebuilds them with recover --from-tier2
// and returns its output.
func (e *env) loseDisksAndRecover() string {
	e.t.Helper()
	data := filepath.Join(e.root, "data")
	for _, d := range []string{"tier0", "tier1", "manifest"} {
		if err := os.RemoveAll(filepath.Join(data, d)); err != nil {
			e.t.Fatal(err)
		}
	}
	return e.mustAdmin("recover", "--from-tier2", "--root", data)
}

func (e *env) waitAllUploaded() {
	e.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out := e.mustAdmin("segments", "list")
		pending := 0
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) > 3 && f[2] == "sealed" && !strings.Contains(f[3], "2") {
				pending++
			}
		}
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("segments not uploaded after 2 minutes:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestRollingUpgradeUnderContinuousPublishingLosesNothing(t *testing.T) {
	e := newEnv(t, "AOF2_MANIFEST_SNAPSHOT_INTERVAL=200ms", "AOF2_SEGMENT_TARGET_BYTES=64KiB")
	g := e.startGateway()
	js := e.nats.JetStream(t)
	streams := streamNames(3)
	p := newPublished()
	done := make(chan int)
	go func() {
		// About 8 s of steady publishing, across both restarts.
		done <- p.publish(t, js, streams, 40_000, func(i int) []byte {
			if i%1000 == 0 {
				time.Sleep(200 * time.Millisecond)
			}
			return []byte(fmt.Sprintf("upgrade %d", i))
		})
	}()
	for round := 0; round < 2; round++ {
		time.Sleep(1500 * time.Millisecond)
		out := e.mustAdmin("seal", "--all")
		if !strings.Contains(out, "sealed") {
			t.Fatalf("seal --all said: %s", out)
		}
		g.stop()
		g = e.startGateway()
	}
	if failed := <-done; failed != 0 {
		t.Fatalf("%d publishes failed while the gateway restarted (JetStream buffers them)", failed)
	}
	e.waitDrained(js, 2*time.Minute)
	g.stop()

	// The restarts replayed the manifest from a snapshot, not from the
	// first chunk.
	replays := regexp.MustCompile(`manifest_replay_done .*stream=stream-\d+ .* snapshot=(\d+)`).FindAllStringSubmatch(e.fullGatewayLog(), -1)
	fromSnapshot := 0
	for _, m := range replays {
		if m[1] != "0" {
			fromSnapshot++
		}
	}
	if fromSnapshot == 0 {
		t.Fatalf("no restart replayed from a snapshot: %v", replays)
	}
	p.verify(t, e, streams)
}

func TestDisasterRecoveryFromTier2RestoresEveryUploadedRecord(t *testing.T) {
	e := newEnv(t, "AOF2_MANIFEST_ROTATION_PERIOD=300ms", "AOF2_MANIFEST_SNAPSHOT_INTERVAL=300ms", "AOF2_SEGMENT_TARGET_BYTES=64KiB")
	g := e.startGateway()
	js := e.nats.JetStream(t)
	streams := streamNames(3)
	p := newPublished()
	if failed := p.publish(t, js, streams, 15_000, func(i int) []byte { return []byte(fmt.Sprintf("before %d", i)) }); failed != 0 {
		t.Fatalf("%d publishes failed", failed)
	}
	e.waitDrained(js, time.Minute)
	e.mustAdmin("seal", "--all")
	e.waitAllUploaded()
	time.Sleep(time.Second) // a manifest rotation uploads the chunks
	// More records that reach only Tier 0 before the disk is lost: the
	// ingest stream still holds them.
	if failed := p.publish(t, js, streams, 300, func(i int) []byte { return []byte(fmt.Sprintf("after %d", i)) }); failed != 0 {
		t.Fatalf("%d publishes failed", failed)
	}
	e.waitDrained(js, time.Minute)
	g.kill()

	data := filepath.Join(e.root, "data")
	out := e.loseDisksAndRecover()
	if !strings.Contains(out, "3 stream(s) recovered") {
		t.Fatalf("recover said:\n%s", out)
	}
	g = e.startGateway()
	e.waitReplayStarted()
	e.waitDrained(js, 2*time.Minute)
	g.stop()
	if _, err := os.Stat(filepath.Join(data, "RECOVERED_FROM_TIER2")); !os.IsNotExist(err) {
		t.Fatalf("recovery marker still present after the replay: %v", err)
	}
	p.verify(t, e, streams)
}

// TestDisasterRecoveryStoresAgainASegmentDeletedFromTheBucket: one
// segment object below newer ones is deleted from the bucket (by hand, by
// a lifecycle rule) before the data root is lost. The recovery reports
// the sequences it held, and the replay from the ingest stream stores
// them again, so every acknowledged publish is stored exactly once.
func TestDisasterRecoveryStoresAgainASegmentDeletedFromTheBucket(t *testing.T) {
	// The middle object lies below surviving ones; the newest lies above
	// them all, and the manifest still shows it uploaded.
	for _, which := range []string{"middle", "newest"} {
		t.Run(which, func(t *testing.T) { disasterWithDeletedObject(t, which) })
	}
}

func disasterWithDeletedObject(t *testing.T, which string) {
	// Once archived, a message leaves AOF_INGEST, and Tier 2 holds the
	// only copy; ingest.keep keeps archived messages in the ingest
	// stream, which is what lets a replay store again an object deleted
	// from the bucket.
	e := newEnv(t, "AOF2_MANIFEST_ROTATION_PERIOD=300ms", "AOF2_MANIFEST_SNAPSHOT_INTERVAL=300ms", "AOF2_SEGMENT_TARGET_BYTES=64KiB",
		"AOF2_INGEST_KEEP=100000")
	g := e.startGateway()
	js := e.nats.JetStream(t)
	streams := []string{"holes"}
	p := newPublished()
	if failed := p.publish(t, js, streams, 3000, func(i int) []byte { return []byte(fmt.Sprintf("%05d %s", i, strings.Repeat("x", 100))) }); failed != 0 {
		t.Fatalf("%d publishes failed", failed)
	}
	e.waitDrained(js, time.Minute)
	e.mustAdmin("seal", "--all")
	e.waitAllUploaded()
	time.Sleep(time.Second) // a manifest rotation uploads the chunks
	g.kill()

	// The bucket is a directory of versitygw's posix backend: delete the
	// middle segment object of the stream.
	objs, err := filepath.Glob(filepath.Join(e.s3.Dir, e.s3.Bucket, "segments", "holes", "*", "*.zst"))
	if err != nil || len(objs) < 3 {
		t.Fatalf("segment objects: %v %v", objs, err)
	}
	idOf := func(path string) uint64 {
		id, _ := strconv.ParseUint(strings.TrimSuffix(filepath.Base(path), ".zst"), 10, 64)
		return id
	}
	sort.Slice(objs, func(i, j int) bool { return idOf(objs[i]) < idOf(objs[j]) })
	deleted := objs[len(objs)/2]
	if which == "newest" {
		deleted = objs[len(objs)-1]
	}
	if err := os.Remove(deleted); err != nil {
		t.Fatal(err)
	}
	deletedID, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(deleted), ".zst"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}

	out := e.loseDisksAndRecover()
	if !strings.Contains(out, "stored again on replay") {
		t.Fatalf("recover did not report the lost sequences:\n%s", out)
	}
	g = e.startGateway()
	e.waitReplayStarted()
	e.waitDrained(js, 2*time.Minute)
	g.stop()

	verifyOnce(t, e, p, "holes", deletedID, "after the recovery")

	// Once the refilled records are in Tier 2, the lost segment is
	// retired in the manifest: a second disaster and recovery find
	// nothing lost and store nothing twice.
	g = e.startGateway()
	e.mustAdmin("seal", "--all")
	e.waitAllUploaded()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(e.fullGatewayLog(), "lost_segment_retired") {
		if time.Now().After(deadline) {
			t.Fatalf("the lost segment was not retired after its refill reached Tier 2")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // a manifest rotation uploads the chunks
	g.kill()
	if out := e.loseDisksAndRecover(); strings.Contains(out, "stored again on replay") {
		t.Fatalf("the second recovery found the refilled loss again:\n%s", out)
	}
	g = e.startGateway()
	e.waitReplayStarted()
	e.waitDrained(js, 2*time.Minute)
	g.stop()
	verifyOnce(t, e, p, "holes", deletedID, "after the second recovery")
}

// verifyOnce checks that every acknowledged sequence of p is stored once
// in stream, over the segments that can be read; skip is a lost segment.
func verifyOnce(t *testing.T, e *env, p *published, stream string, skip uint64, when string) {
	t.Helper()
	s := e.openStore()
	defer s.Close() // the gateway may use the data root again next
	got := map[uint64]int{}
	for _, seg := range s.Segments(stream) {
		if seg.Segment == skip {
			continue
		}
		for _, m := range readSegment(t, s, stream, seg.BaseOffset, seg.NextOffset) {
			got[m.Seq]++
			if want := p.bodies[m.Seq]; !bytes.Equal(m.Body, want) {
				t.Fatalf("%s: sequence %d: body %q, want %q", when, m.Seq, m.Body, want)
			}
		}
	}
	for seq := range p.bodies {
		if got[seq] != 1 {
			t.Fatalf("%s: sequence %d stored %d times", when, seq, got[seq])
		}
	}
	if len(got) != len(p.bodies) {
		t.Fatalf("%s: stored %d sequences, %d were acknowledged", when, len(got), len(p.bodies))
	}
}

func TestSIGHUPRaisesTier0BudgetAndRefusesNonReloadableKeys(t *testing.T) {
	e := newEnv(t)
	cfgPath := filepath.Join(e.root, "gateway.toml")
	write := func(budget string, batch int) {
		// seal_on_pressure is off so that only the budget change can
		// release the blocked admission.
		body := fmt.Sprintf("[tier0]\ncluster_max_bytes = %q\nseal_on_pressure = false\n[segment]\ntarget_bytes = \"256KiB\"\nmax_age = \"10m\"\n[ingest]\nbatch_size = %d\n", budget, batch)
		if err := os.WriteFile(cfgPath, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("256KiB", 256)
	e.extra = append(e.extra, "AOF2_CONFIG="+cfgPath)
	// The environment of newEnv sets the budget and segment size too;
	// the file must decide them here, so drop those variables.
	g := e.startGatewayWith(func(env []string) []string {
		var out []string
		for _, kv := range env {
			if strings.HasPrefix(kv, "AOF2_TIER0_CLUSTER_MAX_BYTES=") || strings.HasPrefix(kv, "AOF2_SEGMENT_TARGET_BYTES=") {
				continue
			}
			out = append(out, kv)
		}
		return out
	})
	js := e.nats.JetStream(t)
	p := newPublished()
	if failed := p.publish(t, js, []string{"hup"}, 3000, func(i int) []byte {
		return []byte(fmt.Sprintf("%05d %s", i, strings.Repeat("h", 400)))
	}); failed != 0 {
		t.Fatalf("%d publishes failed", failed)
	}
	// One 256 KiB segment fills the budget and cannot be sealed by size:
	// admission stays blocked.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := g.status()
		if err == nil && st.Ingest.AdmissionBlocked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("admission never blocked: %+v %v", st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	if st, _ := g.status(); !st.Ingest.AdmissionBlocked {
		t.Fatalf("admission unblocked without a budget change: %+v", st)
	}

	write("64MiB", 512)
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	e.waitDrained(js, time.Minute)
	log := e.fullGatewayLog()
	if !regexp.MustCompile(`msg=config_reloaded .*key=tier0.cluster_max_bytes`).MatchString(log) {
		t.Fatalf("no reload of tier0.cluster_max_bytes logged:\n%s", log)
	}
	if !regexp.MustCompile(`msg=config_reload_rejected .*key=ingest.batch_size`).MatchString(log) {
		t.Fatalf("the change of ingest.batch_size was not refused by name:\n%s", log)
	}
	m := regexp.MustCompile(`backpressure_total\{[^}]*kind="admission"[^}]*\} (\d+)`).FindStringSubmatch(g.metricsText())
	if m == nil || m[1] == "0" {
		t.Fatalf("admission backpressure not counted: %v", m)
	}
	g.stop()
	p.verify(t, e, []string{"hup"})
}
