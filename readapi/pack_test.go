package readapi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"reflect"
	"strings"
	"testing"
)

func samplePack(t testing.TB) ([]PackRecord, []byte) {
	t.Helper()
	recs := []PackRecord{
		{Offset: 7, Seq: 100, TimeMS: 1764633600123, Subject: []byte("aof.ingest.orders"),
			Header: []byte("NATS/1.0\r\nTraceparent: 00-abc-def-01\r\n\r\n"), Body: []byte("hello")},
		{Offset: 8, Seq: 101, TimeMS: 1764633600124, Subject: []byte("aof.ingest.orders.eu"), Body: []byte{}},
		{Offset: 9, Seq: 105, TimeMS: -1, Raw: true, Body: []byte{0, 1, 2, 0xff}},
	}
	var w PackWriter
	w.Reset()
	for _, r := range recs {
		if err := w.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	return recs, bytes.Clone(w.Bytes())
}

// TestPackRoundTrips: what a writer packs is what a reader gets, field for
// field, in order.
func TestPackRoundTrips(t *testing.T) {
	recs, b := samplePack(t)
	got, err := DecodePack(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recs) {
		t.Fatalf("decoded %d records, want %d", len(got), len(recs))
	}
	for i := range recs {
		want := recs[i]
		g := got[i]
		// An empty subject, header or body decodes as an empty slice.
		if g.Offset != want.Offset || g.Seq != want.Seq || g.TimeMS != want.TimeMS || g.Raw != want.Raw ||
			!bytes.Equal(g.Subject, want.Subject) || !bytes.Equal(g.Header, want.Header) || !bytes.Equal(g.Body, want.Body) {
			t.Errorf("record %d: got %+v, want %+v", i, g, want)
		}
	}
	if want := len(b) - packHeaderBytes; want != 3*PackRecordOverhead+len("aof.ingest.orders")+len(recs[0].Header)+5+len("aof.ingest.orders.eu")+4 {
		t.Errorf("pack of %d bytes after its header does not match the format's sizes", want)
	}
}

// TestPackWriterResetStartsAnEmptyPack: a reused writer carries nothing of
// the pack before, and an empty pack is valid.
func TestPackWriterResetStartsAnEmptyPack(t *testing.T) {
	var w PackWriter
	w.Reset()
	if err := w.Add(PackRecord{Offset: 1, Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	_ = w.Bytes()
	w.Reset()
	if w.Count() != 0 || w.BodyBytes() != 0 || w.Len() != packHeaderBytes {
		t.Fatalf("after Reset: count %d, body %d, len %d", w.Count(), w.BodyBytes(), w.Len())
	}
	got, err := DecodePack(w.Bytes(), nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("empty pack: %d records, %v", len(got), err)
	}
}

// TestDecodePackRefusesDamage: every way a pack can be wrong is an
// ErrPack naming what is wrong, and nothing of the pack is returned.
func TestDecodePackRefusesDamage(t *testing.T) {
	_, good := samplePack(t)
	resum := func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b[packHeaderBytes:], castagnoli))
		return b
	}
	cases := []struct {
		name   string
		damage func([]byte) []byte
		want   string
	}{
		{"short", func(b []byte) []byte { return b[:5] }, "under the 12-byte header"},
		{"version", func(b []byte) []byte { b[0] = 2; return b }, "version 2"},
		{"reserved", func(b []byte) []byte { b[2] = 1; return b }, "reserved"},
		{"flipped body bit", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, "checksum"},
		{"truncated", func(b []byte) []byte { return resum(b[:len(b)-1]) }, "exceed"},
		{"trailing", func(b []byte) []byte { return resum(append(b, 0)) }, "after the last"},
		{"count too high", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[4:], 4); return b }, "record 3 of 4"},
		{"count impossible", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[4:], 1<<30); return b }, "cannot fit"},
		{"unknown flag", func(b []byte) []byte { b[packHeaderBytes+24] = 2; return resum(b) }, "unknown flags"},
		{"raw with subject", func(b []byte) []byte { b[packHeaderBytes+24] = PackFlagRaw; return resum(b) }, "raw record"},
		{"offsets not increasing", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[packHeaderBytes:], 8)
			return resum(b)
		}, "not after"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prev := []PackRecord{{Offset: 1}}
			got, err := DecodePack(c.damage(bytes.Clone(good)), prev)
			if !errors.Is(err, ErrPack) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want ErrPack with %q", err, c.want)
			}
			if !reflect.DeepEqual(got, prev) {
				t.Fatalf("a refused pack changed dst: %+v", got)
			}
		})
	}
}

// TestDecodedRecordsDoNotOverlap: a record's slices are capped at their
// length, so appending to one never writes over the next.
func TestDecodedRecordsDoNotOverlap(t *testing.T) {
	_, b := samplePack(t)
	got, err := DecodePack(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(got[0].Body, "XXXXXXXX"...)
	_ = append(got[0].Subject, "XXXXXXXX"...)
	again, err := DecodePack(b, nil)
	if err != nil {
		t.Fatalf("the pack changed under an append to a decoded body: %v", err)
	}
	if !bytes.Equal(again[1].Subject, []byte("aof.ingest.orders.eu")) {
		t.Fatalf("record 1's subject is now %q", again[1].Subject)
	}
}

// FuzzDecodePack: any bytes decode to records or to ErrPack, never a
// panic, and what decodes packs again to the same bytes.
func FuzzDecodePack(f *testing.F) {
	_, good := samplePack(f)
	f.Add(good)
	var w PackWriter
	w.Reset()
	f.Add(bytes.Clone(w.Bytes()))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := DecodePack(b, nil)
		if err != nil {
			if !errors.Is(err, ErrPack) {
				t.Fatalf("error %v is not ErrPack", err)
			}
			if recs != nil {
				t.Fatalf("a refused pack returned %d records", len(recs))
			}
			return
		}
		var w PackWriter
		w.Reset()
		for _, r := range recs {
			if err := w.Add(r); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(w.Bytes(), b) {
			t.Fatalf("re-encoding a decoded pack gives other bytes")
		}
	})
}
