package ingest

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pinBroker puts the broker process on CPU 0 and this process on the
// other CPUs, and says what it did.
func pinBroker(b *testing.B, pid int) string {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil || all.Count() < 2 {
		return "a separate process (not pinned: fewer than 2 CPUs)"
	}
	var broker, rest unix.CPUSet
	first := -1
	for c := 0; c < 1024; c++ {
		if !all.IsSet(c) {
			continue
		}
		if first < 0 {
			first = c
			broker.Set(c)
		} else {
			rest.Set(c)
		}
	}
	setAffinity(b, pid, &broker)
	setAffinity(b, os.Getpid(), &rest)
	// Give this process its CPUs back when the benchmark ends: the ones
	// after it must not run on a single CPU with GOMAXPROCS set for all.
	b.Cleanup(func() { setAffinity(b, os.Getpid(), &all) })
	return fmt.Sprintf("a separate process pinned to CPU %d, the benchmark on the other %d", first, rest.Count())
}

// setAffinity sets the CPUs of every thread of process pid: affinity is
// per thread on Linux.
func setAffinity(b *testing.B, pid int, set *unix.CPUSet) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, t := range tasks {
		tid, _ := strconv.Atoi(t.Name())
		if err := unix.SchedSetaffinity(tid, set); err != nil {
			b.Fatalf("set the CPUs of thread %d: %v", tid, err)
		}
	}
}

// syncFS writes dirty pages back before a timed phase.
func syncFS() { unix.Sync() }

// processCPU is the process's user and system CPU time so far.
func processCPU() (user, sys time.Duration) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}
