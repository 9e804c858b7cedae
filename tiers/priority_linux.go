package tiers

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// lowerThreadPriority gives the calling goroutine an OS thread of its own
// at nice backgroundNice for the rest of the goroutine's life: when the
// goroutine ends, still locked, the runtime ends the thread with it, so no
// other goroutine ever runs at the lowered priority. The thread stays
// locked even when the priority cannot be set (the error says why).
func lowerThreadPriority() error {
	runtime.LockOSThread()
	return unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), backgroundNice)
}

// threadNice is the calling thread's nice value, for tests.
func threadNice() (int, error) {
	// The raw getpriority(2) returns 20 - nice, to stay positive.
	p, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
	return 20 - p, err
}
