package readapi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// A pack carries many records in one NATS message. A request with
// Pack set is answered with packs instead of one message per record: each
// record then crosses the broker as a few dozen bytes of a larger message
// rather than as a message of its own with six headers, which is what a
// scan spent most of its time on (docs/performance.md, "Reading the
// archive"). A gateway that predates packs ignores the field and answers
// one message per record, so a client asking for packs takes both.
//
// A pack message carries HeaderPack (the pack format's version),
// APIVersionHeader and HeaderStream, never HeaderStatus or HeaderOffset.
// Its body, all integers little-endian:
//
//	pack:   version u8 (PackVersion) | 3 bytes zero | count u32 | crc u32 | count records
//	record: offset u64 | seq u64 | time_ms i64 | flags u8 | subject_len u16 | header_len u32 | body_len u32
//	        | subject | header | body
//
// crc is the CRC-32C (Castagnoli) of every byte after the 12-byte pack
// header. Records come in offset order. time_ms is the append time in
// Unix milliseconds. flags bit 0 (PackFlagRaw) marks a record whose
// stored payload is not a NATS message: body is the payload as stored,
// subject and header are empty; the other bits are zero. header is the
// record's own headers as a NATS header block ("NATS/1.0\r\n", a
// "Name: value\r\n" line per value, "\r\n"), or empty; its names are the
// producer's own, none renamed (HeaderSubject and the others are not
// sent: the fields above carry them).

// HeaderPack marks a pack message; its value is the pack format's version.
const HeaderPack = "Aof-Pack"

// PackVersion is the version of the pack format in this package.
const PackVersion = 1

// PackFlagRaw: the record's payload is not a NATS message envelope.
const PackFlagRaw = 1

