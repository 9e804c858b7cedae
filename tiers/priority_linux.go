package tiers

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// runLowered runs work on an OS thread of its own at nice backgroundNice
// and returns when work does. The goroutine that runs work stays locked to
// its thread to the end, and the runtime ends a thread whose locked
// goroutine ends, so no other goroutine ever runs at the lowered priority.
// failed is told when the priority cannot be set; work then runs at the
// process's priority.
//
// The process's main thread is never lowered: the runtime parks it for
// good instead of ending it, and a nice value cannot be raised again
// without privilege, so `ps` would show the whole process lowered. When
// this goroutine finds itself on the main thread, it holds the thread
// while work starts, locked, on another one.
func runLowered(work func(), failed func(error)) {
	runtime.LockOSThread()
	if unix.Gettid() != unix.Getpid() {
		lowerLocked(failed)
		work()
		return
	}
	started, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		// Not the main thread: the goroutine that started this one holds
		// it until this one is locked.
		runtime.LockOSThread()
		close(started)
		lowerLocked(failed)
		work()
	}()
	<-started
	runtime.UnlockOSThread()
	<-finished
}

// lowerLocked lowers the priority of the calling goroutine's locked thread.
func lowerLocked(failed func(error)) {
	if err := unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), backgroundNice); err != nil {
		failed(err)
	}
}

// threadNice is the calling thread's nice value, for tests.
func threadNice() (int, error) {
	// The raw getpriority(2) returns 20 - nice, to stay positive.
	p, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
	return 20 - p, err
}
