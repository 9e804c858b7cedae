package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// recordProgress reports how a long run over records goes: on a terminal
// a bar redrawn in place at most every 100 ms, otherwise a plain line at
// most every second (for logs). Both give records/s and, when the total
// is known, the records left and an ETA.
type recordProgress struct {
	w     io.Writer
	bar   bool
	label string // "replay orders"
	total uint64 // records expected; 0 when not known ahead
	now   func() time.Time

	start, last time.Time
	drawn       bool
}

func newRecordProgress(w io.Writer, bar bool, label string, now func() time.Time) *recordProgress {
	if now == nil {
		now = time.Now
	}
	t := now()
	return &recordProgress{w: w, bar: bar, label: label, now: now, start: t, last: t}
}

// update reports done records when the interval has passed since the
// last report.
func (p *recordProgress) update(done uint64) {
	every := time.Second
	if p.bar {
		every = 100 * time.Millisecond
	}
	t := p.now()
	if t.Sub(p.last) < every {
		return
	}
	p.last = t
	p.draw(done, t)
}

// finish ends the bar's line, so the summary starts on a line of its own.
func (p *recordProgress) finish(done uint64) {
	if p.bar && p.drawn {
		p.draw(done, p.now())
		fmt.Fprintln(p.w)
	}
}

func (p *recordProgress) draw(done uint64, t time.Time) {
	p.drawn = true
	if p.bar {
		fmt.Fprintf(p.w, "\r%s", p.barLine(done, t.Sub(p.start)))
		return
	}
	fmt.Fprintln(p.w, p.plainLine(done, t.Sub(p.start)))
}

// rate is records per second over elapsed.
func rate(done uint64, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(done) / elapsed.Seconds()
}

// eta is the time left at the rate so far; "?" before there is a rate.
func (p *recordProgress) eta(done uint64, elapsed time.Duration) string {
	r := rate(done, elapsed)
	if r <= 0 {
		return "?"
	}
	left := p.total - min(done, p.total)
	return (time.Duration(float64(left)/r*float64(time.Second)) + time.Second/2).Truncate(time.Second).String()
}

func (p *recordProgress) barLine(done uint64, elapsed time.Duration) string {
	r := rate(done, elapsed)
	if p.total == 0 {
		return fmt.Sprintf("%s: %d records  %.0f records/s", p.label, done, r)
	}
	const width = 30
	n := int(float64(min(done, p.total)) / float64(p.total) * width)
	bar := strings.Repeat("=", n) + strings.Repeat(" ", width-n)
	return fmt.Sprintf("[%s] %s: %d/%d records  %.0f records/s  ETA %s", bar, p.label, done, p.total, r, p.eta(done, elapsed))
}

func (p *recordProgress) plainLine(done uint64, elapsed time.Duration) string {
	r := rate(done, elapsed)
	if p.total == 0 {
		return fmt.Sprintf("%s: %d records, %.0f records/s", p.label, done, r)
	}
	return fmt.Sprintf("%s: %d/%d records, %.0f records/s, ETA %s", p.label, done, p.total, r, p.eta(done, elapsed))
}
