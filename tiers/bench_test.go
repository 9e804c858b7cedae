package tiers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/minio/minio-go/v7"

	"github.com/bop-aof/aof/integration/harness"
	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/tiers/segment"
	"github.com/bop-aof/aof/tiers/tier2"
)

// benchWait polls cond every 10 ms for up to limit.
func benchWait(b *testing.B, what string, limit time.Duration, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var benchWords = strings.Fields(`order created updated shipped cancelled customer
warehouse eu-west-1 us-east-2 priority standard express sku quantity price currency
EUR USD discount coupon gift status pending paid refunded address street city`)

// jsonPayload returns a JSON-like record of 200 B to 2 KiB: field names
// repeat across records and values come from a small vocabulary, so it
// compresses the way event streams do (about 4:1 at zstd level 3).
func jsonPayload(rng *rand.Rand, i int) []byte {
	size := 200 + rng.IntN(2048-200)
	var buf bytes.Buffer
	fmt.Fprintf(&buf, `{"id":%d,"ts":%d,"customer":"c-%05d","event":"%s","amount":%d.%02d,"tags":[`,
		i, 1700000000000+int64(i)*13, rng.IntN(50000), benchWords[rng.IntN(len(benchWords))], rng.IntN(10000), rng.IntN(100))
	for buf.Len() < size-40 {
		fmt.Fprintf(&buf, `"%s-%d",`, benchWords[rng.IntN(len(benchWords))], rng.IntN(100))
	}
	buf.WriteString(`"end"],"note":"`)
	for buf.Len() < size-2 {
		buf.WriteByte('a' + byte(rng.IntN(26)))
	}
	buf.WriteString(`"}`)
	return buf.Bytes()
}

// BenchmarkHydrate64MiBSegment times Store.Hydrate of a 64 MiB segment
// (download from versitygw into Tier 1 with its crc64 check and artifact
// verification) against the baseline of a plain minio-go GetObject of the
// same object read to the end plus a full zstd decompression of it.
// Reported: hydrate_ms, baseline_ms (GET + decompress), get_ms (GET only)
// and ratio = hydrate_ms / baseline_ms (target <= 1.5).
func BenchmarkHydrate64MiBSegment(b *testing.B) {
	srv := harness.StartS3(b)
	ctx := context.Background()
	c, err := tier2.New(ctx, tier2.Options{Endpoint: srv.Endpoint, Bucket: srv.Bucket, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		b.Fatal(err)
	}
	s, err := Open(ctx, Options{Root: b.TempDir(), SegmentTargetBytes: 80 << 20, Tier2: c})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const stream = "hyd"
	rng := rand.New(rand.NewPCG(1, 2))
	var total int64
	for i := 0; total < 64<<20; {
		batch := make([]Record, 0, 256)
		for range 256 {
			p := jsonPayload(rng, i)
			batch = append(batch, Record{Payload: p, ExtID: uint64(i + 1)})
			total += int64(len(p))
			i++
		}
		if err := s.AppendDurable(ctx, stream, batch); err != nil {
			b.Fatal(err)
		}
	}
	id, err := s.Seal(ctx, stream, false)
	if err != nil {
		b.Fatal(err)
	}
	benchWait(b, "the segment uploaded", 2*time.Minute, func() bool {
		for _, st := range s.Segments(stream) {
			if st.Segment == id {
				return st.InTier2
			}
		}
		return false
	})
	var st SegmentStatus
	for _, x := range s.Segments(stream) {
		if x.Segment == id {
			st = x
		}
	}
	if segs := s.Segments(stream); len(segs) != 2 {
		b.Fatalf("want one sealed 64 MiB segment and the active one, got %d segments", len(segs))
	}

	// The artifact decompresses to the whole segment file, footer included.
	fi, err := os.Stat(filepath.Join(s.Root(), "tier0", stream, segment.FileName(id)))
	if err != nil {
		b.Fatal(err)
	}
	fileBytes := fi.Size()
	mc := srv.Client(b)
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		b.Fatal(err)
	}
	defer dec.Close()
	baseline := func() (get, all time.Duration) {
		start := time.Now()
		obj, err := mc.GetObject(ctx, srv.Bucket, st.Tier2Key, minio.GetObjectOptions{})
		if err != nil {
			b.Fatal(err)
		}
		data, err := io.ReadAll(obj)
		obj.Close()
		if err != nil {
			b.Fatal(err)
		}
		get = time.Since(start)
		if err := dec.Reset(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, dec)
		if err != nil {
			b.Fatal(err)
		}
		if n != fileBytes {
			b.Fatalf("decompressed %d bytes, segment file has %d", n, fileBytes)
		}
		return get, time.Since(start)
	}

	var hyd, base, get time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := evictIdle(ctx, s, stream, id); err != nil {
			b.Fatal(err)
		}
		g, a := baseline()
		get += g
		base += a
		b.StartTimer()
		start := time.Now()
		if err := s.Hydrate(ctx, stream, id); err != nil {
			b.Fatal(err)
		}
		hyd += time.Since(start)
	}
	b.StopTimer()
	if !s.Segments(stream)[0].InTier1 {
		b.Fatal("segment not in tier 1 after Hydrate")
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(ms(hyd), "hydrate_ms")
	b.ReportMetric(ms(base), "baseline_ms")
	b.ReportMetric(ms(get), "get_ms")
	b.ReportMetric(ms(hyd)/ms(base), "ratio")
	b.ReportMetric(float64(fileBytes)/(1<<20), "segment_MiB")
	b.ReportMetric(float64(st.CompressedBytes)/(1<<20), "object_MiB")
}

// noSyncFS is the real file system with fsync turned into a no-op. It is
// for building large benchmark fixtures fast, never for what is measured.
type noSyncFS struct{ vfs.FS }

type noSyncFile struct{ vfs.File }

func (noSyncFile) Sync() error { return nil }

func (f noSyncFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return noSyncFile{file}, nil
}

func (noSyncFS) SyncDir(string) error { return nil }

// BenchmarkBootWith10000Segments times tiers.Open of a data root holding
// one stream of 10,000 sealed segments (each compressed into Tier 1),
// against the baseline of listing the store's directories and reading
// every manifest chunk file, which any boot must do. Reported: boot_ms and
// baseline_ms with ratio, then boot_snapshot_ms with a manifest snapshot
// taken before the close (replay of the snapshot plus a short tail).
func BenchmarkBootWith10000Segments(b *testing.B) {
	const segments = 10000
	const stream = "boot"
	root := b.TempDir()
	ctx := context.Background()
	setup := Options{Root: root, FS: noSyncFS{vfs.Default}, SegmentTargetBytes: 1 << 20, CompressionWorkers: 2}
	s, err := Open(ctx, setup)
	if err != nil {
		b.Fatal(err)
	}
	for i := range segments {
		recs := []Record{{Payload: []byte(fmt.Sprintf("seg %d first", i)), ExtID: uint64(2*i + 1)},
			{Payload: []byte(fmt.Sprintf("seg %d second", i)), ExtID: uint64(2*i + 2)}}
		if err := s.AppendDurable(ctx, stream, recs); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Seal(ctx, stream, false); err != nil {
			b.Fatal(err)
		}
	}
	benchWait(b, "10,000 segments compressed", 5*time.Minute, func() bool {
		n := 0
		for _, st := range s.Segments(stream) {
			if st.InTier1 {
				n++
			}
		}
		return n == segments
	})
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}

	boot := func() time.Duration {
		start := time.Now()
		s, err := Open(ctx, Options{Root: root})
		d := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if n := len(s.Segments(stream)); n != segments+1 {
			b.Fatalf("booted with %d segments, want %d", n, segments+1)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		return d
	}
	baseline := func() time.Duration {
		start := time.Now()
		for _, d := range []string{"tier0", "tier1", "manifest"} {
			if _, err := os.ReadDir(filepath.Join(root, d, stream)); err != nil {
				b.Fatal(err)
			}
		}
		mdir := filepath.Join(root, "manifest", stream)
		entries, err := os.ReadDir(mdir)
		if err != nil {
			b.Fatal(err)
		}
		chunks := 0
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".mlog") || strings.HasSuffix(e.Name(), ".bin") {
				if _, err := os.ReadFile(filepath.Join(mdir, e.Name())); err != nil {
					b.Fatal(err)
				}
				chunks++
			}
		}
		if chunks == 0 {
			b.Fatal("no manifest chunk files")
		}
		return time.Since(start)
	}

	var bootD, baseD time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		baseD += baseline()
		bootD += boot()
	}
	b.StopTimer()

	// The same store with a snapshot of its manifest.
	s, err = Open(ctx, Options{Root: root})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Snapshot(stream); err != nil {
		b.Fatal(err)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	var snapD time.Duration
	for i := 0; i < b.N; i++ {
		snapD += boot()
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(ms(bootD), "boot_ms")
	b.ReportMetric(ms(baseD), "baseline_ms")
	b.ReportMetric(ms(bootD)/ms(baseD), "ratio")
	b.ReportMetric(ms(snapD), "boot_snapshot_ms")
}
