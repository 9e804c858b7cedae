package segment

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bop-aof/aof/internal/vfs"
)

const (
	benchSyncEvery   = 1 << 20  // fsync cadence of both sides (1 MiB)
	benchBatch       = 256      // records per Append, the gateway's largest batch
	benchSegmentSize = 64 << 20 // roll to a new file at this size, as a store would
)

var benchPayloadSizes = []struct {
	name string
	size int
}{{"128B", 128}, {"1KiB", 1 << 10}, {"4KiB", 4 << 10}}

// benchBaseline holds, per payload size, the baseline's time per record
// measured earlier in the same run, for the segment side's ratio.
var benchBaseline = struct {
	sync.Mutex
	elapsed map[string]time.Duration
	n       map[string]int
}{elapsed: map[string]time.Duration{}, n: map[string]int{}}

// BenchmarkAppendGroupCommit measures the segment writer against a
// baseline, paired per payload size and run in the same process:
//
//   - <size>/baseline gathers each record's bytes (a 36-byte header and the
//     payload) into a buffer, and every benchSyncEvery bytes writes it with
//     one os.File.Write and fsyncs: the least any writer of these bytes
//     does, without encoding or checksums.
//
//   - <size>/segment appends the same records through Writer.Append in
//     batches of benchBatch and calls Writer.Sync every benchSyncEvery
//     bytes, so the same bytes reach the file with the same fsync cadence.
//
//   - <size>/interleaved does both in one loop, alternating whole group
//     commits between a segment writer and a raw file and timing each
//     side, so both see the same disk. fsync latency on a shared machine
//     drifts by several times within seconds, which makes the ratio of two
//     separately timed runs swing; this one is the steady figure.
//
// One iteration is one record (on each side for interleaved). The segment
// and interleaved sides report "baseline-ratio": baseline time per record
// divided by the segment writer's (1 means as fast as the baseline); the
// issue's target is at least 0.85 with at most one allocation per record.
func BenchmarkAppendGroupCommit(b *testing.B) {
	for _, ps := range benchPayloadSizes {
		b.Run(ps.name, func(b *testing.B) {
			b.Run("baseline", func(b *testing.B) { benchBaselineWrite(b, ps.name, ps.size) })
			b.Run("segment", func(b *testing.B) { benchSegmentWrite(b, ps.name, ps.size) })
			b.Run("interleaved", func(b *testing.B) { benchInterleaved(b, ps.size) })
		})
	}
}

// benchInterleaved alternates group commits of benchSyncEvery bytes between
// the baseline and the segment writer, flipping which goes first each time.
func benchInterleaved(b *testing.B, size int) {
	dir := b.TempDir()
	recSize := RecordHeaderSize + size
	payload := make([]byte, size)
	var hdr [RecordHeaderSize]byte
	batch := make([]Record, benchBatch)
	for i := range batch {
		batch[i] = Record{Payload: payload}
	}
	chunk := make([]byte, 0, benchSyncEvery+recSize)
	perCommit := (benchSyncEvery + recSize - 1) / recSize

	id := uint64(1)
	w, err := Create(vfs.Default, dir, Header{SegmentID: id})
	if err != nil {
		b.Fatal(err)
	}
	openRaw := func() *os.File {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%d.raw", id)), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		return f
	}
	f := openRaw()
	rawSize := 0
	ext := uint64(0)

	baseline := func(n int) {
		for range n {
			chunk = append(chunk, hdr[:]...)
			chunk = append(chunk, payload...)
		}
		if _, err := f.Write(chunk); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		rawSize += len(chunk)
		chunk = chunk[:0]
	}
	segment := func(n int) {
		for n > 0 {
			recs := batch[:min(n, benchBatch)]
			for i := range recs {
				ext++
				recs[i].ExtID = ext
			}
			if _, err := w.Append(recs, 1); err != nil {
				b.Fatal(err)
			}
			n -= len(recs)
		}
		if err := w.Sync(); err != nil {
			b.Fatal(err)
		}
	}

	var tBase, tSeg time.Duration
	b.SetBytes(int64(2 * recSize))
	b.ReportAllocs()
	b.ResetTimer()
	for done, round := 0, 0; done < b.N; round++ {
		n := min(perCommit, b.N-done)
		t0 := time.Now()
		if round%2 == 0 {
			baseline(n)
			t1 := time.Now()
			segment(n)
			tBase, tSeg = tBase+t1.Sub(t0), tSeg+time.Since(t1)
		} else {
			segment(n)
			t1 := time.Now()
			baseline(n)
			tSeg, tBase = tSeg+t1.Sub(t0), tBase+time.Since(t1)
		}
		done += n
		if w.DurableBytes() >= benchSegmentSize {
			b.StopTimer()
			w.Close()
			os.Remove(w.Path())
			f.Close()
			os.Remove(f.Name())
			id++
			if w, err = Create(vfs.Default, dir, Header{SegmentID: id}); err != nil {
				b.Fatal(err)
			}
			f, rawSize = openRaw(), 0
			b.StartTimer()
		}
	}
	b.StopTimer()
	w.Close()
	f.Close()
	if tSeg > 0 {
		b.ReportMetric(float64(tBase)/float64(tSeg), "baseline-ratio")
		b.ReportMetric(float64(tSeg)/float64(b.N), "segment-ns/rec")
		b.ReportMetric(float64(tBase)/float64(b.N), "baseline-ns/rec")
	}
}

