package readapi

import "time"

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
