package readservice

import (
	"context"
	"encoding/json"
	"errors"
	"net/textproto"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/readapi"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/backpressure"
	"github.com/bop-aof/aof/tiers/tier2"
)

// The read API's own header keys in the form nats.Header.Set stores them,
// so a record's header map can be filled without canonicalising each key.
var (
	keyRaw        = textproto.CanonicalMIMEHeaderKey(readapi.HeaderRaw)
	keySubject    = textproto.CanonicalMIMEHeaderKey(readapi.HeaderSubject)
	keyAPIVersion = textproto.CanonicalMIMEHeaderKey(readapi.APIVersionHeader)
	keyStream     = textproto.CanonicalMIMEHeaderKey(readapi.HeaderStream)
	keyOffset     = textproto.CanonicalMIMEHeaderKey(readapi.HeaderOffset)
	keySeq        = textproto.CanonicalMIMEHeaderKey(readapi.HeaderSeq)
	keyTime       = textproto.CanonicalMIMEHeaderKey(readapi.HeaderTime)
	keyPack       = textproto.CanonicalMIMEHeaderKey(readapi.HeaderPack)
)

// recordWriter builds the answer message of each record of one request:
// the original body and headers, with the read API's own headers set over
// them. It reuses one message, header map and value slices for every
// record, because nats.Conn.PublishMsg encodes the header and copies the
// body into the connection's buffer before it returns: the message
// returned by msg is valid until the next call, and must be published (or
// dropped) before it.
type recordWriter struct {
	m      nats.Msg
	stream []string
	apiVer []string
	vals   [4][1]string // subject or raw, offset, seq, time
	num    []byte
}

func newRecordWriter(reply, stream string) *recordWriter {
	return &recordWriter{
		m:      nats.Msg{Subject: reply, Header: nats.Header{}},
		stream: []string{stream},
		apiVer: []string{readapi.APIVersion},
		num:    make([]byte, 0, 64),
	}
}

// msg is the answer message of e.
func (w *recordWriter) msg(e tiers.Entry) *nats.Msg {
	h := w.m.Header
	clear(h)
	env, err := ingest.DecodeEnvelope(e.Payload)
	if err != nil {
		w.m.Data = e.Payload
		h[keyRaw] = w.value(0, "true")
	} else {
		for k, vs := range env.Header {
			h[readapi.RecordHeaderName(k)] = vs
		}
		h[keySubject] = w.value(0, env.Subject)
		w.m.Data = env.Body
	}
	h[keyAPIVersion] = w.apiVer
	h[keyStream] = w.stream
	// The three values share one string: one allocation instead of three.
	w.num = strconv.AppendUint(w.num[:0], e.Offset, 10)
	offEnd := len(w.num)
	w.num = strconv.AppendUint(w.num, e.ExtID, 10)
	seqEnd := len(w.num)
	w.num = time.UnixMilli(e.AppendMS).UTC().AppendFormat(w.num, time.RFC3339Nano)
	nums := string(w.num)
	h[keyOffset] = w.value(1, nums[:offEnd])
	h[keySeq] = w.value(2, nums[offEnd:seqEnd])
	h[keyTime] = w.value(3, nums[seqEnd:])
	return &w.m
}

// value is the reused one-element slice i holding v.
func (w *recordWriter) value(i int, v string) []string {
	w.vals[i][0] = v
	return w.vals[i][:]
}

// packTargetBytes is the size a pack is published at (or below the
// connection's max_payload): large enough that a record's share of a
// message's cost is small, small enough that a reader's first records
// do not wait long behind the rest of the pack.
const packTargetBytes = 256 << 10

// packer builds the packs of one request, reusing one message and buffer
// (as recordWriter: PublishMsg copies before it returns).
type packer struct {
	w      readapi.PackWriter
	m      nats.Msg
	target int
	first  uint64 // the offset of the pack's first record
}

func newPacker(reply, stream string, maxPayload int64) *packer {
	p := &packer{m: nats.Msg{Subject: reply, Header: nats.Header{}}, target: packTargetBytes}
	if maxPayload > 0 {
		// The headers below and the subject share max_payload with the body.
		p.target = int(min(int64(p.target), maxPayload-512))
	}
	p.m.Header[keyAPIVersion] = []string{readapi.APIVersion}
	p.m.Header[keyPack] = []string{strconv.Itoa(readapi.PackVersion)}
	p.m.Header[keyStream] = []string{stream}
	p.w.Reset()
	return p
}

