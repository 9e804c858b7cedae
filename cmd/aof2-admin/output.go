package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/bop-aof/aof/control"
	"github.com/bop-aof/aof/manifest"
)

func (a *app) printJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	_, err = fmt.Fprintln(a.stdout, string(b))
	return err
}

func printStatus(w io.Writer, s control.StatusResponse) {
	fmt.Fprintf(w, "service %s %s, data root %s\n", s.Service, s.Version, s.Root)
	fmt.Fprintf(w, "tier 2: %s\n", tier2Line(s))
	fmt.Fprintf(w, "streams: %s\n", strings.Join(s.Streams, ", "))
	fmt.Fprintf(w, "tier 0: %d of %d bytes used, %d segments, %d waiting for admission\n", s.Tier0.UsedBytes, s.Tier0.MaxBytes, s.Tier0.Segments, s.Tier0.QueueDepth)
	fmt.Fprintf(w, "tier 1: %d of %d bytes, %d artifacts\n", s.Tier1.Bytes, s.Tier1.MaxBytes, s.Tier1.Files)
	fmt.Fprintf(w, "queues: compression %d, upload %d, hydration %d\n", s.Queues.Compression, s.Queues.Upload, s.Queues.Hydration)
	fmt.Fprintf(w, "hydration latency ms: p50 %.1f p90 %.1f p99 %.1f\n", s.Latency.P50, s.Latency.P90, s.Latency.P99)
	if len(s.Gateway) > 0 {
		fmt.Fprintf(w, "gateway: %s\n", s.Gateway)
	}
}

// gatewayTier2 is the tier2 object of the gateway's status (and /readyz):
// state ok, degraded or disabled, whether the bucket was confirmed, the
// circuit breaker and the last Tier 2 error.
type gatewayTier2 struct {
	State         string `json:"state"`
	BucketChecked bool   `json:"bucket_checked"`
	Breaker       string `json:"breaker"`
	LastError     string `json:"last_error"`
}

// tier2Line describes Tier 2 as the gateway reports it; a bare control
// service (no gateway status) only says whether its store has Tier 2.
func tier2Line(s control.StatusResponse) string {
	var gw struct {
		Tier2 *gatewayTier2 `json:"tier2"`
	}
	if len(s.Gateway) == 0 || json.Unmarshal(s.Gateway, &gw) != nil || gw.Tier2 == nil || gw.Tier2.State == "" {
		if s.Tier2 {
			return "configured"
		}
		return "disabled"
	}
	t := gw.Tier2
	line := t.State
	if t.State == "disabled" {
		return line
	}
	if t.Breaker != "" && t.Breaker != "closed" {
		line += ", breaker " + t.Breaker
	}
	if !t.BucketChecked {
		line += ", bucket not checked"
	}
	if t.LastError != "" {
		line += " (last error: " + t.LastError + ")"
	}
	return line
}

// printDump prints the residency table, one block per tier, then the
// JSON footer on the last line.
func printDump(w io.Writer, d control.DumpResponse, jsonOnly bool) {
	if !jsonOnly {
		for tier := 0; tier <= 2; tier++ {
			for _, s := range d.Segments {
				if !s.InTier(tier) {
					continue
				}
				bytes := s.Bytes
				if tier > 0 {
					bytes = s.CompressedBytes
				}
				fmt.Fprintf(w, "Tier %d | stream %s | seg %d | state %s | bytes %d\n", tier, s.Stream, s.Segment, s.State, bytes)
			}
		}
		for _, s := range d.Segments {
			if !s.InTier0 && !s.InTier1 && !s.InTier2 {
				fmt.Fprintf(w, "Tier - | stream %s | seg %d | state %s | bytes %d | reason %s\n", s.Stream, s.Segment, s.State, s.Bytes, first(s.Reason, "no copy in any tier"))
			}
		}
	}
	b, _ := json.Marshal(d.Summary)
	fmt.Fprintln(w, string(b))
}

func tiersOf(s control.Segment) string {
	var t []string
	for i := 0; i <= 2; i++ {
		if s.InTier(i) {
			t = append(t, strconv.Itoa(i))
		}
	}
	if len(t) == 0 {
		return "-"
	}
	return strings.Join(t, ",")
}

func printSegments(w io.Writer, segs []control.Segment) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tSEGMENT\tSTATE\tTIERS\tOFFSETS\tRECORDS\tBYTES\tCOMPRESSED\tNOTE")
	for _, s := range segs {
		note := ""
		switch {
		case s.NeedsRecovery:
			note = "needs recovery: " + s.Reason
		case s.PendingHydration:
			note = "hydrating"
		}
		offsets := fmt.Sprintf("%d-%d", s.BaseOffset, s.NextOffset)
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", s.Stream, s.Segment, s.State, tiersOf(s), offsets, s.Records, s.Bytes, s.CompressedBytes, note)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d segment(s)\n", len(segs))
}

