package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/bop-aof/aof/fsck"
	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/tier2"
	"github.com/bop-aof/aof/tracing"
)

func startService(t *testing.T, s *tiers.Store, opts Options) (*Client, *nats.Conn) {
	t.Helper()
	n := harness.StartNATS(t)
	nc := n.Connect(t)
	svc, err := New(nc, s, opts)
	if err != nil {
		t.Fatalf("new service: %v", err)
	}
	t.Cleanup(func() { svc.Stop() })
	return NewClient(nc, opts.SubjectPrefix), nc
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) || ce.Code != code {
		t.Fatalf("error %v, want code %s", err, code)
	}
}

func TestServiceIsDiscoverableWithMicroTooling(t *testing.T) {
	_, s := buildDemoRoot(t, nil)
	defer s.Close()
	_, nc := startService(t, s, Options{})

	subj, err := micro.ControlSubject(micro.PingVerb, DefaultName, "")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := nc.Request(subj, nil, 5*time.Second)
	if err != nil {
		t.Fatalf("ping %s: %v", subj, err)
	}
	var ping micro.Ping
	if err := json.Unmarshal(msg.Data, &ping); err != nil || ping.Name != "aof-admin" {
		t.Fatalf("ping answer %s (%v), want name aof-admin", msg.Data, err)
	}

	subj, _ = micro.ControlSubject(micro.InfoVerb, DefaultName, "")
	msg, err = nc.Request(subj, nil, 5*time.Second)
	if err != nil {
		t.Fatalf("info: %v", err)
	}
	var info micro.Info
	if err := json.Unmarshal(msg.Data, &info); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, e := range info.Endpoints {
		got[e.Subject] = true
	}
	for _, name := range Endpoints {
		if !got["aof.admin."+name] {
			t.Errorf("info lists no endpoint on aof.admin.%s; has %v", name, got)
		}
	}
}

