package segment

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"github.com/bop-aof/aof/internal/vfs"
)

// TestChecksum3MatchesStdlib checks the interleaved CRC-32C against
// hash/crc32 for every mix of lengths around the 8-byte steps of its loop,
// including empty buffers and one buffer much longer than the others.
func TestChecksum3MatchesStdlib(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 4096)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	lengths := []int{0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 100, 156, 503, 504, 1052, 4096}
	for _, la := range lengths {
		for _, lb := range lengths {
			for _, lc := range lengths {
				a, b, c := data[:la], data[1:1+min(lb, len(data)-1)], data[3:3+min(lc, len(data)-3)]
				ga, gb, gc := checksum3(a, b, c)
				if wa := crc32.Checksum(a, castagnoli); ga != wa {
					t.Fatalf("len %d/%d/%d: first CRC %08x, want %08x", la, lb, lc, ga, wa)
				}
				if wb := crc32.Checksum(b, castagnoli); gb != wb {
					t.Fatalf("len %d/%d/%d: second CRC %08x, want %08x", la, lb, lc, gb, wb)
				}
				if wc := crc32.Checksum(c, castagnoli); gc != wc {
					t.Fatalf("len %d/%d/%d: third CRC %08x, want %08x", la, lb, lc, gc, wc)
				}
			}
		}
	}
}

// TestAppendChecksumsEveryBatchShape appends batches of 1 to 8 records,
// so every remainder of the three-at-a-time CRC loop occurs, and reads
// every record back through the CRC-checking reader.
func TestAppendChecksumsEveryBatchShape(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(vfs.Default, dir, testHeader(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	total := 0
	for n := 1; n <= 8; n++ {
		recs := make([]Record, n)
		for i := range recs {
			off := w.NextOffset() + uint64(i)
			recs[i] = Record{Payload: payloadFor(off), ExtID: extFor(off)}
		}
		if _, err := w.Append(recs, 1_700_000_000_000); err != nil {
			t.Fatal(err)
		}
		total += n
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, vfs.Default, w.Path()); len(got) != total {
		t.Fatalf("read %d records, want %d", len(got), total)
	}
}

// FuzzChecksum3 compares the interleaved CRC-32C with hash/crc32 on
// arbitrary buffers.
func FuzzChecksum3(f *testing.F) {
	f.Add([]byte("123456789"), []byte{}, []byte("a longer third buffer, over eight bytes"))
	f.Fuzz(func(t *testing.T, a, b, c []byte) {
		ga, gb, gc := checksum3(a, b, c)
		if ga != crc32.Checksum(a, castagnoli) || gb != crc32.Checksum(b, castagnoli) || gc != crc32.Checksum(c, castagnoli) {
			t.Fatalf("checksum3 differs from hash/crc32 for lengths %d/%d/%d", len(a), len(b), len(c))
		}
	})
}
