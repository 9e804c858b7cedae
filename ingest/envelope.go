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
	if len(b) < envelopeFixed {
		return Envelope{}, fmt.Errorf("%w: %d bytes, need at least %d", ErrEnvelope, len(b), envelopeFixed)
	}
	if b[0] != EnvelopeVersion {
		return Envelope{}, fmt.Errorf("%w: version %d, want %d", ErrEnvelope, b[0], EnvelopeVersion)
	}
	sl := int(binary.LittleEndian.Uint16(b[1:]))
	hl := int(binary.LittleEndian.Uint32(b[3:]))
	if envelopeFixed+sl+hl > len(b) || hl < 0 {
		return Envelope{}, fmt.Errorf("%w: subject %d + header %d bytes exceed payload of %d", ErrEnvelope, sl, hl, len(b))
	}
	e := Envelope{Subject: string(b[envelopeFixed : envelopeFixed+sl])}
	if hl > 0 {
		h, err := decodeHeader(b[envelopeFixed+sl : envelopeFixed+sl+hl])
		if err != nil {
			return Envelope{}, err
		}
		e.Header = h
	}
	e.Body = b[envelopeFixed+sl+hl:]
	return e, nil
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
