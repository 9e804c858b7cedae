package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/manifest/natsmanifest"
)

// Event is one manifest record seen on aof.manifest.<stream>, with the
// time it arrived.
type Event struct {
	Record  manifest.Record
	Arrived time.Time
}

// Watcher follows a stream's manifest events (an ordered consumer on the
// manifest JetStream stream) and lets callers wait for conditions over
// everything seen so far. Events are kept in arrival order, which is the
// order the gateway committed them.
type Watcher struct {
	mu      sync.Mutex
	events  []Event
	changed chan struct{} // closed and replaced on every new event
	bad     int           // messages whose body did not decode
	cc      jetstream.ConsumeContext
	verbose io.Writer
}

// Watch starts following subject (aof.manifest.<stream>) in the JetStream
// stream manifestStream, from the time since (events committed earlier are
// not delivered). verbose, when not nil, gets one line per event.
func Watch(ctx context.Context, js jetstream.JetStream, manifestStream, subject string, since time.Time, verbose io.Writer) (*Watcher, error) {
	cons, err := js.OrderedConsumer(ctx, manifestStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &since,
	})
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("manifest stream %s not found: is the gateway running against this NATS server?", manifestStream)
		}
		return nil, fmt.Errorf("follow %s: %w", subject, err)
	}
	w := &Watcher{changed: make(chan struct{}), verbose: verbose}
	cc, err := cons.Consume(w.handle)
	if err != nil {
		return nil, fmt.Errorf("follow %s: %w", subject, err)
	}
	w.cc = cc
	return w, nil
}

func (w *Watcher) handle(msg jetstream.Msg) {
	rec, _, err := manifest.DecodeRecord(msg.Data())
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.bad++
		return
	}
	w.events = append(w.events, Event{Record: rec, Arrived: time.Now()})
	if w.verbose != nil {
		fmt.Fprintf(w.verbose, "  manifest: %-18s segment %-4s offset %d\n", msg.Headers().Get(natsmanifest.HeaderEvent),
			strconv.FormatUint(rec.Segment, 10), rec.LogicalOffset)
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

// Stop ends the subscription.
func (w *Watcher) Stop() {
	if w.cc != nil {
		w.cc.Stop()
	}
}

// Len is the number of events seen so far: a mark for Since.
func (w *Watcher) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.events)
}

// Since returns a copy of the events seen after mark.
func (w *Watcher) Since(mark int) []Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Event(nil), w.events[min(mark, len(w.events)):]...)
}

// Undecodable counts messages whose body was not a manifest record.
func (w *Watcher) Undecodable() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bad
}

// WaitFor calls done with the events seen after mark each time new ones
// arrive, until done returns true or ctx ends. done must not block.
func (w *Watcher) WaitFor(ctx context.Context, mark int, done func([]Event) bool) error {
	for {
		w.mu.Lock()
		evs := w.events[min(mark, len(w.events)):]
		ok := done(evs)
		ch := w.changed
		w.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// SegmentProgress is what the manifest said about one segment.
type SegmentProgress struct {
	Segment         uint64
	Sealed          bool
	DurableBytes    uint64
	Compressed      bool
	CompressedBytes uint64
	Uploaded        bool
	Key             string
	SealedAt        int64 // timestamp_ms of the records
	CompressedAt    int64
	UploadedAt      int64
	Failures        []string // CompressionFailed, UploadFailed reasons
}

// Fold summarises events per segment.
func Fold(evs []Event) map[uint64]*SegmentProgress {
	out := map[uint64]*SegmentProgress{}
	for _, ev := range evs {
		r := ev.Record
		sp := out[r.Segment]
		if sp == nil {
			sp = &SegmentProgress{Segment: r.Segment}
			out[r.Segment] = sp
		}
		switch p := r.Payload.(type) {
		case manifest.SealSegmentPayload:
			sp.Sealed, sp.DurableBytes, sp.SealedAt = true, p.DurableBytes, r.TimestampMS
		case manifest.CompressionDonePayload:
			sp.Compressed, sp.CompressedBytes, sp.CompressedAt = true, p.CompressedBytes, r.TimestampMS
		case manifest.UploadDonePayload:
			sp.Uploaded, sp.Key, sp.UploadedAt = true, p.Key, r.TimestampMS
		case manifest.CompressionFailedPayload:
			sp.Failures = append(sp.Failures, "compression failed: "+p.Reason.String())
		case manifest.UploadFailedPayload:
			sp.Failures = append(sp.Failures, "upload failed: "+p.Reason.String())
		}
	}
	return out
}
