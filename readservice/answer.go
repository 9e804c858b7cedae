package readservice

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/readapi"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/backpressure"
	"github.com/bop-aof/aof/tiers/tier2"
)

// recordMsg is the answer message of one record: the original body and
// headers, with the read API's own headers set over them.
func recordMsg(reply, stream string, e tiers.Entry) *nats.Msg {
	m := &nats.Msg{Subject: reply, Header: nats.Header{}}
	env, err := ingest.DecodeEnvelope(e.Payload)
	if err != nil {
		m.Data = e.Payload
		m.Header.Set(readapi.HeaderRaw, "true")
	} else {
		for k, vs := range env.Header {
			m.Header[k] = vs
		}
		m.Header.Set(readapi.HeaderSubject, env.Subject)
		m.Data = env.Body
	}
	m.Header.Set(readapi.APIVersionHeader, readapi.APIVersion)
	m.Header.Set(readapi.HeaderStream, stream)
	m.Header.Set(readapi.HeaderOffset, readapi.FormatUint(e.Offset))
	m.Header.Set(readapi.HeaderSeq, readapi.FormatUint(e.ExtID))
	m.Header.Set(readapi.HeaderTime, time.UnixMilli(e.AppendMS).UTC().Format(time.RFC3339Nano))
	return m
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
