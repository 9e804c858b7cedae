package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/control"
)

func TestSubjectTemplateRendersStreamAndSubject(t *testing.T) {
	cases := []struct {
		template, stream, subject string
		want, wantErr             string
	}{
		{"{{subject}}", "orders", "aof.ingest.orders", "aof.ingest.orders", ""},
		{"restore.{{stream}}", "orders", "aof.ingest.orders", "restore.orders", ""},
		{"copy.{{ subject }}", "orders", "aof.ingest.orders", "copy.aof.ingest.orders", ""},
		{"{{stream}}.{{stream}}.x", "a", "s", "a.a.x", ""},
		{"fixed.subject", "orders", "s", "fixed.subject", ""},
		{"restore.{{nope}}", "orders", "s", "", "unknown placeholder {{nope}}"},
		{"restore.{{stream", "orders", "s", "", "not closed"},
		{"", "orders", "s", "", "empty"},
		{"restore.*", "orders", "s", "", "wildcard"},
		{"restore.>", "orders", "s", "", "wildcard"},
		{"restore..{{stream}}", "orders", "s", "", "empty token"},
		{"restore {{stream}}", "orders", "s", "", "whitespace"},
		{"copy.{{subject}}", "orders", "", "", "empty token"},
	}
	for _, c := range cases {
		tmpl, err := parseSubjectTemplate(c.template)
		var got string
		if err == nil {
			got, err = tmpl.render(c.stream, c.subject)
		}
		switch {
		case c.wantErr == "" && (err != nil || got != c.want):
			t.Errorf("%q with stream %q, subject %q: %q, %v; want %q", c.template, c.stream, c.subject, got, err, c.want)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%q with stream %q, subject %q: %q, %v; want an error saying %q", c.template, c.stream, c.subject, got, err, c.wantErr)
		}
	}
	if tmpl, _ := parseSubjectTemplate("restore.{{stream}}"); tmpl.usesSubject() {
		t.Error("restore.{{stream}} does not use the record's subject")
	}
	if !underPrefix("aof.ingest.orders", "aof.ingest") || !underPrefix("aof.ingest", "aof.ingest") || underPrefix("aof.ingestion.x", "aof.ingest") {
		t.Error("underPrefix does not match whole tokens")
	}
}

// fakeClock advances by step at each reading.
type fakeClock struct {
	t    time.Time
	step time.Duration
}

func (c *fakeClock) now() time.Time { c.t = c.t.Add(c.step); return c.t }

func TestProgressPrintsPlainLinesOncePerSecondWithRateAndETA(t *testing.T) {
	var out bytes.Buffer
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), step: 250 * time.Millisecond}
	p := newRecordProgress(&out, false, "replay orders", clock.now)
	p.total = 1000
	for done := uint64(1); done <= 8; done++ {
		p.update(done * 50) // 200 records/s
	}
	p.finish(400)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	// 8 updates 250 ms apart: a line at 1 s and at 2 s.
	want := []string{
		"replay orders: 200/1000 records, 200 records/s, ETA 4s",
		"replay orders: 400/1000 records, 200 records/s, ETA 3s",
	}
	if fmt.Sprint(lines) != fmt.Sprint(want) {
		t.Fatalf("progress lines:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(out.String(), "\r") {
		t.Error("plain progress lines carry a carriage return")
	}
}

func TestProgressBarRedrawsInPlaceAndEndsItsLine(t *testing.T) {
	var out bytes.Buffer
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), step: 100 * time.Millisecond}
	p := newRecordProgress(&out, true, "replay orders", clock.now)
	p.total = 100
	p.update(10)
	p.update(50)
	p.finish(100)
	got := out.String()
	if strings.Count(got, "\r") != 3 || !strings.HasSuffix(got, "\n") || strings.Count(got, "\n") != 1 {
		t.Fatalf("bar output %q: want three redraws in place and one final newline", got)
	}
	if !strings.Contains(got, "[=============================="+"] replay orders: 100/100 records") ||
		!strings.Contains(got, "records/s  ETA ") {
		t.Fatalf("bar output %q: want a full bar, the count, records/s and the ETA", got)
	}
	var unknown bytes.Buffer
	p = newRecordProgress(&unknown, false, "replay orders", (&fakeClock{step: time.Second}).now)
	p.update(7)
	if got := strings.TrimSpace(unknown.String()); got != "replay orders: 7 records, 7 records/s" {
		t.Fatalf("progress without a total: %q", got)
	}
}

