package main

import (
	"io"
	"log/slog"
	"runtime"
	"testing"
)

func TestEnsureProcsKeepsGoProcessorsAboveTheCompressionWorkers(t *testing.T) {
	t.Setenv("GOMAXPROCS", "") // unset for ensureProcs: the operator did not choose
	saved := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(saved)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	runtime.GOMAXPROCS(1)
	ensureProcs(2, log)
	if got := runtime.GOMAXPROCS(0); got != 4 {
		t.Fatalf("GOMAXPROCS %d with 2 compression workers on one processor, want 4", got)
	}
	runtime.GOMAXPROCS(8)
	ensureProcs(2, log)
	if got := runtime.GOMAXPROCS(0); got != 8 {
		t.Fatalf("GOMAXPROCS lowered from 8 to %d", got)
	}

	// An operator's GOMAXPROCS is left alone.
	t.Setenv("GOMAXPROCS", "1")
	runtime.GOMAXPROCS(1)
	ensureProcs(2, log)
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Fatalf("GOMAXPROCS=1 set by the operator became %d", got)
	}
}
