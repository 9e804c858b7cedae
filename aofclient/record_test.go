package aofclient

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/readapi"
)

func recordMsg() *nats.Msg {
	m := nats.NewMsg("_INBOX.x")
	m.Header.Set(readapi.APIVersionHeader, readapi.APIVersion)
	m.Header.Set(readapi.HeaderStream, "orders")
	m.Header.Set(readapi.HeaderSubject, "orders.created")
	m.Header.Set(readapi.HeaderOffset, "7")
	m.Header.Set(readapi.HeaderSeq, "107")
	m.Header.Set(readapi.HeaderTime, "2026-12-01T23:00:00.123Z")
	m.Header.Set("Order", "7")
	m.Header.Set("aof-raw", "case-folded") // the read API's name in another case
	m.Data = []byte("order 7")
	return m
}

func TestRecordOfKeepsOnlyTheRecordsOwnHeaders(t *testing.T) {
	rec, err := recordOf(recordMsg())
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 12, 1, 23, 0, 0, 123e6, time.UTC)
	if rec.Stream != "orders" || rec.Subject != "orders.created" || rec.Offset != 7 || rec.Seq != 107 ||
		!rec.Time.Equal(want) || rec.Raw || string(rec.Data) != "order 7" {
		t.Fatalf("record %+v", rec)
	}
	if len(rec.Header) != 1 || rec.Header.Get("Order") != "7" {
		t.Fatalf("Header %v, want only Order", rec.Header)
	}
	m := recordMsg()
	for k := range m.Header {
		if k != "Order" {
			delete(m.Header, k)
		}
	}
	m.Header.Del("Order")
	m.Header.Set(readapi.HeaderOffset, "1")
	m.Header.Set(readapi.HeaderSeq, "1")
	m.Header.Set(readapi.HeaderTime, "2026-12-01T23:00:00Z")
	if rec, err := recordOf(m); err != nil || rec.Header != nil {
		t.Fatalf("a record without headers of its own: %+v, %v; want a nil Header", rec, err)
	}
}

// A scan reads every record through recordOf: the record's headers are
// the message's, not a copy.
func TestRecordOfDoesNotAllocate(t *testing.T) {
	msgs := make([]*nats.Msg, 101)
	for i := range msgs {
		msgs[i] = recordMsg()
	}
	i := 0
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := recordOf(msgs[i]); err != nil {
			t.Fatal(err)
		}
		i++
	})
	if allocs != 0 {
		t.Fatalf("recordOf allocates %.1f times per record, want 0", allocs)
	}
}

func BenchmarkRecordOf(b *testing.B) {
	msgs := make([]*nats.Msg, b.N)
	for i := range msgs {
		msgs[i] = recordMsg()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := recordOf(msgs[i]); err != nil {
			b.Fatal(err)
		}
	}
}
