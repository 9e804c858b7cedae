package manifest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// encodeChunk builds a committed chunk file in memory, header generation gen.
func encodeChunk(index, base uint64, gen uint32, recs []Record) []byte {
	var body []byte
	var tail int64
	for _, r := range recs {
		tail = ChunkHeaderSize + int64(len(body))
		body = AppendRecord(body, r)
	}
	h := ChunkHeader{Index: index, BaseRecord: base, RecordCount: uint64(len(recs)), CommittedLen: uint64(len(body)),
		CRC64: CRC64(body), Generation: gen}
	if len(recs) > 0 {
		h.TailOffset = tail
	}
	data := make([]byte, ChunkHeaderSize)
	copy(data[slotOffset(gen):], h.appendSlot(nil))
	return append(data, body...)
}

func chunkSeeds() map[string][]byte {
	recs := sampleRecords()
	unknown := append(recs[:3:3], Record{Type: 77, Payload: UnknownPayload{Type: 77, Raw: []byte("future")}})
	full := encodeChunk(4, 100, 2, recs)
	return map[string][]byte{
		"empty":       encodeChunk(0, 0, 1, nil),
		"all-types":   full,
		"unknown":     encodeChunk(1, 5, 3, unknown),
		"torn-tail":   append(append([]byte(nil), full...), AppendRecord(nil, recs[0])[:17]...),
		"header-only": full[:ChunkHeaderSize],
	}
}

func TestChunkSeedsRead(t *testing.T) {
	h, recs, err := ReadChunk(chunkSeeds()["all-types"])
	if err != nil || h.Index != 4 || h.BaseRecord != 100 || len(recs) != len(sampleRecords()) {
		t.Fatalf("header %+v, %d records, %v", h, len(recs), err)
	}
	r, err := NewChunkReader(chunkSeeds()["torn-tail"])
	if err != nil || r.TornBytes != 17 {
		t.Fatalf("torn tail: %v, %d torn bytes", err, r.TornBytes)
	}
	_, recs, err = ReadChunk(chunkSeeds()["unknown"])
	if err != nil || len(recs) != 4 || recs[3].Record.Type.Known() {
		t.Fatalf("unknown record: %d records, %v", len(recs), err)
	}
}

// TestWriteFuzzCorpus keeps the committed seed corpus in step with the
// format; run with -update after a deliberate format change.
func TestWriteFuzzCorpus(t *testing.T) {
	if !*update {
		for _, name := range []string{"FuzzReadChunk/all-types", "FuzzDecodeRecord/SealSegment", "FuzzDecodeRecord/SegmentBounds"} {
			if _, err := os.Stat(filepath.Join("testdata", "fuzz", name)); err != nil {
				t.Fatalf("seed corpus missing: %v", err)
			}
		}
		return
	}
	write := func(target, name string, b []byte) {
		dir := filepath.Join("testdata", "fuzz", target)
		os.MkdirAll(dir, 0o755)
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, b := range chunkSeeds() {
		write("FuzzReadChunk", name, b)
	}
	for _, r := range sampleRecords() {
		write("FuzzDecodeRecord", r.Type.String(), AppendRecord(nil, r))
	}
}

func FuzzReadChunk(f *testing.F) {
	for _, b := range chunkSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, recs, err := ReadChunk(data)
		if err != nil {
			if _, ok := err.(*IntegrityError); !ok {
				t.Fatalf("error %T is not an *IntegrityError: %v", err, err)
			}
			return
		}
		// Accepted chunks are self-consistent.
		if uint64(len(recs)) != h.RecordCount {
			t.Fatalf("%d records, header says %d", len(recs), h.RecordCount)
		}
		off := int64(ChunkHeaderSize)
		for _, cr := range recs {
			if cr.Offset != off {
				t.Fatalf("record at %d, expected %d", cr.Offset, off)
			}
			if got := AppendRecord(nil, cr.Record); string(got) != string(cr.Raw) {
				t.Fatalf("record at %d re-encodes differently", cr.Offset)
			}
			off += int64(len(cr.Raw))
		}
		if off != h.End() {
			t.Fatalf("records end at %d, committed end %d", off, h.End())
		}
	})
}
