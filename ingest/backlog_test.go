package ingest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// The store's compression yields to ingest while messages wait behind a
// batch (tiers.Store.IngestBacklog): the pipeline must report a backlog
// while it works through one, and stop reporting once it has caught up.
func TestBacklogIsReportedWhileMessagesWaitAndNotOnceCaughtUp(t *testing.T) {
	r := newRig(t, time.Minute)
	r.publish("orders", 300) // batches of 16: most leave messages behind them
	var reports atomic.Int64
	opts := r.opts
	opts.OnBacklog = func() { reports.Add(1) }
	p, err := NewPipeline(r.js, r.store, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.run(p); err != nil {
		t.Fatal(err)
	}
	r.expectStored("orders", 300)
	if reports.Load() == 0 {
		t.Fatal("no backlog reported while 300 messages waited for batches of 16")
	}

	// Caught up: single messages published one at a time, each stored
	// before the next, leave nothing behind them.
	p, err = NewPipeline(r.js, r.store, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitStored := func(n uint64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for p.Status().Stored < n {
			if time.Now().After(deadline) {
				t.Fatalf("stored %d of %d", p.Status().Stored, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	before := reports.Load()
	for i := range 5 {
		if _, err := r.js.Publish(context.Background(), "aof.ingest.single", []byte("one")); err != nil {
			t.Fatal(err)
		}
		waitStored(uint64(i + 1))
	}
	if got := reports.Load() - before; got != 0 {
		t.Fatalf("%d backlog reports for messages published one at a time into an idle pipeline", got)
	}
}
