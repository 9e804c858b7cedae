//go:build !linux

package ingest

import (
	"testing"
	"time"
)

// pinBroker pins nothing where CPU affinity is not available.
func pinBroker(b *testing.B, pid int) string {
	return "a separate process (not pinned: no CPU affinity on this system)"
}

// syncFS has nothing to flush ahead of a phase here.
func syncFS() {}

// processCPU is not measured here: the per-message figures read 0.
func processCPU() (user, sys time.Duration) { return 0, 0 }
