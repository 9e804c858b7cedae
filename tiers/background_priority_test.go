//go:build linux

package tiers

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bop-aof/aof/tiers/tier2/memory"
)

// threadsAtNice counts this process's threads whose nice value is nice.
func threadsAtNice(t *testing.T, nice int) int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, task := range tasks {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%s/stat", task.Name()))
		if err != nil {
			continue // the thread ended meanwhile
		}
		s := string(raw)
		// Field 19 (nice), counted after the command name in parentheses.
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if v, err := strconv.Atoi(f[16]); err == nil && v == nice {
			n++
		}
	}
	return n
}

func TestCompressionAndUploadWorkersRunOnThreadsOfLowerPriority(t *testing.T) {
	before := threadsAtNice(t, BackgroundNice)
	s := openStore(t, Options{Root: t.TempDir(), Tier2: memory.New(), CompressionWorkers: 2, Tier2Concurrency: 3})
	want := before + 2 + 3
	deadline := time.Now().Add(10 * time.Second)
	for threadsAtNice(t, BackgroundNice) < want {
		if time.Now().After(deadline) {
			t.Fatalf("%d threads at nice %d, want %d: the compression and upload workers run at the ingest path's priority",
				threadsAtNice(t, BackgroundNice), BackgroundNice, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Closing the store ends the workers and their threads: no other
	// goroutine inherits the lower priority. One may stay: a worker that
	// happened to lock the process's main thread leaves it parked for
	// good when it exits (the Go runtime never ends the main thread), and
	// nothing runs on it again.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for threadsAtNice(t, BackgroundNice) > before+1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d threads still at nice %d after Close", threadsAtNice(t, BackgroundNice)-before, BackgroundNice)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
