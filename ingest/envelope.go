package ingest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// EnvelopeVersion is the version byte of the stored envelope.
const EnvelopeVersion = 1

const envelopeFixed = 1 + 2 + 4

// Envelope is one NATS message as stored in a segment record.
type Envelope struct {
	Subject string
	Header  map[string][]string
	Body    []byte
}

// ErrEnvelope reports a payload that is not a valid envelope.
var ErrEnvelope = errors.New("ingest: malformed envelope")

// AppendEnvelope encodes e onto dst.
func AppendEnvelope(dst []byte, e Envelope) []byte {
	hdr := encodeHeader(e.Header)
	var fixed [envelopeFixed]byte
	fixed[0] = EnvelopeVersion
	binary.LittleEndian.PutUint16(fixed[1:], uint16(len(e.Subject)))
	binary.LittleEndian.PutUint32(fixed[3:], uint32(len(hdr)))
	dst = append(dst, fixed[:]...)
	dst = append(dst, e.Subject...)
	dst = append(dst, hdr...)
	return append(dst, e.Body...)
}

// DecodeEnvelope decodes a stored payload. The returned Body aliases b.
func DecodeEnvelope(b []byte) (Envelope, error) {
	subject, hdr, body, err := SplitEnvelope(b)
	if err != nil {
		return Envelope{}, err
	}
	e := Envelope{Subject: string(subject)}
	if len(hdr) > 0 {
		h, err := decodeHeader(hdr)
		if err != nil {
			return Envelope{}, err
		}
		e.Header = h
	}
	e.Body = body
	return e, nil
}

// SplitEnvelope returns a stored payload's parts as they are stored,
// without decoding the header block: the subject, the header block
// ("NATS/1.0\r\n", a line per value, "\r\n"; empty when the message had
// no headers) and the body, each aliasing b. The read API's packs carry
// them so, and allocate nothing per record for it.
func SplitEnvelope(b []byte) (subject, header, body []byte, err error) {
	if len(b) < envelopeFixed {
		return nil, nil, nil, fmt.Errorf("%w: %d bytes, need at least %d", ErrEnvelope, len(b), envelopeFixed)
	}
	if b[0] != EnvelopeVersion {
		return nil, nil, nil, fmt.Errorf("%w: version %d, want %d", ErrEnvelope, b[0], EnvelopeVersion)
	}
	sl := uint64(binary.LittleEndian.Uint16(b[1:]))
	hl := uint64(binary.LittleEndian.Uint32(b[3:]))
	if envelopeFixed+sl+hl > uint64(len(b)) {
		return nil, nil, nil, fmt.Errorf("%w: subject %d + header %d bytes exceed payload of %d", ErrEnvelope, sl, hl, len(b))
	}
	if hl > 0 && !validHeaderFraming(b[envelopeFixed+sl:envelopeFixed+sl+hl]) {
		return nil, nil, nil, fmt.Errorf("%w: header block lacks NATS/1.0 framing", ErrEnvelope)
	}
	return b[envelopeFixed : envelopeFixed+sl], b[envelopeFixed+sl : envelopeFixed+sl+hl], b[envelopeFixed+sl+hl:], nil
}

// CanonicalHeaderBlock says whether a stored header block reads the same
// to a NATS client's header parser as to DecodeEnvelope: every line
// between the framing is a "Name: value" line, with no blank line before
// the end. Ingest writes only such blocks; a block that is not one (a
// payload written by other means) must be decoded and written again
// before a reader parses it as NATS headers. It allocates nothing.
func CanonicalHeaderBlock(h []byte) bool {
	if len(h) == 0 {
		return true
	}
	if !validHeaderFraming(h) {
		return false
	}
	rest := h[len(headerLine) : len(h)-2] // each line with its "\r\n"
	for len(rest) > 0 {
		i := bytes.Index(rest, []byte("\r\n"))
		if i <= 0 || !bytes.Contains(rest[:i], []byte(": ")) {
			return false
		}
		rest = rest[i+2:]
	}
	return true
}

// EnvelopeParts is SplitEnvelope for a reader that parses the header
// block as NATS headers (the read API's packs): the block is the stored
// one when it is canonical (CanonicalHeaderBlock, as ingest writes it,
// with no allocation), else the decoded headers written again, so that
// the reader gets the headers DecodeEnvelope gets. An error is
// DecodeEnvelope's.
func EnvelopeParts(b []byte) (subject, header, body []byte, err error) {
	subject, header, body, err = SplitEnvelope(b)
	if err != nil || CanonicalHeaderBlock(header) {
		return subject, header, body, err
	}
	env, err := DecodeEnvelope(b)
	if err != nil {
		return nil, nil, nil, err
	}
	return subject, encodeHeader(env.Header), body, nil
}

func validHeaderFraming(h []byte) bool {
	return bytes.HasPrefix(h, []byte(headerLine)) && bytes.HasSuffix(h, []byte("\r\n\r\n"))
}

const headerLine = "NATS/1.0\r\n"

func encodeHeader(h map[string][]string) []byte {
	if len(h) == 0 {
		return nil
	}
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var buf bytes.Buffer
	buf.WriteString(headerLine)
	for _, k := range keys {
		for _, v := range h[k] {
			buf.WriteString(k)
			buf.WriteString(": ")
			buf.WriteString(v)
			buf.WriteString("\r\n")
		}
	}
	buf.WriteString("\r\n")
	return buf.Bytes()
}

func decodeHeader(b []byte) (map[string][]string, error) {
	s := string(b)
	if !strings.HasPrefix(s, headerLine) || !strings.HasSuffix(s, "\r\n\r\n") {
		return nil, fmt.Errorf("%w: header block lacks NATS/1.0 framing", ErrEnvelope)
	}
	h := make(map[string][]string)
	for _, line := range strings.Split(strings.TrimSuffix(s[len(headerLine):], "\r\n\r\n"), "\r\n") {
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			return nil, fmt.Errorf("%w: header line %q has no ': '", ErrEnvelope, line)
		}
		h[k] = append(h[k], v)
	}
	return h, nil
}
