package tier1

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/bop-aof/aof/internal/vfs"
)

func compressToFile(t *testing.T, seg []byte, bounds []RecordBoundary, opts CompressOptions) (string, Artifact) {
	t.Helper()
	var out bytes.Buffer
	art, err := Compress(&out, bytes.NewReader(seg), int64(len(seg)), bounds, opts)
	if err != nil {
		t.Fatalf("Compress: %v", err)
	}
	if art.CompressedBytes != int64(out.Len()) {
		t.Fatalf("Artifact.CompressedBytes = %d, wrote %d", art.CompressedBytes, out.Len())
	}
	path := filepath.Join(t.TempDir(), "seg.zst")
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, art
}

func TestZstdCLIDecompressesArtifactByteForByte(t *testing.T) {
	seg, bounds := fakeSegment(1, 5000, 1000)
	for _, opts := range []CompressOptions{{}, {FrameBytes: 64 << 10, Level: 1}, {FrameBytes: 16 << 10, Level: 19}} {
		path, art := compressToFile(t, seg, bounds, opts)
		got, err := exec.Command("/usr/bin/zstd", "-d", "-c", path).Output()
		if err != nil {
			t.Fatalf("zstd -d (opts %+v): %v", opts, err)
		}
		if !bytes.Equal(got, seg) {
			t.Fatalf("zstd -d output differs from segment (opts %+v): %d vs %d bytes", opts, len(got), len(seg))
		}
		if art.Frames < 2 && opts.FrameBytes != 0 {
			t.Fatalf("expected several frames with FrameBytes %d, got %d", opts.FrameBytes, art.Frames)
		}
	}
}

