package tiers

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// nicedThreads counts this process's threads at nice backgroundNice, from
// /proc/self/task/<tid>/stat (field 19 is the nice value).
func nicedThreads(t *testing.T) int {
	t.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*/stat")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread ended meanwhile
		}
		// The command name is in parentheses and may hold spaces: the
		// fields after it start at field 3 (state).
		rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
		f := strings.Fields(rest)
		if nice, err := strconv.Atoi(f[19-3]); err == nil && nice == backgroundNice {
			n++
		}
	}
	return n
}

// settledNicedThreads is nicedThreads once it holds still: threads of
// stores closed by earlier tests end shortly after their workers.
func settledNicedThreads(t *testing.T) int {
	t.Helper()
	n := nicedThreads(t)
	for range 100 {
		time.Sleep(50 * time.Millisecond)
		m := nicedThreads(t)
		if m == n {
			return n
		}
		n = m
	}
	t.Fatalf("the number of threads at nice %d never settled", backgroundNice)
	return 0
}

func TestCompressionWorkersRunOnThreadsOfTheirOwnAtALowerPriority(t *testing.T) {
	before := settledNicedThreads(t)
	s := openStore(t, Options{Root: t.TempDir(), CompressionWorkers: 3})
	waitFor(t, "three compression workers on threads at nice 10", func() bool { return nicedThreads(t)-before == 3 })

	// Fewer workers: the one that leaves takes its thread with it, so no
	// other goroutine ever runs at the lowered priority.
	s.SetCompressionWorkers(1)
	waitFor(t, "one compression thread left at nice 10", func() bool { return nicedThreads(t)-before == 1 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "no thread left at nice 10 after Close", func() bool { return nicedThreads(t) == before })

	// The test's own thread was never lowered.
	if nice, err := threadNice(); err != nil || nice == backgroundNice {
		t.Fatalf("this goroutine's thread is at nice %d (%v)", nice, err)
	}
}

// A worker that starts on the process's main thread moves to a thread of
// its own: the main thread is never lowered, and the work is.
func TestRunLoweredNeverLowersTheMainThread(t *testing.T) {
	for range 5 {
		ran := make(chan int, 1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			runLowered(func() {
				nice, err := threadNice()
				if err != nil {
					t.Error(err)
				}
				if unix.Gettid() == unix.Getpid() {
					t.Error("work ran on the main thread")
				}
				ran <- nice
			}, func(err error) { t.Errorf("priority not set: %v", err) })
		}()
		<-done
		if nice := <-ran; nice != backgroundNice {
			t.Fatalf("work ran at nice %d, want %d", nice, backgroundNice)
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/stat", os.Getpid())); err == nil {
		rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
		if f := strings.Fields(rest); f[19-3] != "0" {
			t.Fatalf("the main thread is at nice %s", f[19-3])
		}
	}
}
