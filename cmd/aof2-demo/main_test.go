package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bop-aof/aof/control"
	"github.com/bop-aof/aof/manifest"
)

func TestRecordBodyIsDeterministicAndExactlySized(t *testing.T) {
	for _, size := range []int{MinRecordBytes, 100, 256, 4096, MaxRecordBytes} {
		a, b := RecordBody("r1", 7, size), RecordBody("r1", 7, size)
		if len(a) != size {
			t.Errorf("size %d: body has %d bytes", size, len(a))
		}
		if !bytes.Equal(a, b) {
			t.Errorf("size %d: two calls differ", size)
		}
		if !bytes.HasPrefix(a, []byte(`{"run":"r1","i":7,`)) || !bytes.HasSuffix(a, []byte(`"}`)) {
			t.Errorf("size %d: not the documented JSON shape: %.60q", size, a)
		}
	}
	if bytes.Equal(RecordBody("r1", 7, 256), RecordBody("r1", 8, 256)) {
		t.Error("records 7 and 8 have the same body")
	}
	if bytes.Equal(RecordBody("r1", 7, 256), RecordBody("r2", 7, 256)) {
		t.Error("runs r1 and r2 give record 7 the same body")
	}
}

func TestVerifyAcceptsOnlyThePublishedRecord(t *testing.T) {
	p := &Published{Run: "rtest", RecordBytes: 128, Seq: []uint64{11, 12, 0}}
	good := func() control.Message {
		return control.Message{
			Offset: 40, ExtID: 12, Subject: "aof.ingest.demo",
			Header: map[string][]string{HeaderRun: {"rtest"}, HeaderIndex: {"1"}},
			Body:   RecordBody("rtest", 1, 128),
		}
	}
	cases := []struct {
		name    string
		mutate  func(*control.Message)
		offset  uint64
		wantErr string
	}{
		{"the published record", func(*control.Message) {}, 40, ""},
		{"another offset than asked", func(*control.Message) {}, 41, "asked for offset 41"},
		{"not an envelope", func(m *control.Message) { m.Raw = true }, 40, "not a NATS message envelope"},
		{"another run", func(m *control.Message) { m.Header[HeaderRun] = []string{"rold"} }, 40, `run "rold"`},
		{"index out of range", func(m *control.Message) { m.Header[HeaderIndex] = []string{"9"} }, 40, "bad Aof-Demo-Index"},
		{"a flipped body byte", func(m *control.Message) { m.Body[70] ^= 1 }, 40, "body differs"},
		{"a truncated body", func(m *control.Message) { m.Body = m.Body[:100] }, 40, "body differs"},
		{"ext_id not the acked sequence", func(m *control.Message) { m.ExtID = 99 }, 40, "JetStream acked it as sequence 12"},
		{"never acked", func(m *control.Message) {
			m.Header[HeaderIndex] = []string{"2"}
			m.Body = RecordBody("rtest", 2, 128)
		}, 40, "never acked"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := good()
			tc.mutate(&m)
			_, err := p.Verify(m, tc.offset)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestProgressPlainPrintsOneLinePerTenthAndAFinalLine(t *testing.T) {
	var b bytes.Buffer
	p := NewProgress(&b, false, "publish", 100)
	for i := 1; i <= 100; i++ {
		p.Set(i)
	}
	p.Finish("acked 100")
	p.Set(50) // ignored after Finish
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	// 1..9 -> 0%, then 10%..100%: 11 lines, plus the final one.
	if len(lines) != 12 {
		t.Fatalf("%d lines, want 12:\n%s", len(lines), b.String())
	}
	if !strings.HasPrefix(lines[10], "publish: 100/100 (100%)") || !strings.Contains(lines[11], "done in") || !strings.HasSuffix(lines[11], "acked 100") {
		t.Errorf("last lines:\n%s\n%s", lines[10], lines[11])
	}
	if strings.Contains(b.String(), "\r") {
		t.Error("plain progress contains carriage returns")
	}
}

func TestProgressTerminalRedrawsInPlaceAtMostEvery100ms(t *testing.T) {
	var b bytes.Buffer
	p := NewProgress(&b, true, "publish", 1000)
	now := p.start
	p.now = func() time.Time { return now }
	for i := 1; i < 1000; i++ {
		if i%100 == 0 {
			now = now.Add(100 * time.Millisecond)
		}
		p.Set(i)
	}
	p.Set(1000) // complete: always drawn
	p.Finish("ok")
	draws := strings.Count(b.String(), "\r")
	// one draw at the first Set, one per 100 ms step (9), one at 1000, one at Finish
	if draws != 12 {
		t.Errorf("%d redraws, want 12: %q", draws, b.String())
	}
	if !strings.Contains(b.String(), "[==============================] 1000/1000 100%") || !strings.HasSuffix(b.String(), " ok\n") {
		t.Errorf("final bar missing: %q", b.String())
	}
}

func TestFoldReadsSegmentStateAsTheStoreDoes(t *testing.T) {
	ev := func(typ manifest.RecordType, seg uint64, p manifest.Payload) Event {
		return Event{Record: manifest.Record{Type: typ, Segment: seg, Payload: p}}
	}
	got := Fold("demo", []Event{
		ev(manifest.SealSegment, 1, manifest.SealSegmentPayload{DurableBytes: 1000}),
		ev(manifest.CompressionStarted, 1, manifest.CompressionStartedPayload{}),
		ev(manifest.CompressionDone, 1, manifest.CompressionDonePayload{CompressedBytes: 200}),
		ev(manifest.UploadFailed, 1, manifest.UploadFailedPayload{Key: "k", Reason: manifest.ReasonUnavailable}),
		ev(manifest.UploadDone, 1, manifest.UploadDonePayload{Key: "segments/demo/1.zst", ETag: "e"}),
		ev(manifest.SealSegment, 2, manifest.SealSegmentPayload{DurableBytes: 500}),
		ev(manifest.CompressionStarted, 2, manifest.CompressionStartedPayload{}),
	})
	s1, _ := got.Get(1)
	s2, _ := got.Get(2)
	if !s1.Sealed || !compressed(s1) || !uploaded(s1) || s1.DurableBytes != 1000 || s1.CompressedBytes != 200 || s1.Tier2Key != "segments/demo/1.zst" {
		t.Errorf("segment 1: %+v", s1)
	}
	if s1.Failures != 1 || s1.LastFailure != manifest.ReasonUnavailable {
		t.Errorf("segment 1 failures: %d, last %v; want 1 upload failure (unavailable)", s1.Failures, s1.LastFailure)
	}
	if !s2.Sealed || compressed(s2) || uploaded(s2) {
		t.Errorf("segment 2 (compression only started): %+v", s2)
	}
}

func TestSummaryTableNamesEveryRowAndListsFailures(t *testing.T) {
	s := &Summary{
		Stream: "demo", Run: "r1", Records: 10, RecordBytes: 256, Published: 10, Acked: 10, Stored: 10,
		SealedSegments: 2, Segments: []uint64{1, 2}, SealedRecords: 10, CompressedCount: 2,
		UncompressedBytes: 3 << 20, CompressedBytes: 1 << 20, Ratio: 3, UploadedObjects: 2,
		HydratedSegment: 1, EvictedTiers: []int{0, 1}, HydrationSourceTier: 2, HydrationOK: true,
		Reads: []ReadCheck{
			{Tier: 0, Segment: 3, Offset: 9, ServedFrom: "tier 0 active segment", OK: true},
			{Tier: 1, Segment: 2, Offset: 7, ServedFrom: "tier 1 artifact", Error: "body differs"},
		},
		Failed: []string{"tier 1 read at offset 7: body differs"},
	}
	var b bytes.Buffer
	PrintSummary(&b, s)
	out := b.String()
	for _, want := range []string{
		`(?m)^published\s+10\s`, `(?m)^acked\s+10\s`, `(?m)^stored\s+10\s`, `(?m)^sealed\s+2\s+10 records in segments 1,2`,
		`(?m)^compressed\s+2\s+3\.0 MiB -> 1\.0 MiB, ratio 3\.00x`, `(?m)^uploaded\s+2\s`,
		`(?m)^hydrated\s+segment 1\s+evicted from tiers 0\+1, back from tier 2\s.*OK$`,
		`(?m)^read tier 0\s+segment 3\s+offset 9\s+tier 0 active segment\s+OK \(`,
		`(?m)^read tier 1\s+segment 2\s+offset 7\s+tier 1 artifact\s+FAIL \(`,
		`(?m)^\s+body differs`,
		`result: FAIL \(1 checks failed\)\n  - tier 1 read at offset 7: body differs\n$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("summary does not match %s:\n%s", want, out)
		}
	}
	s.OK, s.Failed = true, nil
	b.Reset()
	PrintSummary(&b, s)
	if !strings.HasSuffix(b.String(), "\nresult: OK\n") {
		t.Errorf("passing summary does not end with result: OK:\n%s", b.String())
	}
}

func TestUsageErrorsExitOneBeforeConnecting(t *testing.T) {
	cases := map[string][]string{
		"zero records":        {"--records", "0"},
		"tiny records":        {"--record-bytes", "10"},
		"huge records":        {"--record-bytes", "2000000"},
		"invalid stream name": {"--stream", "a.b"},
		"unknown flag":        {"--nope"},
		"positional argument": {"extra"},
		"zero timeout":        {"--timeout", "0s"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			// An unroutable URL: reaching the connect step would fail with 4, not 1.
			code := run(context.Background(), append(args, "--nats-url", "nats://127.0.0.1:1"), &out, &errb, false)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr: %s", code, exitUsage, errb.String())
			}
			if !strings.HasPrefix(errb.String(), "aof2-demo: ") {
				t.Errorf("stderr: %q", errb.String())
			}
		})
	}
}

func TestNoNATSExitsFourWithAHint(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"--records", "1", "--nats-url", "nats://127.0.0.1:1", "--timeout", "5s"}, &out, &errb, false)
	if code != exitIO {
		t.Fatalf("exit %d, want %d; stderr: %s", code, exitIO, errb.String())
	}
	if !strings.Contains(errb.String(), "is the gateway running?") {
		t.Errorf("stderr gives no hint: %s", errb.String())
	}
}

func TestHelpDescribesEveryFlag(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &out, &errb, false); code != exitOK {
		t.Fatalf("--help exit %d", code)
	}
	for _, flag := range []string{"--records", "--stream", "--nats-url", "--record-bytes", "--timeout", "--verbose", "--json", "Exit codes"} {
		if !strings.Contains(out.String(), flag) {
			t.Errorf("--help lacks %s", flag)
		}
	}
}

func TestIDListWritesRunsCompactly(t *testing.T) {
	for _, tc := range []struct {
		ids  []uint64
		want string
	}{
		{nil, "-"},
		{[]uint64{1, 2}, "1,2"},
		{[]uint64{1, 2, 3}, "1-3"},
		{[]uint64{1, 2, 3, 5, 7, 8, 9, 10}, "1-3,5,7-10"},
		{[]uint64{4}, "4"},
	} {
		if got := idList(tc.ids); got != tc.want {
			t.Errorf("idList(%v) = %q, want %q", tc.ids, got, tc.want)
		}
	}
}
