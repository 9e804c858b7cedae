package readapi_test

import (
	"math"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/readapi"
)

// TestRecordHeaderOverheadBoundsTheRealHeaders builds the read API's
// headers of a record at their widest values the way nats.go encodes
// them, and checks that RecordHeaderOverhead is not below what they take:
// ingest relies on it to refuse a message whose answer NATS would refuse.
// It must not be far above either, or ingest would refuse messages that
// can be read.
func TestRecordHeaderOverheadBoundsTheRealHeaders(t *testing.T) {
	subject := "aof.ingest.orders.eu-west.with-a-rather-long-tail"
	stream := "orders"
	widestTime := time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC).Format(time.RFC3339Nano)
	m := nats.NewMsg("")
	m.Header.Set(readapi.HeaderSubject, subject)
	m.Header.Set(readapi.HeaderStream, stream)
	m.Header.Set(readapi.HeaderOffset, readapi.FormatUint(math.MaxUint64))
	m.Header.Set(readapi.HeaderSeq, readapi.FormatUint(math.MaxUint64))
	m.Header.Set(readapi.HeaderTime, widestTime)
	m.Header.Set(readapi.APIVersionHeader, readapi.APIVersion)
	real := m.Size() // no subject, no data: the encoded header alone
	got := readapi.RecordHeaderOverhead(subject, stream)
	if got < real {
		t.Fatalf("RecordHeaderOverhead = %d, below the %d bytes the headers take", got, real)
	}
	if got > real+8 {
		t.Fatalf("RecordHeaderOverhead = %d, more than 8 bytes above the %d bytes the headers take", got, real)
	}
}
