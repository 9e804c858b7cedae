package tier1

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/bop-aof/aof/internal/vfs"
)

var benchSegment = sync.OnceValues(func() ([]byte, []RecordBoundary) {
	// About 64 MiB of mixed JSON-ish records (mostly ~170-byte events, one in
	// ten a multi-KiB blob).
	return fakeSegment(64, 105_000, 1)
})

// BenchmarkCompress compares Compress (seekable, 1 MiB frames at record
// boundaries, level 3) with the zstd CLI at -3 on the same bytes.
func BenchmarkCompress(b *testing.B) {
	seg, bounds := benchSegment()
	b.Run("tier1-seekable-level3", func(b *testing.B) {
		b.SetBytes(int64(len(seg)))
		var art Artifact
		for b.Loop() {
			var err error
			art, err = Compress(discard{}, bytes.NewReader(seg), int64(len(seg)), bounds, CompressOptions{})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(art.Ratio(), "ratio")
		b.ReportMetric(float64(art.CompressedBytes), "compressed_bytes")
		b.ReportMetric(float64(art.Frames), "frames")
	})
	b.Run("zstd-cli-3", func(b *testing.B) {
		b.SetBytes(int64(len(seg)))
		var out []byte
		for b.Loop() {
			cmd := exec.Command("/usr/bin/zstd", "-3", "-c", "-q")
			cmd.Stdin = bytes.NewReader(seg)
			var err error
			if out, err = cmd.Output(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(seg))/float64(len(out)), "ratio")
		b.ReportMetric(float64(len(out)), "compressed_bytes")
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkReadRecord compares serving one record from an artifact
// (decode its frame) with decompressing the whole artifact to find it.
func BenchmarkReadRecord(b *testing.B) {
	seg, bounds := benchSegment()
	path := filepath.Join(b.TempDir(), "seg.zst")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := Compress(f, bytes.NewReader(seg), int64(len(seg)), bounds, CompressOptions{}); err != nil {
		b.Fatal(err)
	}
	f.Close()
	pick := func(i int) RecordBoundary { return bounds[(i*7919)%len(bounds)] } // hops between frames

	report := func(b *testing.B, d []time.Duration) {
		slices.Sort(d)
		b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50_us")
		b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), "p99_us")
	}
	b.Run("one-frame", func(b *testing.B) {
		r, err := OpenArtifact(vfs.Default, path)
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		var d []time.Duration
		i := 0
		for b.Loop() {
			rec := pick(i)
			i++
			start := time.Now()
			if _, err := r.ReadRecord(rec.LogicalOffset); err != nil {
				b.Fatal(err)
			}
			d = append(d, time.Since(start))
		}
		report(b, d)
		b.ReportMetric(float64(r.FramesDecoded())/float64(i), "frames/op")
	})
	b.Run("whole-file", func(b *testing.B) {
		dec, _ := zstd.NewReader(nil)
		defer dec.Close()
		var d []time.Duration
		i := 0
		for b.Loop() {
			rec := pick(i)
			i++
			start := time.Now()
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			if err := dec.Reset(f); err != nil {
				b.Fatal(err)
			}
			var all bytes.Buffer
			if _, err := all.ReadFrom(dec); err != nil {
				b.Fatal(err)
			}
			f.Close()
			_ = all.Bytes()[rec.ByteOffset]
			d = append(d, time.Since(start))
		}
		report(b, d)
	})
}
