package main

import (
	"log/slog"
	"os"
	"runtime"
)

// ensureProcs keeps GOMAXPROCS at least two above the compression
// workers, unless the operator set GOMAXPROCS. The workers run on threads
// of their own at a lower OS priority (tiers, backgroundNice) so that on
// a busy CPU the kernel runs ingest first; but with no more Go processors
// than workers, the workers can hold them all while ingest's goroutines
// wait their turn inside the Go scheduler, where OS priority counts for
// nothing. With few CPUs (a container limited to one) this runs more
// threads than CPUs, and the kernel shares the CPUs by priority.
func ensureProcs(workers int, log *slog.Logger) {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	have, want := runtime.GOMAXPROCS(0), workers+2
	if have >= want {
		return
	}
	runtime.GOMAXPROCS(want)
	log.Info("gomaxprocs_raised", "from", have, "to", want,
		"reason", "more Go processors than compression workers, whose threads run at a lower OS priority than ingest")
}
