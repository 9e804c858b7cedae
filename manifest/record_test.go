package manifest

import (
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// sampleRecords has one record of every defined type, with every field set.
func sampleRecords() []Record {
	p := []Payload{
		SegmentOpenedPayload{BaseOffset: 1000, Epoch: 3},
		SealSegmentPayload{DurableBytes: 4096, SegmentCRC64: 0xdeadbeefcafef00d, ExtID: 77, CoordinatorWatermark: 76, FlushFailure: true},
		CompressionStartedPayload{JobID: 9},
		CompressionDonePayload{CompressedBytes: 1234, DictionaryID: 5},
		CompressionFailedPayload{Reason: ReasonCodec},
		UploadStartedPayload{Key: "segments/demo/42.zst"},
		UploadDonePayload{Key: "segments/demo/42.zst", ETag: "\"abc123\""},
		UploadFailedPayload{Key: "segments/demo/42.zst", Reason: ReasonAuth},
		Tier2DeleteQueuedPayload{Key: "segments/demo/42.zst"},
		Tier2DeletedPayload{Key: "segments/demo/42.zst"},
		HydrationStartedPayload{SourceTier: 2},
		HydrationDonePayload{ResidentBytes: 8192},
		HydrationFailedPayload{Reason: ReasonMissing},
		LocalEvictedPayload{ReclaimedBytes: 4096},
		SnapshotMarkerPayload{ChunkIndex: 3, ChunkOffset: 144, SnapshotID: 2},
		CustomEventPayload{SchemaID: 0x01020304, Blob: []byte("hello")},
		SegmentBoundsPayload{FirstExtID: 70, LastExtID: 77, FirstAppendMS: 1700000000000, LastAppendMS: 1700000009999},
	}
	out := make([]Record, len(p))
	for i, pl := range p {
		out[i] = Record{Type: pl.RecordType(), Flags: uint16(i), Segment: 42, LogicalOffset: 1000 + uint64(i), TimestampMS: 1700000000000 + int64(i), Payload: pl}
	}
	return out
}

func TestCRC64IsNVME(t *testing.T) {
	if got := CRC64([]byte("123456789")); got != 0xae8b14860a799888 {
		t.Fatalf("CRC64(123456789) = %#x, want 0xae8b14860a799888", got)
	}
}

func TestRecordTypeNames(t *testing.T) {
	for i, r := range sampleRecords() {
		if int(r.Type) != i {
			t.Fatalf("sample %d has type %d", i, r.Type)
		}
		if got := r.Type.String(); strings.HasPrefix(got, "Unknown") || got != recordTypeNames[i] {
			t.Errorf("type %d String() = %q", i, got)
		}
	}
	if got := RecordType(99).String(); got != "Unknown(99)" {
		t.Errorf("RecordType(99) = %q", got)
	}
}

func TestRecordRoundTripEveryType(t *testing.T) {
	for _, r := range sampleRecords() {
		t.Run(r.Type.String(), func(t *testing.T) {
			b := AppendRecord([]byte("prefix"), r)
			got, n, err := DecodeRecord(b[6:])
			if err != nil {
				t.Fatal(err)
			}
			if n != len(b)-6 {
				t.Errorf("size %d, want %d", n, len(b)-6)
			}
			if !reflect.DeepEqual(got, r) {
				t.Errorf("round trip:\n got %#v\nwant %#v", got, r)
			}
		})
	}
}

// TestRecordGoldenBytes pins the wire format of every record type: a change
// here breaks every manifest already written and every NATS subscriber.
func TestRecordGoldenBytes(t *testing.T) {
	for _, r := range sampleRecords() {
		t.Run(r.Type.String(), func(t *testing.T) {
			path := filepath.Join("testdata", "golden", r.Type.String()+".hex")
			got := hex.EncodeToString(AppendRecord(nil, r))
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got != strings.TrimSpace(string(want)) {
				t.Errorf("encoding changed:\n got %s\nwant %s", got, want)
			}
			raw, _ := hex.DecodeString(strings.TrimSpace(string(want)))
			dec, _, err := DecodeRecord(raw)
			if err != nil || !reflect.DeepEqual(dec, r) {
				t.Errorf("golden bytes decode to %#v, %v", dec, err)
			}
		})
	}
}

// The header layout spelled out in the package doc, checked field by field
// on one record so the golden files are not the only witness.
func TestRecordHeaderLayout(t *testing.T) {
	r := Record{Type: HydrationDone, Flags: 0x0102, Segment: 7, LogicalOffset: 8, TimestampMS: -1, Payload: HydrationDonePayload{ResidentBytes: 9}}
	b := AppendRecord(nil, r)
	if len(b) != RecordHeaderSize+8 {
		t.Fatalf("len %d", len(b))
	}
	if le.Uint16(b) != 11 || le.Uint16(b[2:]) != 0x0102 || le.Uint32(b[4:]) != 8 ||
		le.Uint64(b[8:]) != 7 || le.Uint64(b[16:]) != 8 || le.Uint64(b[24:]) != ^uint64(0) ||
		le.Uint64(b[32:]) != CRC64(b[40:]) || le.Uint64(b[40:]) != 9 {
		t.Fatalf("header layout wrong: %x", b)
	}
}

func TestDecodeUnknownTypeIsNotAnError(t *testing.T) {
	r := Record{Type: 200, Segment: 1, Payload: UnknownPayload{Type: 200, Raw: []byte{1, 2, 3}}}
	got, n, err := DecodeRecord(AppendRecord(nil, r))
	if err != nil {
		t.Fatal(err)
	}
	if n != RecordHeaderSize+3 || !reflect.DeepEqual(got, r) {
		t.Fatalf("got %#v (%d bytes)", got, n)
	}
	x := NewIndex("s")
	x.Apply(got)
	if x.Unknown != 1 || x.Len() != 0 {
		t.Fatalf("unknown record must be counted and skipped: unknown=%d segments=%d", x.Unknown, x.Len())
	}
}

func TestDecodeRecordRejects(t *testing.T) {
	good := AppendRecord(nil, sampleRecords()[0])
	flipped := append([]byte(nil), good...)
	flipped[RecordHeaderSize] ^= 1
	badLen := AppendRecord(nil, Record{Type: HydrationDone, Payload: UnknownPayload{Type: HydrationDone, Raw: []byte{1, 2, 3}}})
	huge := append([]byte(nil), good...)
	le.PutUint32(huge[4:], MaxPayloadSize+1)
	badBool := AppendRecord(nil, Record{Type: SealSegment, Payload: UnknownPayload{Type: SealSegment, Raw: make([]byte, 33)}})
	badBool[RecordHeaderSize+32] = 2
	le.PutUint64(badBool[32:], CRC64(badBool[RecordHeaderSize:]))
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrShortRecord},
		{"short header", good[:RecordHeaderSize-1], ErrShortRecord},
		{"short payload", good[:len(good)-1], ErrShortRecord},
		{"flipped payload byte", flipped, ErrRecordCRC},
		{"payload length wrong for type", badLen, ErrPayload},
		{"payload_len over limit", huge, ErrPayload},
		{"flush_failure not a bool", badBool, ErrPayload},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, _, err := DecodeRecord(c.b); !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	if err := (Record{Type: UploadDone, Payload: UploadStartedPayload{}}).Validate(); !errors.Is(err, ErrPayload) {
		t.Errorf("payload of another type: %v", err)
	}
	if err := (Record{Type: UploadStarted, Payload: UploadStartedPayload{Key: strings.Repeat("k", 70000)}}).Validate(); !errors.Is(err, ErrPayload) {
		t.Errorf("key over 65535 bytes: %v", err)
	}
	if err := (Record{Type: HydrationDone, Payload: UnknownPayload{Type: HydrationDone, Raw: []byte{1}}}).Validate(); !errors.Is(err, ErrPayload) {
		t.Errorf("raw payload under a known type would not decode at replay: %v", err)
	}
	if err := (Record{Type: SealSegment}).Validate(); err != nil {
		t.Errorf("nil payload is the zero payload: %v", err)
	}
	got, _, err := DecodeRecord(AppendRecord(nil, Record{Type: SealSegment}))
	if err != nil || got.Payload != (SealSegmentPayload{}) {
		t.Errorf("nil payload decodes to %#v, %v", got.Payload, err)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, r := range sampleRecords() {
		f.Add(AppendRecord(nil, r))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := DecodeRecord(b)
		if err != nil {
			return
		}
		if n > len(b) || n < RecordHeaderSize {
			t.Fatalf("size %d of %d bytes", n, len(b))
		}
		// Whatever decodes must re-encode to the same bytes: the format has
		// one encoding per record.
		if got := AppendRecord(nil, r); string(got) != string(b[:n]) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", got, b[:n])
		}
	})
}
