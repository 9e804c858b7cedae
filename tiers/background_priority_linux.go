//go:build linux

package tiers

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// lowerWorkerPriority moves the calling goroutine onto an OS thread of its
// own for as long as it runs and gives that thread the nice value
// BackgroundNice. Linux schedules threads, not processes, so compression
// and uploads then yield the CPU to the ingest path (consume, append,
// fsync, ack) whenever both want it, and still take whatever the ingest
// path leaves, at least about a tenth of a busy CPU at nice 10: Tier 0's
// budget and backpressure bound how far they can fall behind. The thread
// is never given back to the Go scheduler (the goroutine exits locked,
// which ends the thread), so no other goroutine runs at the lower
// priority. It reports whether the priority was lowered.
func lowerWorkerPriority() bool {
	runtime.LockOSThread()
	// PRIO_PROCESS with a thread id sets that thread's nice value only.
	return unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), BackgroundNice) == nil
}
