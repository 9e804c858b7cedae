package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Progress reports how far a counted step is: on a terminal a bar redrawn
// in place (at most every 100 ms), otherwise one plain line per 10% so logs
// and CI output stay readable. It is safe for concurrent use.
type Progress struct {
	mu       sync.Mutex
	w        io.Writer
	terminal bool
	label    string
	total    int
	// Rate adds units per second to the bar (records, not steps).
	Rate  bool
	start time.Time
	now   func() time.Time

	done      int
	lastDraw  time.Time
	lastDecil int // plain mode: the last 10% step printed
	finished  bool
}

// barWidth is the bar's width in characters.
const barWidth = 30

// NewProgress starts reporting a step of total units.
func NewProgress(w io.Writer, terminal bool, label string, total int) *Progress {
	return &Progress{w: w, terminal: terminal, label: label, total: total, start: time.Now(), now: time.Now, lastDecil: -1}
}

// Set records that done units are complete.
func (p *Progress) Set(done int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.done = done
	now := p.now()
	if p.terminal {
		if now.Sub(p.lastDraw) >= 100*time.Millisecond || done >= p.total {
			p.lastDraw = now
			p.drawBar(now)
		}
		return
	}
	decil := 0
	if p.total > 0 {
		decil = done * 10 / p.total
	}
	if decil > p.lastDecil {
		p.lastDecil = decil
		fmt.Fprintf(p.w, "%s: %d/%d (%d%%) %.1fs\n", p.label, done, p.total, decil*10, now.Sub(p.start).Seconds())
	}
}

// Finish draws the final state and ends the line; later Sets are ignored.
func (p *Progress) Finish(note string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.finished = true
	now := p.now()
	if p.terminal {
		p.drawBar(now)
		fmt.Fprintf(p.w, " %s\n", note)
		return
	}
	fmt.Fprintf(p.w, "%s: %d/%d done in %.1fs %s\n", p.label, p.done, p.total, now.Sub(p.start).Seconds(), note)
}

func (p *Progress) drawBar(now time.Time) {
	frac := 1.0
	if p.total > 0 {
		frac = float64(p.done) / float64(p.total)
	}
	fill := min(int(frac*barWidth), barWidth)
	fmt.Fprintf(p.w, "\r%-9s [%s%s] %d/%d %3.0f%%", p.label,
		strings.Repeat("=", fill), strings.Repeat(" ", barWidth-fill), p.done, p.total, frac*100)
	// A rate over the first moments says nothing but noise.
	if el := now.Sub(p.start).Seconds(); p.Rate && el >= 0.25 {
		fmt.Fprintf(p.w, " %.0f/s", float64(p.done)/el)
	}
}
