package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// PrintSummary writes the summary table. Its layout is stable, one row per
// step and per read check, each starting with its name, so scripts and the
// integration test can read it:
//
//	published  <n>  ...
//	acked      <n>  ...
//	stored     <n>  ...
//	sealed     <segments>  <records> records ...
//	compressed <segments>  <bytes> -> <bytes>, ratio <r>x ...
//	uploaded   <objects>   ...
//	hydrated   segment <id>  ...  OK|FAIL
//	read tier <t>  segment <id>  offset <o>  <served from>  OK|FAIL (<ms> ms)
//	result: OK | result: FAIL (<n> checks failed)
func PrintSummary(w io.Writer, s *Summary) {
	fmt.Fprintf(w, "\naof2-demo summary: stream %s, run %s, %d records of %d bytes\n\n", s.Stream, s.Run, s.Records, s.RecordBytes)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	rate := 0.0
	if s.PublishSeconds > 0 {
		rate = float64(s.Published) / s.PublishSeconds
	}
	fmt.Fprintf(tw, "STEP\tCOUNT\tDETAIL\tTIME\n")
	fmt.Fprintf(tw, "published\t%d\t%s of bodies to NATS\t%.2fs (%.0f records/s)\n", s.Published, bytesH(uint64(s.Published)*uint64(s.RecordBytes)), s.PublishSeconds, rate)
	fmt.Fprintf(tw, "acked\t%d\tby JetStream, %d failed\t\n", s.Acked, s.PublishFailures)
	fmt.Fprintf(tw, "stored\t%d\tdurable in the gateway from offset %d\t+%.2fs after the last ack\n", s.Stored, s.FirstOffset, s.StoreLagSeconds)
	fmt.Fprintf(tw, "sealed\t%d\t%d records in segments %s\t\n", s.SealedSegments, s.SealedRecords, idList(s.Segments))
	fmt.Fprintf(tw, "compressed\t%d\t%s -> %s, ratio %.2fx\tlast %.2fs after the seal request\n", s.CompressedCount, bytesH(s.UncompressedBytes), bytesH(s.CompressedBytes), s.Ratio, s.CompressSeconds)
	fmt.Fprintf(tw, "uploaded\t%d\tobjects in tier 2\tlast %.2fs after the seal request\n", s.UploadedObjects, s.UploadSeconds)
	hyd := fmt.Sprintf("evicted from tiers %s, back from tier %d", tierList(s.EvictedTiers), s.HydrationSourceTier)
	if s.HydrationError != "" {
		hyd = s.HydrationError
	}
	fmt.Fprintf(tw, "hydrated\tsegment %d\t%s\t%.1f ms (manifest events %d ms)  %s\n", s.HydratedSegment, hyd, s.HydrationMillis, s.HydrationEventMS, okFail(s.HydrationOK))
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "READ CHECK\tSEGMENT\tOFFSET\tSERVED FROM\tRESULT\n")
	for _, r := range s.Reads {
		fmt.Fprintf(tw, "read tier %d\tsegment %d\toffset %d\t%s\t%s (%.1f ms)\n", r.Tier, r.Segment, r.Offset, r.ServedFrom, okFail(r.OK), r.Millis)
		if !r.OK && r.Error != "" {
			fmt.Fprintf(tw, "\t\t\t%s\t\n", r.Error)
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	if s.OK {
		fmt.Fprintln(w, "result: OK")
		return
	}
	fmt.Fprintf(w, "result: FAIL (%d checks failed)\n", len(s.Failed))
	for _, f := range s.Failed {
		fmt.Fprintf(w, "  - %s\n", f)
	}
}

func okFail(ok bool) string {
	if ok {
		return "OK"
	}
	return "FAIL"
}

// idList writes sorted ids compactly: runs of three or more consecutive
// ids as first-last ("1-94,97"), so that a long demo keeps its table
// narrow.
func idList(ids []uint64) string {
	if len(ids) == 0 {
		return "-"
	}
	var parts []string
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
			j++
		}
		switch {
		case j-i >= 2:
			parts = append(parts, fmt.Sprintf("%d-%d", ids[i], ids[j]))
		default:
			for k := i; k <= j; k++ {
				parts = append(parts, fmt.Sprint(ids[k]))
			}
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

func tierList(ts []int) string {
	if len(ts) == 0 {
		return "none"
	}
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = fmt.Sprint(t)
	}
	return strings.Join(parts, "+")
}

// bytesH formats n bytes with a binary unit.
func bytesH(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
