package readapi

import (
	"strings"
	"time"
)

// headerLineBytes is what one header line "Key: value\r\n" takes on the
// wire beside its key and value.
const headerLineBytes = len(": \r\n")

// maxUintDigits is the width of the largest uint64 in decimal.
const maxUintDigits = 20

// RecordHeaderOverhead bounds what the read API's own headers add to a
// record's answer message: Aof-Subject (subject), Aof-Stream (stream),
// Aof-Offset and Aof-Seq at their widest (20 digits), Aof-Time at the
// width of its layout, Aof-Api-Version, and the header block's own
// framing ("NATS/1.0\r\n" and the closing "\r\n"). The record's own
// headers and body come on top. Ingest refuses a message whose answer
// would not fit the server's max_payload: NATS would refuse the answer,
// and the record could never be read.
func RecordHeaderOverhead(subject, stream string) int {
	n := len("NATS/1.0\r\n") + len("\r\n")
	n += len(HeaderSubject) + len(subject) + headerLineBytes
	n += len(HeaderStream) + len(stream) + headerLineBytes
	n += len(HeaderOffset) + maxUintDigits + headerLineBytes
	n += len(HeaderSeq) + maxUintDigits + headerLineBytes
	// RFC 3339 with nanoseconds in UTC is never wider than its layout
	// (the zone "Z07:00" prints as "Z") for years 0 to 9999.
	n += len(HeaderTime) + len(time.RFC3339Nano) + headerLineBytes
	n += len(APIVersionHeader) + len(APIVersion) + headerLineBytes
	return n
}

// OriginalHeaderPrefix names a producer's header that travels under
// another name so that it cannot act as one of ours: Aof-Original-<name>.
const OriginalHeaderPrefix = "Aof-Original-"

// reservedRecordHeaders are the read API's own header names, and the Status
// of a NATS no-responders answer.
var reservedRecordHeaders = []string{"Status", APIVersionHeader, HeaderSubject, HeaderStream, HeaderOffset, HeaderSeq,
	HeaderTime, HeaderRaw, HeaderStatus, HeaderDescription, HeaderNextOffset, HeaderPending, HeaderPack}

// RenamedInAnswer says whether a record's own header k travels as
// OriginalHeaderPrefix+k in its answer. A producer may have sent a header
// named like one of the read API's (an Aof-Status of its own, a Status:
// 503): a client would take the record for a control message, or nats.go
// for "no responders", and skip it or stop. It allocates nothing: ingest
// asks it for every header of every message.
func RenamedInAnswer(k string) bool {
	for _, r := range reservedRecordHeaders {
		if len(k) == len(r) && strings.EqualFold(k, r) {
			return true
		}
	}
	return false
}

// RecordHeaderName is the name a record's own header k travels under in
// its answer.
func RecordHeaderName(k string) string {
	if RenamedInAnswer(k) {
		return OriginalHeaderPrefix + k
	}
	return k
}
