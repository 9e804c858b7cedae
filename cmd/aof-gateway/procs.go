package main

import (
	"log/slog"
	"os"
	"runtime"
	"strings"
)

// cpuQuotaFiles are where Linux shows the process's cgroup CPU quota:
// cgroup v2's cpu.max ("max 100000" when unlimited) and cgroup v1's
// cpu.cfs_quota_us ("-1" when unlimited). Variables for tests.
var (
	cgroupV2CPUMax   = "/sys/fs/cgroup/cpu.max"
	cgroupV1CFSQuota = "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"
)

// cpuQuota says whether the process runs under a cgroup CPU quota.
func cpuQuota() bool {
	if b, err := os.ReadFile(cgroupV2CPUMax); err == nil {
		f := strings.Fields(string(b))
		return len(f) > 0 && f[0] != "max"
	}
	if b, err := os.ReadFile(cgroupV1CFSQuota); err == nil {
		q := strings.TrimSpace(string(b))
		return q != "" && q != "-1"
	}
	return false
}

// ensureProcs keeps GOMAXPROCS at least two above the compression
// workers, unless the operator set GOMAXPROCS. The workers run on threads
// of their own at a lower OS priority (tiers, backgroundNice) so that on
// a busy CPU the kernel runs ingest first; but with no more Go processors
// than workers, the workers can hold them all while ingest's goroutines
// wait their turn inside the Go scheduler, where OS priority counts for
// nothing. With few CPUs (a container limited to one) this runs more
// threads than CPUs, and the kernel shares the CPUs by priority.
//
// Under a cgroup CPU quota it does nothing: the runtime sizes GOMAXPROCS
// to the quota and follows it, and more threads than the quota would be
// throttled as a whole, ingest's with them.
func ensureProcs(workers int, log *slog.Logger) {
	if os.Getenv("GOMAXPROCS") != "" || cpuQuota() {
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
