package manifest

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/bop-aof/aof/internal/vfs"
)

// buildHistory writes n records over 10,000 segments, snapshotting after
// snapAt records, and returns the directory.
func buildHistory(b *testing.B, n, snapAt int) string {
	b.Helper()
	dir := b.TempDir()
	l, err := Open(vfs.Default, dir, "demo", Options{})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range n {
		r := randomRecord(rng, i)
		r.Segment = uint64(rng.IntN(10000))
		if _, err := l.Append(r); err != nil {
			b.Fatal(err)
		}
		if i%10000 == 9999 {
			if err := l.Commit(); err != nil {
				b.Fatal(err)
			}
		}
		if i == snapAt-1 {
			if _, err := l.Snapshot(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkReplay measures Open on a 1,000,000-record manifest: full replay
// from chunk 0 (the baseline) against a snapshot covering 99% of the
// records plus the tail. records/s counts records whose effect the rebuilt
// index holds.
func BenchmarkReplay(b *testing.B) {
	const n = 1_000_000
	dir := buildHistory(b, n, n-n/100)
	snaps, _ := filepath.Glob(filepath.Join(dir, snapshotPrefix+"*"))
	run := func(b *testing.B) {
		var records uint64
		for b.Loop() {
			l, err := Open(vfs.Default, dir, "demo", Options{})
			if err != nil {
				b.Fatal(err)
			}
			records = l.idx.Records
			l.Close()
		}
		if records < n {
			b.Fatalf("index holds %d records", records)
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	}
	b.Run("without-snapshot", func(b *testing.B) {
		for _, s := range snaps {
			os.Rename(s, s+".hidden")
		}
		defer func() {
			for _, s := range snaps {
				os.Rename(s+".hidden", s)
			}
		}()
		run(b)
	})
	b.Run("with-snapshot", run)
}
