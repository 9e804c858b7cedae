package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// Watcher keeps what natsmanifest.Tail delivers for one stream and lets
// the demo wait for conditions over everything seen so far. Events are
// kept in the order the gateway committed them.
type Watcher struct {
	mu      sync.Mutex
	events  []Event
	changed chan struct{} // closed and replaced on every new event
	err     error         // why the tail stopped early, if it did
	verbose io.Writer

	cancel context.CancelFunc
	done   chan struct{}
}

// Watch starts following stream's manifest events in the JetStream stream
// manifestStream (subjects prefix.<stream>) from the time since: events
// committed earlier are not delivered. verbose, when not nil, gets one line
// per event.
func Watch(ctx context.Context, js jetstream.JetStream, manifestStream, prefix, stream string, since time.Time, verbose io.Writer) (*Watcher, error) {
	if _, err := js.Stream(ctx, manifestStream); err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("manifest stream %s not found: is the gateway running against this NATS server?", manifestStream)
		}
		return nil, fmt.Errorf("follow %s: %w", natsmanifest.Subject(prefix, stream), err)
	}
	tctx, cancel := context.WithCancel(ctx)
	w := &Watcher{changed: make(chan struct{}), verbose: verbose, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		err := natsmanifest.Tail(tctx, js, stream, w.add,
			natsmanifest.WithStreamName(manifestStream), natsmanifest.WithPrefix(prefix), natsmanifest.WithStartTime(since))
		if tctx.Err() == nil {
			w.stopped(err)
		}
	}()
	return w, nil
}

func (w *Watcher) add(ev manifest.Event) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, Event{Record: ev.Record, Arrived: time.Now()})
	if w.verbose != nil {
		fmt.Fprintf(w.verbose, "  manifest: %-18s segment %-4d offset %d\n", ev.Record.Type, ev.Record.Segment, ev.Record.LogicalOffset)
	}
	w.notifyLocked()
	return nil
}

func (w *Watcher) stopped(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		err = errors.New("manifest tail ended")
	}
	w.err = err
	w.notifyLocked()
}

func (w *Watcher) notifyLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// Stop ends the subscription and waits for it to end.
func (w *Watcher) Stop() {
	w.cancel()
	<-w.done
}

// Err is why the watcher stopped following before Stop (an event that did
// not decode, a consumer error), or nil.
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
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

// WaitFor calls done with the events seen after mark each time new ones
// arrive, until done returns true, the watcher stops following, or ctx
// ends. done must not block.
func (w *Watcher) WaitFor(ctx context.Context, mark int, done func([]Event) bool) error {
	for {
		w.mu.Lock()
		evs := w.events[min(mark, len(w.events)):]
		ok := done(evs)
		ch, err := w.changed, w.err
		w.mu.Unlock()
		if ok {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// Fold applies events to a manifest index of stream, the same fold the
// gateway replays its manifest with, so the demo reads segment state as
// the store does. The index starts empty: segments only show what
// happened to them after the watch began.
func Fold(stream string, evs []Event) *manifest.Index {
	idx := manifest.NewIndex(stream)
	for _, ev := range evs {
		idx.Apply(ev.Record)
	}
	return idx
}

// compressed and uploaded read the transitions the demo reports from a
// folded segment state: CompressionDone recorded a size, UploadDone a key.
func compressed(s manifest.SegmentState) bool { return s.CompressedBytes > 0 }
func uploaded(s manifest.SegmentState) bool   { return s.InTier2 }