const (
	packHeaderBytes = 12
	// PackRecordOverhead is what a record adds to a pack beside its
	// subject, header and body.
	PackRecordOverhead = 8 + 8 + 8 + 1 + 2 + 4 + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// PackRecord is one record in a pack. Decoded, Subject, Header and Body
// alias the pack's bytes.
type PackRecord struct {
	Offset  uint64
	Seq     uint64
	TimeMS  int64
	Raw     bool
	Subject []byte
	Header  []byte // a NATS header block, or empty
	Body    []byte
}

// PackWriter builds one pack at a time; its buffer is reused.
type PackWriter struct {
	buf   []byte
	count int
	body  int64 // bytes of record bodies
}

// Reset empties the pack.
func (w *PackWriter) Reset() {
	if cap(w.buf) < packHeaderBytes {
		w.buf = make([]byte, packHeaderBytes, 64<<10)
	}
	w.buf = w.buf[:packHeaderBytes]
	clear(w.buf)
	w.count, w.body = 0, 0
}

// Add appends r. A subject over 65,535 bytes cannot be stored (NATS
// bounds subjects far below), and is refused.
func (w *PackWriter) Add(r PackRecord) error {
	if len(r.Subject) > 0xFFFF || uint64(len(r.Header)) > 0xFFFFFFFF || uint64(len(r.Body)) > 0xFFFFFFFF {
		return fmt.Errorf("aof read: record %d does not fit a pack: subject %d, header %d, body %d bytes",
			r.Offset, len(r.Subject), len(r.Header), len(r.Body))
	}
	if w.buf == nil {
		w.Reset()
	}
	var fixed [PackRecordOverhead]byte
	binary.LittleEndian.PutUint64(fixed[0:], r.Offset)
	binary.LittleEndian.PutUint64(fixed[8:], r.Seq)
	binary.LittleEndian.PutUint64(fixed[16:], uint64(r.TimeMS))
	if r.Raw {
		fixed[24] = PackFlagRaw
	}
	binary.LittleEndian.PutUint16(fixed[25:], uint16(len(r.Subject)))
	binary.LittleEndian.PutUint32(fixed[27:], uint32(len(r.Header)))
	binary.LittleEndian.PutUint32(fixed[31:], uint32(len(r.Body)))
	w.buf = append(w.buf, fixed[:]...)
	w.buf = append(w.buf, r.Subject...)
	w.buf = append(w.buf, r.Header...)
	w.buf = append(w.buf, r.Body...)
	w.count++
	w.body += int64(len(r.Body))
	return nil
}

// Count is the number of records in the pack.
func (w *PackWriter) Count() int { return w.count }

// Len is the pack's size in bytes so far.
func (w *PackWriter) Len() int {
	if w.buf == nil {
		return packHeaderBytes
	}
	return len(w.buf)
}

// BodyBytes is the sum of the records' body lengths.
func (w *PackWriter) BodyBytes() int64 { return w.body }

// Bytes completes the pack's header and returns it; the slice is valid
// until the next Reset or Add.
func (w *PackWriter) Bytes() []byte {
	if w.buf == nil {
		w.Reset()
	}
	w.buf[0] = PackVersion
	binary.LittleEndian.PutUint32(w.buf[4:], uint32(w.count))
	binary.LittleEndian.PutUint32(w.buf[8:], crc32.Checksum(w.buf[packHeaderBytes:], castagnoli))
	return w.buf
}

// ErrPack reports a pack that is not valid: a sender's bug or a damaged
// message. Nothing of such a pack is used.
var ErrPack = errors.New("aof read: malformed pack")

// DecodePack checks b whole and then appends its records to dst. On an
// error it returns dst unchanged: a pack is used entirely or not at all.
func DecodePack(b []byte, dst []PackRecord) ([]PackRecord, error) {
	if len(b) < packHeaderBytes {
		return dst, fmt.Errorf("%w: %d bytes, under the %d-byte header", ErrPack, len(b), packHeaderBytes)
	}
	if b[0] != PackVersion {
		return dst, fmt.Errorf("%w: version %d; this client reads version %d", ErrPack, b[0], PackVersion)
	}
	if b[1] != 0 || b[2] != 0 || b[3] != 0 {
		return dst, fmt.Errorf("%w: reserved header bytes are not zero", ErrPack)
	}
	count := binary.LittleEndian.Uint32(b[4:])
	if want, got := binary.LittleEndian.Uint32(b[8:]), crc32.Checksum(b[packHeaderBytes:], castagnoli); want != got {
		return dst, fmt.Errorf("%w: checksum %08x, computed %08x", ErrPack, want, got)
	}
	if uint64(count) > uint64(len(b)-packHeaderBytes)/PackRecordOverhead {
		return dst, fmt.Errorf("%w: %d records cannot fit in %d bytes", ErrPack, count, len(b))
	}
	n := len(dst)
	rest := b[packHeaderBytes:]
	for i := uint32(0); i < count; i++ {
		r, tail, err := decodePackRecord(rest)
		if err != nil {
			return dst[:n], fmt.Errorf("%w: record %d of %d: %v", ErrPack, i, count, err)
		}
		if len(dst) > n && r.Offset <= dst[len(dst)-1].Offset {
			return dst[:n], fmt.Errorf("%w: record %d has offset %d, not after %d", ErrPack, i, r.Offset, dst[len(dst)-1].Offset)
		}
		dst, rest = append(dst, r), tail
	}
	if len(rest) != 0 {
		return dst[:n], fmt.Errorf("%w: %d bytes after the last of %d records", ErrPack, len(rest), count)
	}
	return dst, nil
}

func decodePackRecord(b []byte) (PackRecord, []byte, error) {
	if len(b) < PackRecordOverhead {
		return PackRecord{}, nil, fmt.Errorf("%d bytes left, under the %d of a record", len(b), PackRecordOverhead)
	}
	r := PackRecord{
		Offset: binary.LittleEndian.Uint64(b[0:]),
		Seq:    binary.LittleEndian.Uint64(b[8:]),
		TimeMS: int64(binary.LittleEndian.Uint64(b[16:])),
	}
	flags := b[24]
	if flags&^PackFlagRaw != 0 {
		return r, nil, fmt.Errorf("unknown flags %#x", flags)
	}
	r.Raw = flags&PackFlagRaw != 0
	sl := uint64(binary.LittleEndian.Uint16(b[25:]))
	hl := uint64(binary.LittleEndian.Uint32(b[27:]))
	bl := uint64(binary.LittleEndian.Uint32(b[31:]))
	b = b[PackRecordOverhead:]
	if sl+hl+bl > uint64(len(b)) {
		return r, nil, fmt.Errorf("subject %d + header %d + body %d bytes exceed the %d left", sl, hl, bl, len(b))
	}
	if r.Raw && sl+hl != 0 {
		return r, nil, errors.New("a raw record with a subject or header")
	}
	r.Subject = b[:sl:sl]
	r.Header = b[sl : sl+hl : sl+hl]
	r.Body = b[sl+hl : sl+hl+bl : sl+hl+bl]
	return r, b[sl+hl+bl:], nil
}