func TestEndpointsAnswerFromTheStore(t *testing.T) {
	_, s := buildDemoRoot(t, nil)
	defer s.Close()
	in, err := tracing.NewInstruments(nil)
	if err != nil {
		t.Fatal(err)
	}
	in.ObserveHydration(context.Background(), 120*time.Millisecond)
	reloaded := 0
	c, _ := startService(t, s, Options{
		SubjectPrefix: "ops.admin", Instruments: in,
		Status: func() any { return map[string]int{"consumers": 1} },
		Reload: func(context.Context) (any, error) {
			reloaded++
			return map[string]string{"applied": "tier0.cluster_max_bytes"}, nil
		},
	})
	ctx := testCtx(t)

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if len(st.Streams) != 1 || st.Streams[0] != "demo" || string(st.Gateway) != `{"consumers":1}` {
		t.Errorf("status: streams %v gateway %s", st.Streams, st.Gateway)
	}

	d, err := c.Dump(ctx, DumpRequest{})
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	if d.Summary.Tier0.Segments != 3 || d.Summary.Tier1.Segments != 2 || d.Summary.Tier2.Segments != 0 {
		t.Errorf("dump summary %+v, want 3 segments in tier 0, 2 in tier 1", d.Summary)
	}
	if d.Summary.Hydration.P50 < 100 || d.Summary.Hydration.P50 > 140 {
		t.Errorf("hydration p50 %v ms, want about 120", d.Summary.Hydration.P50)
	}

	two := 1
	list, err := c.SegmentsList(ctx, SegmentsListRequest{Stream: "demo", Tier: &two})
	if err != nil || len(list.Segments) != 2 {
		t.Fatalf("segments in tier 1: %+v, %v", list.Segments, err)
	}

	r, err := c.Read(ctx, ReadRequest{Stream: "demo", From: 18, Count: 4})
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if len(r.Messages) != 4 || r.Next != 22 {
		t.Fatalf("read 4 from 18: %d messages, next %d", len(r.Messages), r.Next)
	}
	m := r.Messages[0]
	if m.Offset != 18 || m.ExtID != 19 || m.Subject != "aof.ingest.demo" || m.Header["Seq"][0] != "18" || string(m.Body) != "demo message 0018" {
		t.Errorf("record 18 read as %+v", m)
	}
	r, err = c.Read(ctx, ReadRequest{Stream: "demo", From: 43, Count: 10})
	if err != nil || len(r.Messages) != 2 || !r.AtTail || r.Next != 45 {
		t.Errorf("read at the tail: %d messages, at tail %v, next %d, %v", len(r.Messages), r.AtTail, r.Next, err)
	}
	r, err = c.Read(ctx, ReadRequest{Stream: "demo", From: 0, Count: 100, MaxBytes: 50})
	if err != nil || len(r.Messages) != 2 || r.Next != 2 {
		t.Errorf("read bounded to 50 body bytes: %d messages (bodies are 17 bytes), %v", len(r.Messages), err)
	}

	f, err := c.Flush(ctx, FlushRequest{Stream: "demo"})
	if err != nil || f.NextOffset != 45 {
		t.Errorf("flush: %+v, %v", f, err)
	}
	sealed, err := c.Seal(ctx, SealRequest{Stream: "demo"})
	if err != nil || len(sealed.Sealed) != 1 || sealed.Sealed[0].Segment != 3 {
		t.Errorf("seal: %+v, %v", sealed, err)
	}

	insp, err := c.ManifestInspect(ctx, ManifestInspectRequest{Stream: "demo", Recent: 3})
	if err != nil || len(insp.Streams) != 1 || len(insp.Streams[0].Recent) != 3 || len(insp.Streams[0].Segments) != 4 {
		t.Fatalf("inspect: %+v, %v", insp, err)
	}
	insp, err = c.ManifestInspect(ctx, ManifestInspectRequest{Stream: "demo", Recent: 1000})
	if err != nil {
		t.Fatal(err)
	}
	recent := insp.Streams[0].Recent
	if uint64(len(recent)) != insp.Streams[0].Records {
		t.Errorf("--recent beyond the manifest: %d records, manifest has %d", len(recent), insp.Streams[0].Records)
	}
	opened := false
	for i, r := range recent {
		if i > 0 && r.Chunk == recent[i-1].Chunk && r.Offset <= recent[i-1].Offset {
			t.Errorf("recent records out of order at %d: %+v after %+v", i, r, recent[i-1])
		}
		opened = opened || r.Type == manifest.SegmentOpened.String() && r.Segment == 4
	}
	if !opened {
		t.Errorf("recent records have no SegmentOpened of segment 4 after the seal: %+v", recent)
	}

	snap, err := c.SnapshotCreate(ctx, SnapshotRequest{Stream: "demo"})
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	snaps, err := c.SnapshotList(ctx, StreamRequest{})
	if err != nil || len(snaps.Snapshots) != 1 || snaps.Snapshots[0].SnapshotID != snap.SnapshotID || !snaps.Snapshots[0].Valid {
		t.Errorf("snapshot list %+v, %v; want snapshot %d", snaps, err, snap.SnapshotID)
	}

	rr, err := c.ConfigReload(ctx)
	if err != nil || reloaded != 1 || !strings.Contains(string(rr.Result), "tier0.cluster_max_bytes") {
		t.Errorf("reload: %s, %v, hook called %d times", rr.Result, err, reloaded)
	}

	rep, err := c.ManifestCheck(ctx, ManifestCheckRequest{})
	if err != nil || len(rep.Problems) != 0 || rep.Streams[0].SegmentsChecked != 4 {
		t.Errorf("check of a healthy store: %+v, %v", rep, err)
	}
}

