package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// noQuota points the cgroup files at ones that say "no quota".
func noQuota(t *testing.T) {
	dir := t.TempDir()
	v2 := filepath.Join(dir, "cpu.max")
	if err := os.WriteFile(v2, []byte("max 100000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	saved1, saved2 := cgroupV1CFSQuota, cgroupV2CPUMax
	cgroupV2CPUMax, cgroupV1CFSQuota = v2, filepath.Join(dir, "absent")
	t.Cleanup(func() { cgroupV1CFSQuota, cgroupV2CPUMax = saved1, saved2 })
}

func TestEnsureProcsKeepsGoProcessorsAboveTheCompressionWorkers(t *testing.T) {
	noQuota(t)
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

func TestEnsureProcsLeavesAQuotaToTheRuntime(t *testing.T) {
	t.Setenv("GOMAXPROCS", "")
	saved := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(saved)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, c := range []struct{ v2, v1 string }{
		{v2: "100000 100000\n"}, // cgroup v2, one CPU
		{v1: "50000\n"},         // cgroup v1, half a CPU
	} {
		dir := t.TempDir()
		saved1, saved2 := cgroupV1CFSQuota, cgroupV2CPUMax
		cgroupV2CPUMax, cgroupV1CFSQuota = filepath.Join(dir, "cpu.max"), filepath.Join(dir, "cpu.cfs_quota_us")
		if c.v2 != "" {
			os.WriteFile(cgroupV2CPUMax, []byte(c.v2), 0o644)
		}
		if c.v1 != "" {
			os.WriteFile(cgroupV1CFSQuota, []byte(c.v1), 0o644)
		}
		runtime.GOMAXPROCS(1)
		ensureProcs(2, log)
		if got := runtime.GOMAXPROCS(0); got != 1 {
			t.Errorf("quota %q%q: GOMAXPROCS raised to %d", c.v2, c.v1, got)
		}
		cgroupV1CFSQuota, cgroupV2CPUMax = saved1, saved2
	}
}