func printCheck(w io.Writer, rep control.CheckReport) {
	for _, s := range rep.Streams {
		fmt.Fprintf(w, "stream %s: %d chunk(s), %d manifest record(s), %d snapshot(s), %d segment file(s), %d tier 2 object(s) checked\n",
			s.Stream, s.Chunks, s.Records, s.Snapshots, s.SegmentsChecked, s.Tier2Checked)
	}
	if !rep.Tier2 {
		fmt.Fprintln(w, "tier 2 objects not checked: no Tier 2 configured")
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "PROBLEM %s\n", p)
	}
	n := rep.Remaining()
	switch {
	case len(rep.Problems) == 0:
		fmt.Fprintln(w, "OK: no problems found")
	case n == 0:
		fmt.Fprintf(w, "OK: %d problem(s) found, all repaired\n", len(rep.Problems))
	default:
		fmt.Fprintf(w, "FAILED: %d problem(s) found, %d remain\n", len(rep.Problems), n)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func printInspect(w io.Writer, res control.ManifestInspectResponse) {
	for i, s := range res.Streams {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "stream %s: %d manifest record(s) in %d chunk(s)\n", s.Stream, s.Records, len(s.Chunks))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CHUNK\tBASE RECORD\tRECORDS\tCOMMITTED BYTES\tSEALED\tUPLOADED")
		for _, c := range s.Chunks {
			fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\t%s\n", c.Index, c.BaseRecord, c.Records, c.CommittedLen, yesNo(c.Sealed), yesNo(c.Uploaded))
		}
		tw.Flush()
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEGMENT\tSEALED\tTIERS\tBASE\tLAST OFFSET\tDURABLE BYTES\tCOMPRESSED\tCRC64\tFAILURES\tSTATE")
		for _, g := range s.Segments {
			var t []string
			for j, in := range []bool{g.InTier0, g.InTier1, g.InTier2} {
				if in {
					t = append(t, strconv.Itoa(j))
				}
			}
			state := "ok"
			switch {
			case g.Deleted:
				state = "deleted"
			case g.NeedsRecovery:
				state = "needs recovery: " + manifest.ReasonCode(g.Reason).String()
			case g.PendingJobs != 0:
				state = fmt.Sprintf("pending jobs %#x", g.PendingJobs)
			}
			tl := strings.Join(t, ",")
			if tl == "" {
				tl = "-"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%d\t%016x\t%d\t%s\n", g.Segment, yesNo(g.Sealed), tl, g.BaseOffset, g.LastLogicalOffset,
				g.DurableBytes, g.CompressedBytes, g.CRC64, g.Failures, state)
		}
		tw.Flush()
		if len(s.Recent) > 0 {
			fmt.Fprintf(w, "last %d record(s):\n", len(s.Recent))
			tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CHUNK\tOFFSET\tTIME\tTYPE\tSEGMENT\tLOGICAL\tPAYLOAD")
			for _, r := range s.Recent {
				ts := time.UnixMilli(r.TimestampMS).UTC().Format("2006-01-02T15:04:05.000Z")
				fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%d\t%d\t%s\n", r.Chunk, r.Offset, ts, r.Type, r.Segment, r.LogicalOffset, r.Payload)
			}
			tw.Flush()
		}
	}
}