func TestEndpointErrorsCarryCodes(t *testing.T) {
	_, s := buildDemoRoot(t, nil)
	defer s.Close()
	c, nc := startService(t, s, Options{})
	ctx := testCtx(t)

	_, err := c.Seal(ctx, SealRequest{Stream: "nosuch"})
	wantCode(t, err, CodeNotFound)
	if ExitCode(err) != ExitNotFound {
		t.Errorf("exit code of a missing stream %d, want 2", ExitCode(err))
	}
	_, err = c.Hydrate(ctx, HydrateRequest{Stream: "demo", Segment: 99})
	wantCode(t, err, CodeNotFound)
	_, err = c.Read(ctx, ReadRequest{})
	wantCode(t, err, CodeBadRequest)
	_, err = c.Read(ctx, ReadRequest{Stream: "bad stream!"})
	wantCode(t, err, CodeBadRequest)
	_, err = c.SegmentsDelete(ctx, SegmentsDeleteRequest{Stream: "demo", Segment: 1, Tier: 1})
	wantCode(t, err, CodeConflict) // not in Tier 2: the local copies are the only ones
	_, err = c.ConfigReload(ctx)
	wantCode(t, err, CodeNotImplemented)

	msg, err := nc.Request("aof.admin.dump", []byte("{not json"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get(micro.ErrorCodeHeader) != CodeBadRequest {
		t.Errorf("malformed request answered with headers %v", msg.Header)
	}
	var body Error
	if err := json.Unmarshal(msg.Data, &body); err != nil || body.Code != CodeBadRequest || body.Message == "" {
		t.Errorf("error body %s", msg.Data)
	}

	// No service on the prefix: unavailable, exit code 4.
	_, err = NewClient(nc, "nobody.here").Status(ctx)
	wantCode(t, err, CodeUnavailable)
	if ExitCode(err) != ExitIO {
		t.Errorf("exit code without a service %d, want 4", ExitCode(err))
	}
}

func TestExitCodeClassification(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{Errorf(CodeBadRequest, "x"), ExitUsage},
		{tiers.ErrSegmentNotFound, ExitNotFound},
		{tiers.ErrOffsetNotFound, ExitNotFound},
		{nats.ErrAuthorization, ExitAuth},
		{&tiers.HydrationError{Reason: manifest.ReasonAuth, Err: errors.New("denied")}, ExitAuth},
		{errors.New("disk on fire"), ExitIO},
		{fsck.ErrNoRoot, ExitUsage},
		{fmt.Errorf("%w: /var/lib/aof", fsck.ErrRootMissing), ExitNotFound},
		{fmt.Errorf("%w: access denied", fsck.ErrTier2Auth), ExitAuth},
	}
	for _, c := range cases {
		if got := ExitCode(c.err); got != c.want {
			t.Errorf("ExitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func kinds(rep CheckReport) map[string]Problem {
	out := map[string]Problem{}
	for _, p := range rep.Problems {
		out[p.Kind] = p
	}
	return out
}

// TestTier2CheckAndRepair runs against a real S3 server: a Tier 1 artifact
// damaged on disk is restored from Tier 2, a deleted Tier 2 object is
// reported, and segments.delete + hydrate move a segment out and back.
func TestTier2CheckAndRepair(t *testing.T) {
	s3 := harness.StartS3(t)
	ctx := testCtx(t)
	t2, err := tier2.New(ctx, tier2.Options{Endpoint: s3.Endpoint, Bucket: s3.Bucket, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	root, s := buildDemoRoot(t, t2)
	c, _ := startService(t, s, Options{})

	// Evict segment 1's local copies, then hydrate it back.
	if _, err := c.SegmentsDelete(ctx, SegmentsDeleteRequest{Stream: "demo", Segment: 2, Tier: 1}); err == nil {
		t.Fatal("deleting the newest sealed segment without force succeeded")
	}
	del, err := c.SegmentsDelete(ctx, SegmentsDeleteRequest{Stream: "demo", Segment: 1, Tier: 1})
	if err != nil || len(del.Removed) != 2 {
		t.Fatalf("delete local copies of segment 1: %+v, %v", del, err)
	}
	if st := segStatus(s, "demo", 1); st.InTier0 || st.InTier1 || !st.InTier2 {
		t.Fatalf("after delete: %+v", st)
	}
	h, err := c.Hydrate(ctx, HydrateRequest{Segment: 1})
	if err != nil || h.Stream != "demo" || h.AlreadyLocal {
		t.Fatalf("hydrate: %+v, %v", h, err)
	}
	r, err := c.Read(ctx, ReadRequest{Stream: "demo", From: 5, Count: 1})
	if err != nil || string(r.Messages[0].Body) != "demo message 0005" {
		t.Fatalf("read hydrated record: %+v, %v", r, err)
	}

	// Damage segment 2's Tier 1 artifact: online check finds it, repair
	// restores it from Tier 2.
	art := filepath.Join(root, "tier1", "demo", "00000000000000000002.zst")
	fi, err := os.Stat(art)
	if err != nil {
		t.Fatal(err)
	}
	flipByte(t, art, fi.Size()/3)
	rep, err := c.ManifestCheck(ctx, ManifestCheckRequest{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	p, ok := kinds(rep)[fsck.KindTier1Corrupt]
	if !ok || p.Segment != 2 || !p.Repaired {
		t.Fatalf("damaged artifact: %v", rep.Problems)
	}
	if rep.Streams[0].Tier2Checked != 2 {
		t.Errorf("tier 2 objects checked: %d, want 2", rep.Streams[0].Tier2Checked)
	}
	rep, err = c.ManifestCheck(ctx, ManifestCheckRequest{})
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("after repair: %v, %v", rep.Problems, err)
	}

	// A Tier 2 object that disappeared is reported and re-uploaded from
	// the local copy.
	if err := t2.Delete(ctx, tier2.SegmentKey("demo", 1)); err != nil {
		t.Fatal(err)
	}
	rep, err = c.ManifestCheck(ctx, ManifestCheckRequest{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := kinds(rep)[fsck.KindTier2Missing]; !ok || p.Segment != 1 || !p.Repaired {
		t.Fatalf("missing tier 2 object: %v", rep.Problems)
	}
	if _, err := t2.Stat(ctx, tier2.SegmentKey("demo", 1)); err != nil {
		t.Fatalf("object after repair: %v", err)
	}
	rep, err = c.ManifestCheck(ctx, ManifestCheckRequest{})
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("after re-upload: %v, %v", rep.Problems, err)
	}
}
