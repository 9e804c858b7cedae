package readservice

import (
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/readapi"
	"github.com/bop-aof/aof/tiers"
)

// recordMsgReference is how the read service built a record's message
// before recordWriter: a new message and header map per record, each
// header set with nats.Header.Set. recordWriter must build the same.
func recordMsgReference(reply, stream string, e tiers.Entry) *nats.Msg {
	m := &nats.Msg{Subject: reply, Header: nats.Header{}}
	env, err := ingest.DecodeEnvelope(e.Payload)
	if err != nil {
		m.Data = e.Payload
		m.Header.Set(readapi.HeaderRaw, "true")
	} else {
		for k, vs := range env.Header {
			m.Header[readapi.RecordHeaderName(k)] = vs
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

func envelopeEntry(off uint64, subject string, h map[string][]string, body string) tiers.Entry {
	p := ingest.AppendEnvelope(nil, ingest.Envelope{Subject: subject, Header: h, Body: []byte(body)})
	return tiers.Entry{Offset: off, ExtID: off + 1000, AppendMS: 1_700_000_000_123 + int64(off), Payload: p}
}

// TestRecordWriterBuildsTheSameMessagesAsBefore: one reused message per
// request must carry, record after record, exactly the headers and body
// the per-record message did; nothing of the previous record may remain
// (a raw record after an enveloped one has no Aof-Subject nor its
// headers), and a record's own headers named like the read API's are kept
// as Aof-Original-<name>.
func TestRecordWriterBuildsTheSameMessagesAsBefore(t *testing.T) {
	entries := []tiers.Entry{
		envelopeEntry(0, "orders.eu", map[string][]string{"Trace-Id": {"a", "b"}, "lower-key": {"x"}}, "first"),
		{Offset: 1, ExtID: 7, AppendMS: 0, Payload: []byte("not an envelope")},
		envelopeEntry(2, "orders.us", map[string][]string{"Aof-Offset": {"999"}, "Aof-Raw": {"spoof"}, "aof-status": {"204"}, "Status": {"503"}}, ""),
		envelopeEntry(18446744073709551614, "x", nil, "last"),
		{Offset: 3, ExtID: 0, AppendMS: 1_700_000_000_000, Payload: nil},
	}
	w := newRecordWriter("_INBOX.r", "orders")
	for _, e := range entries {
		want := recordMsgReference("_INBOX.r", "orders", e)
		got := w.msg(e)
		if got.Subject != want.Subject || string(got.Data) != string(want.Data) {
			t.Fatalf("offset %d: subject %q data %q, want %q %q", e.Offset, got.Subject, got.Data, want.Subject, want.Data)
		}
		if !reflect.DeepEqual(got.Header, want.Header) {
			t.Fatalf("offset %d: header\n got %v\nwant %v", e.Offset, got.Header, want.Header)
		}
	}
}

// TestRecordWriterAllocatesLittlePerRecord: building a record's message
// costs the envelope's decoding and one string for the offset, sequence
// and time; the per-record message, header map and six header values
// (about 14 allocations) are gone.
func TestRecordWriterAllocatesLittlePerRecord(t *testing.T) {
	e := envelopeEntry(12345, "orders.eu", nil, "body")
	w := newRecordWriter("_INBOX.r", "orders")
	w.msg(e) // the header map grows once
	allocs := testing.AllocsPerRun(100, func() { w.msg(e) })
	// DecodeEnvelope's subject string, and the numbers' shared string.
	if allocs > 2 {
		t.Fatalf("%v allocations per record, want at most 2", allocs)
	}
}