// printMessage prints one record on one line.
func printMessage(w io.Writer, m control.Message) {
	ts := time.UnixMilli(m.AppendMS).UTC().Format("2006-01-02T15:04:05.000Z")
	var b strings.Builder
	fmt.Fprintf(&b, "offset %d | ext %d | %s", m.Offset, m.ExtID, ts)
	if m.Raw {
		b.WriteString(" | raw payload")
	} else {
		fmt.Fprintf(&b, " | subject %s", m.Subject)
	}
	if len(m.Header) > 0 {
		keys := make([]string, 0, len(m.Header))
		for k := range m.Header {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var hs []string
		for _, k := range keys {
			for _, v := range m.Header[k] {
				hs = append(hs, k+"="+v)
			}
		}
		fmt.Fprintf(&b, " | header %s", strings.Join(hs, " "))
	}
	fmt.Fprintf(&b, " | body %s", showBody(m.Body))
	fmt.Fprintln(w, b.String())
}

// showBody quotes printable UTF-8 text and base64-encodes anything else.
func showBody(body []byte) string {
	if utf8.Valid(body) && strings.IndexFunc(string(body), func(r rune) bool { return !unicode.IsPrint(r) && !unicode.IsSpace(r) }) < 0 {
		return strconv.Quote(string(body))
	}
	return "base64:" + base64.StdEncoding.EncodeToString(body)
}

func printSnapshots(w io.Writer, snaps []control.SnapshotInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tSNAPSHOT\tBYTES\tCOVERS\tVALID")
	for _, s := range snaps {
		valid := yesNo(s.Valid)
		if !s.Valid {
			valid = "no: " + s.Reason
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d/%d\t%s\n", s.Stream, s.SnapshotID, s.Bytes, s.Chunk, s.Offset, valid)
	}
	tw.Flush()
}

// hydrate runs hydration attempts with progress: a bar on a terminal,
// progress lines otherwise.
func (a *app) hydrate(cmd *cobra.Command, c *control.Client, req control.HydrateRequest, maxRetries int) error {
	name := fmt.Sprintf("segment %d", req.Segment)
	if req.Stream != "" {
		name = fmt.Sprintf("stream %s segment %d", req.Stream, req.Segment)
	}
	backoff := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := a.requestCtx(cmd)
		stop := a.progress(ctx, name, attempt, maxRetries+1, hydratedBytes(c, req))
		res, err := c.Hydrate(ctx, req)
		cancel()
		stop(err)
		if err == nil {
			if a.jsonOut {
				return a.printJSON(res)
			}
			if res.AlreadyLocal {
				fmt.Fprintf(a.stdout, "stream %s segment %d: already local, nothing to do\n", res.Stream, res.Segment)
			} else {
				fmt.Fprintf(a.stdout, "stream %s segment %d: hydrated into Tier 1 (%d bytes) in %d ms\n", res.Stream, res.Segment, res.Bytes, res.DurationMS)
			}
			return nil
		}
		code := control.ExitCode(err)
		if code != control.ExitIO || attempt > maxRetries {
			return err
		}
		fmt.Fprintf(a.stderr, "hydrate %s: attempt %d failed: %v; retrying in %v\n", name, attempt, err, backoff)
		select {
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// hydratedBytes asks the store how far the hydration of req's segment has
// downloaded: done of total bytes, ok false while it cannot say.
func hydratedBytes(c *control.Client, req control.HydrateRequest) func(context.Context) (done, total int64, ok bool) {
	return func(ctx context.Context) (int64, int64, bool) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		res, err := c.SegmentsList(ctx, control.SegmentsListRequest{Stream: req.Stream})
		if err != nil {
			return 0, 0, false
		}
		for _, s := range res.Segments {
			if s.Segment == req.Segment && s.PendingHydration && s.CompressedBytes > 0 {
				return s.HydratedBytes, s.CompressedBytes, true
			}
		}
		return 0, 0, false
	}
}

// progress shows that an attempt is running until the returned func is
// called with its outcome: the bytes downloaded of the Tier 2 object when
// bytes can say (each tick asks it), else the time spent against the
// request timeout.
func (a *app) progress(ctx context.Context, name string, attempt, attempts int, bytes func(context.Context) (done, total int64, ok bool)) func(error) {
	start := time.Now()
	deadline, _ := ctx.Deadline()
	total := time.Until(deadline)
	done := make(chan struct{})
	finished := make(chan struct{})
	draw := func(final string) {
		el := time.Since(start)
		var got, size int64
		known := false
		if final == "" && bytes != nil {
			got, size, known = bytes(ctx)
		}
		amount := ""
		if known {
			amount = fmt.Sprintf(" %.1f/%.1f MiB", float64(got)/(1<<20), float64(size)/(1<<20))
		}
		if a.isTerminal {
			const width = 30
			frac := 1.0
			switch {
			case final != "":
			case known:
				frac = min(float64(got)/float64(size), 1)
			case total > 0:
				frac = min(float64(el)/float64(total), 0.99)
			}
			n := int(frac * width)
			bar := strings.Repeat("=", n) + strings.Repeat(" ", width-n)
			fmt.Fprintf(a.stdout, "\r[%s] hydrating %s (attempt %d/%d) %5.1fs%s %s", bar, name, attempt, attempts, el.Seconds(), amount, final)
			if final != "" {
				fmt.Fprintln(a.stdout)
			}
			return
		}
		if final != "" {
			fmt.Fprintf(a.stderr, "hydrate %s: attempt %d/%d %s after %.1fs\n", name, attempt, attempts, final, el.Seconds())
		} else {
			fmt.Fprintf(a.stderr, "hydrate %s: attempt %d/%d running, %.1fs%s\n", name, attempt, attempts, el.Seconds(), amount)
		}
	}
	if !a.isTerminal {
		fmt.Fprintf(a.stderr, "hydrate %s: attempt %d/%d started\n", name, attempt, attempts)
	}
	go func() {
		defer close(finished)
		every := time.Second
		if a.isTerminal {
			every = 100 * time.Millisecond
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				draw("")
			}
		}
	}()
	return func(err error) {
		close(done)
		<-finished
		if err != nil {
			draw("failed")
		} else {
			draw("done")
		}
	}
}