// TestReplayRepublishesRecordsToTheTemplateInOrder replays stream demo
// with core NATS publishes and compares what a subscriber gets with what
// was stored: subject from the template, headers, bodies, order.
func TestReplayRepublishesRecordsToTheTemplateInOrder(t *testing.T) {
	url, _ := online(t)
	nc, err := nats.Connect(strings.TrimPrefix(url, "--nats-url="))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("restore.>")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	code, out, errOut := cli(t, url, "replay", "--stream", "demo", "--from", "10", "--to", "30", "--subject", "restore.{{stream}}")
	if code != 0 || !strings.Contains(out, "replayed 20 records of demo (offsets 10 to 29) to restore.{{stream}}") {
		t.Fatalf("replay: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for i := 10; i < 30; i++ {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("record %d not republished: %v", i, err)
		}
		if m.Subject != "restore.demo" || string(m.Data) != fmt.Sprintf("demo message %04d", i) ||
			m.Header.Get("Seq") != fmt.Sprint(i) || len(m.Header) != 1 {
			t.Fatalf("record %d republished as %s %v %q", i, m.Subject, m.Header, m.Data)
		}
	}
	if m, err := sub.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("a record past --to was republished: %s %q", m.Subject, m.Data)
	}
}

// TestReplayRefusesTheIngestPrefixUnlessAllowed: the original subjects are
// under aof.ingest, where the gateway would ingest them a second time.
func TestReplayRefusesTheIngestPrefixUnlessAllowed(t *testing.T) {
	url, _ := online(t)
	nc, err := nats.Connect(strings.TrimPrefix(url, "--nats-url="))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, _ := nc.SubscribeSync("aof.ingest.>")
	nc.Flush()
	code, out, errOut := cli(t, url, "replay", "--stream", "demo", "--to", "3")
	if code != control.ExitUsage || !strings.Contains(errOut, "under the ingest prefix aof.ingest") || !strings.Contains(errOut, "--allow-ingest-subject") {
		t.Fatalf("replay to the original subjects: exit %d, stdout %q, stderr %q; want exit 1 explaining why", code, out, errOut)
	}
	if m, err := sub.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("the refused replay published %s", m.Subject)
	}
	code, out, errOut = cli(t, url, "replay", "--stream", "demo", "--to", "3", "--allow-ingest-subject")
	if code != 0 || !strings.Contains(out, "replayed 3 records") {
		t.Fatalf("replay with --allow-ingest-subject: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if m, err := sub.NextMsg(5 * time.Second); err != nil || m.Subject != "aof.ingest.demo" {
		t.Fatalf("replay with --allow-ingest-subject published %v, %v", m, err)
	}
}

// TestReplayToJetStreamTwiceStoresEachRecordOnce: Nats-Msg-Id is the
// stream and offset, so a second run is all duplicates.
func TestReplayToJetStreamTwiceStoresEachRecordOnce(t *testing.T) {
	url, _ := online(t)
	nc, err := nats.Connect(strings.TrimPrefix(url, "--nats-url="))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := testCtx(t)
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RESTORE", Subjects: []string{"restore.>"}})
	if err != nil {
		t.Fatal(err)
	}
	args := []string{url, "replay", "--stream", "demo", "--subject", "restore.{{stream}}", "--jetstream", "--window", "4", "--json"}
	for run, want := range []replaySummary{{Records: 45, Stored: 45}, {Records: 45, Duplicates: 45}} {
		code, out, errOut := cli(t, args...)
		var got replaySummary
		if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got.Records != want.Records || got.Stored != want.Stored || got.Duplicates != want.Duplicates {
			t.Fatalf("run %d: exit %d, stdout %q, stderr %q; want %+v", run+1, code, out, errOut, want)
		}
	}
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs != 45 {
		t.Fatalf("RESTORE holds %d messages after two runs (%v), want 45", info.State.Msgs, err)
	}
	m, err := st.GetMsg(ctx, 45)
	if err != nil || m.Header.Get(jetstream.MsgIDHeader) != "demo:44" || string(m.Data) != "demo message 0044" {
		t.Fatalf("last stored message %+v, %v", m, err)
	}
	// No stream for the subject: a clear error, not a hang.
	code, _, errOut := cli(t, url, "--timeout", "5s", "replay", "--stream", "demo", "--to", "2", "--subject", "nowhere.{{stream}}", "--jetstream")
	if code != control.ExitIO || !strings.Contains(errOut, "no stream stores this subject") {
		t.Fatalf("replay to a subject no stream stores: exit %d, stderr %q", code, errOut)
	}
}