func TestFramesAreCutOnlyAtRecordBoundaries(t *testing.T) {
	seg, bounds := fakeSegment(2, 3000, 0)
	const frameBytes = 32 << 10
	path, art := compressToFile(t, seg, bounds, CompressOptions{FrameBytes: frameBytes})
	r, err := OpenArtifact(vfs.Default, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Frames() != art.Frames || r.Size() != int64(len(seg)) {
		t.Fatalf("reader sees %d frames / %d bytes, artifact says %d / %d", r.Frames(), r.Size(), art.Frames, len(seg))
	}
	starts := map[int64]bool{}
	for _, b := range bounds {
		starts[b.ByteOffset] = true
	}
	var next int64
	for i := range r.Frames() {
		fi, err := r.FrameFor(next)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Index != i || fi.DecompressedOffset != next {
			t.Fatalf("frame %d: got %+v, want start %d", i, fi, next)
		}
		if i > 0 && !starts[fi.DecompressedOffset] {
			t.Fatalf("frame %d starts at %d, which is not a record boundary", i, fi.DecompressedOffset)
		}
		// A frame may exceed the target only when it holds a single record.
		if fi.DecompressedSize > frameBytes {
			n := 0
			for _, b := range bounds {
				if b.ByteOffset >= fi.DecompressedOffset && b.ByteOffset < fi.DecompressedOffset+fi.DecompressedSize {
					n++
				}
			}
			if n > 1 && i != r.Frames()-1 {
				t.Fatalf("frame %d is %d bytes (> %d) with %d records", i, fi.DecompressedSize, frameBytes, n)
			}
		}
		next += fi.DecompressedSize
	}
	if next != int64(len(seg)) {
		t.Fatalf("frames cover %d bytes, segment is %d", next, len(seg))
	}
}

func TestOversizedRecordGetsItsOwnFrame(t *testing.T) {
	seg := make([]byte, 100+5000+100)
	for i := range seg {
		seg[i] = byte(i * 7)
	}
	bounds := []RecordBoundary{{10, 1}, {50, 2}, {100, 3}, {5100, 4}, {5150, 5}}
	path, _ := compressToFile(t, seg, bounds, CompressOptions{FrameBytes: 1000})
	r, err := OpenArtifact(vfs.Default, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fi, _ := r.FrameFor(100)
	if fi.DecompressedOffset != 100 || fi.DecompressedSize != 5000 {
		t.Fatalf("big record frame = %+v, want [100, 5100)", fi)
	}
}

func TestReadingOneRecordDecompressesOnlyItsFrame(t *testing.T) {
	seg, bounds := fakeSegment(3, 4000, 500)
	path, art := compressToFile(t, seg, bounds, CompressOptions{FrameBytes: 64 << 10})
	if art.Frames < 10 {
		t.Fatalf("want many frames, got %d", art.Frames)
	}
	r, err := OpenArtifact(vfs.Default, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, i := range []int{2500, 0, len(bounds) - 1} {
		before := r.FramesDecoded()
		b := bounds[i]
		got, err := r.ReadRecord(b.LogicalOffset)
		if err != nil {
			t.Fatalf("ReadRecord(%d): %v", b.LogicalOffset, err)
		}
		end := int64(len(seg))
		if i+1 < len(bounds) {
			end = bounds[i+1].ByteOffset
		}
		if !bytes.Equal(got, seg[b.ByteOffset:end]) {
			t.Fatalf("record %d bytes differ", b.LogicalOffset)
		}
		if d := r.FramesDecoded() - before; d != 1 {
			t.Fatalf("reading record %d decoded %d frames, want 1", b.LogicalOffset, d)
		}
		loc, _ := r.Lookup(b.LogicalOffset)
		fi, _ := r.FrameFor(b.ByteOffset)
		if loc.Frame != fi.Index || loc.ByteOffset != b.ByteOffset {
			t.Fatalf("Lookup(%d) = %+v, frame %d", b.LogicalOffset, loc, fi.Index)
		}
	}
	// A range across frames returns the exact bytes.
	got, err := r.ReadRange(100000, 300000)
	if err != nil || !bytes.Equal(got, seg[100000:400000]) {
		t.Fatalf("ReadRange across frames: err %v, equal %v", err, bytes.Equal(got, seg[100000:400000]))
	}
	if _, err := r.ReadRange(int64(len(seg))-1, 2); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("read past end: %v, want ErrOutOfRange", err)
	}
	if _, err := r.Lookup(499); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("lookup before first record: %v, want ErrOutOfRange", err)
	}
	if rb := r.Records(); len(rb) != len(bounds) || rb[len(rb)-1] != bounds[len(bounds)-1] {
		t.Fatalf("stored record index differs from the boundaries given")
	}
}

func TestDamagedFrameIsReportedWithItsLocation(t *testing.T) {
	seg, bounds := fakeSegment(4, 2000, 0)
	path, _ := compressToFile(t, seg, bounds, CompressOptions{FrameBytes: 32 << 10})
	data, _ := os.ReadFile(path)
	r0, err := OpenArtifact(vfs.Default, path)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := r0.FrameFor(200000)
	r0.Close()
	data[fi.CompressedOffset+fi.CompressedSize/2] ^= 0xff
	os.WriteFile(path, data, 0o644)

	r, err := OpenArtifact(vfs.Default, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = r.ReadRange(200000, 10)
	var ce *CorruptionError
	if !errors.As(err, &ce) || ce.Frame != fi.Index || ce.Offset != fi.CompressedOffset {
		t.Fatalf("got %v, want CorruptionError for frame %d at %d", err, fi.Index, fi.CompressedOffset)
	}
	// Other frames still read.
	if _, err := r.ReadRange(0, 10); err != nil {
		t.Fatalf("undamaged frame: %v", err)
	}
}

func TestCompressRejectsUnorderedBoundaries(t *testing.T) {
	seg := make([]byte, 100)
	for _, bounds := range [][]RecordBoundary{
		{{10, 1}, {10, 2}},
		{{10, 2}, {20, 1}},
		{{10, 1}, {100, 2}},
	} {
		if _, err := Compress(new(bytes.Buffer), bytes.NewReader(seg), 100, bounds, CompressOptions{}); err == nil {
			t.Fatalf("Compress accepted %v", bounds)
		}
	}
}

func TestEmptyRecordListStillRoundTrips(t *testing.T) {
	seg := bytes.Repeat([]byte("header-only "), 1000)
	path, _ := compressToFile(t, seg, nil, CompressOptions{FrameBytes: 4096})
	got, err := exec.Command("/usr/bin/zstd", "-d", "-c", path).Output()
	if err != nil || !bytes.Equal(got, seg) {
		t.Fatalf("zstd -d: %v, equal %v", err, bytes.Equal(got, seg))
	}
	r, err := OpenArtifact(vfs.Default, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, _ := r.ReadRange(5000, 100); !bytes.Equal(got, seg[5000:5100]) {
		t.Fatal("ReadRange differs")
	}
}
