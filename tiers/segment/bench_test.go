package segment

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/bop-aof/aof/internal/vfs"
)

const (
	benchSyncEvery   = 1 << 20  // fsync cadence of both benchmarks (1 MiB)
	benchSegmentSize = 64 << 20 // roll to a new file at this size, as a store would
)

var benchPayloadSizes = []struct {
	name string
	size int
}{{"128B", 128}, {"1KiB", 1 << 10}, {"4KiB", 4 << 10}}

// BenchmarkAppendGroupCommit appends one record per iteration through the
// segment writer and syncs every benchSyncEvery bytes. Compare with
// BenchmarkBaselineOSFileWrite, which moves the same bytes with the same
// fsync cadence straight through os.File.
func BenchmarkAppendGroupCommit(b *testing.B) {
	for _, ps := range benchPayloadSizes {
		b.Run(ps.name, func(b *testing.B) {
			dir := b.TempDir()
			recs := []Record{{Payload: make([]byte, ps.size), ExtID: 1}}
			id := uint64(1)
			w, err := Create(vfs.Default, dir, Header{SegmentID: id})
			if err != nil {
				b.Fatal(err)
			}
			recSize := int64(RecordHeaderSize + ps.size)
			var pending int64 // bytes appended since the last Sync, counted here so the loop measures Append and Sync only
			b.SetBytes(int64(RecordHeaderSize + ps.size))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				recs[0].ExtID++
				if _, err := w.Append(recs, 1); err != nil {
					b.Fatal(err)
				}
				if pending += recSize; pending >= benchSyncEvery {
					if err := w.Sync(); err != nil {
						b.Fatal(err)
					}
					pending = 0
					if w.DurableBytes() >= benchSegmentSize {
						b.StopTimer()
						w.Close()
						os.Remove(w.Path())
						id++
						if w, err = Create(vfs.Default, dir, Header{SegmentID: id}); err != nil {
							b.Fatal(err)
						}
						b.StartTimer()
					}
				}
			}
			if err := w.Sync(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			w.Close()
		})
	}
}

// BenchmarkBaselineOSFileWrite is the floor the segment writer is measured
// against: the same record sizes, gathered into one buffer and written with
// a single os.File.Write plus fsync every benchSyncEvery bytes, with no
// encoding or checksums.
func BenchmarkBaselineOSFileWrite(b *testing.B) {
	for _, ps := range benchPayloadSizes {
		b.Run(ps.name, func(b *testing.B) {
			dir := b.TempDir()
			recSize := RecordHeaderSize + ps.size
			chunk := make([]byte, benchSyncEvery+recSize)
			id := 1
			open := func() *os.File {
				f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%d.raw", id)), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
				if err != nil {
					b.Fatal(err)
				}
				return f
			}
			f := open()
			var pending, size int
			flush := func() {
				if _, err := f.Write(chunk[:pending]); err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
				size += pending
				pending = 0
			}
			b.SetBytes(int64(recSize))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				pending += recSize
				if pending >= benchSyncEvery {
					flush()
					if size >= benchSegmentSize {
						b.StopTimer()
						f.Close()
						os.Remove(f.Name())
						id++
						f, size = open(), 0
						b.StartTimer()
					}
				}
			}
			flush()
			b.StopTimer()
			f.Close()
		})
	}
}