func benchSegmentWrite(b *testing.B, sizeName string, size int) {
	dir := b.TempDir()
	payload := make([]byte, size)
	batch := make([]Record, benchBatch)
	for i := range batch {
		batch[i] = Record{Payload: payload}
	}
	id := uint64(1)
	w, err := Create(vfs.Default, dir, Header{SegmentID: id})
	if err != nil {
		b.Fatal(err)
	}
	recSize := int64(RecordHeaderSize + size)
	var pending int64 // bytes appended since the last Sync, counted here so the loop measures Append and Sync only
	ext := uint64(0)
	b.SetBytes(recSize)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(benchBatch, b.N-done, int((benchSyncEvery-pending+recSize-1)/recSize))
		recs := batch[:n]
		for i := range recs {
			ext++
			recs[i].ExtID = ext
		}
		if _, err := w.Append(recs, 1); err != nil {
			b.Fatal(err)
		}
		done += n
		if pending += int64(n) * recSize; pending >= benchSyncEvery {
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

	benchBaseline.Lock()
	base, baseN := benchBaseline.elapsed[sizeName], benchBaseline.n[sizeName]
	benchBaseline.Unlock()
	if baseN > 0 && b.Elapsed() > 0 {
		perRecBase := float64(base) / float64(baseN)
		perRec := float64(b.Elapsed()) / float64(b.N)
		b.ReportMetric(perRecBase/perRec, "baseline-ratio")
	}
}

func benchBaselineWrite(b *testing.B, sizeName string, size int) {
	dir := b.TempDir()
	recSize := RecordHeaderSize + size
	var hdr [RecordHeaderSize]byte
	payload := make([]byte, size)
	chunk := make([]byte, 0, benchSyncEvery+benchBatch*recSize)
	id := 1
	open := func() *os.File {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%d.raw", id)), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		return f
	}
	f := open()
	size64 := 0
	flush := func() {
		if _, err := f.Write(chunk); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		size64 += len(chunk)
		chunk = chunk[:0]
	}
	b.SetBytes(int64(recSize))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		chunk = append(chunk, hdr[:]...)
		chunk = append(chunk, payload...)
		if len(chunk) >= benchSyncEvery {
			flush()
			if size64 >= benchSegmentSize {
				b.StopTimer()
				f.Close()
				os.Remove(f.Name())
				id++
				f, size64 = open(), 0
				b.StartTimer()
			}
		}
	}
	if len(chunk) > 0 {
		flush()
	}
	b.StopTimer()
	f.Close()

	// Ramp-up runs of a few iterations say little; keep the runs that
	// lasted long enough to span many fsyncs.
	if b.Elapsed() >= 100*time.Millisecond {
		benchBaseline.Lock()
		benchBaseline.elapsed[sizeName] += b.Elapsed()
		benchBaseline.n[sizeName] += b.N
		benchBaseline.Unlock()
	}
}