// full says whether r would take a pack that holds records past its size.
func (p *packer) full(r readapi.PackRecord) bool {
	return p.w.Count() > 0 && p.w.Len()+readapi.PackRecordOverhead+len(r.Subject)+len(r.Header)+len(r.Body) > p.target
}

func (p *packer) add(r readapi.PackRecord) error {
	if p.w.Count() == 0 {
		p.first = r.Offset
	}
	return p.w.Add(r)
}

// msg is the pack message; valid until the next add.
func (p *packer) msg() *nats.Msg {
	p.m.Data = p.w.Bytes()
	return &p.m
}

// packRecordOf is e as a pack carries it: the stored envelope's parts
// (its header block is the NATS one), or the payload as a raw record when
// a message per record would send it raw.
func packRecordOf(e tiers.Entry) readapi.PackRecord {
	r := readapi.PackRecord{Offset: e.Offset, Seq: e.ExtID, TimeMS: e.AppendMS}
	subject, hdr, body, err := ingest.EnvelopeParts(e.Payload)
	if err != nil {
		r.Raw, r.Body = true, e.Payload
		return r
	}
	r.Subject, r.Header, r.Body = subject, hdr, body
	return r
}

// controlMsg is a status message with a JSON body (nil for none).
func controlMsg(reply, code, description string, body any) *nats.Msg {
	m := &nats.Msg{Subject: reply, Header: nats.Header{}}
	m.Header.Set(readapi.APIVersionHeader, readapi.APIVersion)
	m.Header.Set(readapi.HeaderStatus, code)
	m.Header.Set(readapi.HeaderDescription, description)
	if body != nil {
		m.Data, _ = json.Marshal(body) // the wire types always encode
	}
	return m
}

func endOfBatchMsg(reply string, eob readapi.EndOfBatch) *nats.Msg {
	m := controlMsg(reply, readapi.StatusEndOfBatch, "End of Batch", eob)
	m.Header.Set(readapi.HeaderNextOffset, readapi.FormatUint(eob.NextOffset))
	m.Header.Set(readapi.HeaderPending, readapi.FormatUint(eob.Pending))
	return m
}

func (s *Service) sendError(reply, stream string, e *readapi.Error) {
	e.Stream = stream
	if err := s.nc.PublishMsg(controlMsg(reply, e.Code, e.Description, e)); err != nil {
		s.log.Warn("read_error_not_sent", "stream", stream, "code", e.Code, "err", err)
	}
}

// errorOf maps an error of the store or of NATS to the status to answer.
func (s *Service) errorOf(err error, stream string) *readapi.Error {
	var re *readapi.Error
	if errors.As(err, &re) {
		return re
	}
	code := codeOf(err)
	if code == readapi.StatusUnavailable && s.ctx.Err() != nil {
		return statusf(code, "gateway stopping: retry on another gateway from next_offset")
	}
	return statusf(code, "%s: %v", stream, err)
}

func codeOf(err error) string {
	var he *tiers.HydrationError
	var oe *tier2.OpError
	switch {
	case errors.Is(err, tiers.ErrStreamNotFound):
		return readapi.StatusNotFound
	case errors.Is(err, tiers.ErrOffsetNotFound):
		// Between the bounds check and the read, retention retired it.
		return readapi.StatusGone
	case errors.Is(err, nats.ErrMaxPayload):
		return readapi.StatusTooLarge
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, tiers.ErrClosed), errors.Is(err, tier2.ErrBreakerOpen):
		return readapi.StatusUnavailable
	case errors.As(err, &oe):
		return retryableIf(oe.Reason() == tier2.ReasonUnavailable || oe.Reason() == tier2.ReasonTransient)
	case errors.As(err, &he):
		return retryableIf(he.Reason == manifest.ReasonUnavailable || he.Reason == manifest.ReasonTransient)
	}
	var bp *backpressure.Error
	if errors.As(err, &bp) {
		return readapi.StatusUnavailable
	}
	return readapi.StatusInternal
}

// retryableIf is StatusUnavailable when a retry may succeed, else
// StatusInternal (a missing object, a codec error, credentials refused).
func retryableIf(transient bool) string {
	if transient {
		return readapi.StatusUnavailable
	}
	return readapi.StatusInternal
}