func TestExportWritesOneJSONRecordPerLine(t *testing.T) {
	url, _ := online(t)
	code, out, errOut := cli(t, url, "export", "--stream", "demo", "--from", "40")
	if code != 0 || !strings.Contains(errOut, "exported 5 records of demo (offsets 40 to 44)") {
		t.Fatalf("export: exit %d, stderr %q", code, errOut)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	i := 40
	for ; sc.Scan(); i++ {
		var e ExportedRecord
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		body, err := e.Data()
		if err != nil || e.Offset != uint64(i) || e.Seq != uint64(i+1) || e.Subject != "aof.ingest.demo" || e.BodyEncoding != BodyText ||
			string(body) != fmt.Sprintf("demo message %04d", i) || e.Header["Seq"][0] != fmt.Sprint(i) || !strings.HasPrefix(e.Time, "2025-01-02T03:04:05") {
			t.Fatalf("line %d: %+v", i, e)
		}
	}
	if i != 45 {
		t.Fatalf("export wrote %d lines, want 5", i-40)
	}
	_, out, _ = cli(t, url, "export", "--stream", "demo", "--from", "44", "--base64")
	var e ExportedRecord
	if err := json.Unmarshal([]byte(out), &e); err != nil || e.BodyEncoding != BodyBase64 || e.Body != "ZGVtbyBtZXNzYWdlIDAwNDQ=" {
		t.Fatalf("export --base64: %q (%v)", out, err)
	}
}

func TestReplayAndExportPassTheGatewaysErrors(t *testing.T) {
	url, _ := online(t)
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"malformed time", []string{"export", "--stream", "demo", "--from-time", "yesterday"}, control.ExitUsage, "RFC 3339"},
		{"two starts", []string{"replay", "--stream", "demo", "--from", "1", "--from-seq", "3", "--subject", "x"}, control.ExitUsage, "exclude each other"},
		{"unknown stream", []string{"replay", "--stream", "nosuch", "--subject", "x"}, control.ExitNotFound, "nosuch"},
		{"beyond the end", []string{"export", "--stream", "demo", "--from", "99"}, control.ExitNotFound, "beyond the end"},
		{"bad template", []string{"replay", "--stream", "demo", "--subject", "x.{{offset}}"}, control.ExitUsage, "unknown placeholder"},
	}
	for _, c := range cases {
		code, _, errOut := cli(t, append([]string{url}, c.args...)...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d saying %q", c.name, code, errOut, c.code, c.want)
		}
	}
}

// The records of the test root were all appended at 2025-01-02T03:04:05Z:
// an export from that time starts at the first record, one from a second
// later starts at the end and writes nothing.
func TestExportFromTimeStartsAtTheFirstRecordAppendedThen(t *testing.T) {
	url, _ := online(t)
	code, out, errOut := cli(t, url, "export", "--stream", "demo", "--from-time", "2025-01-02T03:04:05Z", "--to", "3")
	var offsets []uint64
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e ExportedRecord
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("export: exit %d, stdout %q, stderr %q: %v", code, out, errOut, err)
		}
		offsets = append(offsets, e.Offset)
	}
	if len(offsets) != 3 || offsets[0] != 0 || offsets[2] != 2 {
		t.Fatalf("export from the append time: offsets %v, want 0, 1, 2", offsets)
	}
	code, out, errOut = cli(t, url, "export", "--stream", "demo", "--from-time", "2025-01-02T03:04:06Z")
	if code != 0 || strings.TrimSpace(out) != "" {
		t.Fatalf("export from after the last record: exit %d, stdout %q, stderr %q; want nothing, exit 0", code, out, errOut)
	}
}

func TestReadFromSeqAndToSeqBoundTheRange(t *testing.T) {
	url, _ := online(t)
	// ext ids are offset+1 in buildRoot.
	code, out, errOut := cli(t, url, "export", "--stream", "demo", "--from-seq", "11", "--to-seq", "14")
	var offsets []uint64
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e ExportedRecord
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("export: exit %d, stdout %q, stderr %q: %v", code, out, errOut, err)
		}
		offsets = append(offsets, e.Offset)
	}
	if code != 0 || fmt.Sprint(offsets) != "[10 11 12]" {
		t.Fatalf("export --from-seq 11 --to-seq 14: offsets %v, exit %d, stderr %q; want [10 11 12]", offsets, code, errOut)
	}
}

func TestPacerHoldsPublishesToTheRate(t *testing.T) {
	p := pacer{rate: 100}
	start := time.Now()
	for range 21 {
		if err := p.wait(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	// 21 publishes at 100/s: the last is due 200 ms after the first.
	if took := time.Since(start); took < 190*time.Millisecond || took > 2*time.Second {
		t.Fatalf("21 publishes at --rate 100 took %v, want about 200 ms", took)
	}
	unlimited := pacer{}
	start = time.Now()
	for range 1000 {
		unlimited.wait(testCtx(t))
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Fatalf("1000 publishes without --rate took %v", took)
	}
}

// The binary runs replay with a context that has no deadline (it ends on
// a signal); a core NATS replay must still flush and succeed, as a test
// context with a deadline hid once.
func TestCoreReplayFinishesWithoutADeadlineOnItsContext(t *testing.T) {
	url, _ := online(t)
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), []string{url, "replay", "--stream", "demo", "--to", "5", "--subject", "restore.{{stream}}"},
			&out, &errOut, []string{"HOME=" + t.TempDir()})
	}()
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(out.String(), "replayed 5 records of demo") {
			t.Fatalf("replay without a deadline: exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("replay without a deadline did not end within 60 s")
	}
}
