package readapi

import (
	"fmt"
	"strconv"
)

// APIVersion is the version of the read protocol these types describe.
// It travels in APIVersionHeader of every request and answer. A request
// without the header is version 1.
const (
	APIVersion       = "1"
	APIVersionHeader = "Aof-Api-Version"
)

// DefaultSubjectPrefix is where the read API listens unless
// read.subject_prefix says otherwise: requests go to <prefix>.<stream>.
const DefaultSubjectPrefix = "aof.read"

// QueueGroup is the NATS queue group every gateway serves the read API
// in: one gateway answers each request.
const QueueGroup = "aof-read"

// Headers of the answer messages. A record message carries the record's
// own headers besides these; a record's own header with the name of one of
// these (or Status, which nats.go reads as "no responders") travels as
// Aof-Original-<name>, so that no record passes for a control message.
const (
	HeaderSubject = "Aof-Subject" // the subject the record was published on
	HeaderStream  = "Aof-Stream"  // the stream read
	HeaderOffset  = "Aof-Offset"  // the record's logical offset, decimal
	HeaderSeq     = "Aof-Seq"     // the record's JetStream sequence in the ingest stream, decimal
	HeaderTime    = "Aof-Time"    // append time, RFC 3339 with nanoseconds, UTC
	// HeaderRaw is "true" on a record whose payload is not a NATS message
	// envelope: the body is the stored payload as is, with no subject.
	HeaderRaw = "Aof-Raw"
	// HeaderStatus marks a control message: a heartbeat, the end of the
	// batch or an error. Record messages never carry it.
	HeaderStatus      = "Aof-Status"
	HeaderDescription = "Aof-Description" // a short text for the status
	// HeaderNextOffset and HeaderPending repeat EndOfBatch's fields on
	// the end-of-batch message, for clients that would rather not parse JSON.
	HeaderNextOffset = "Aof-Next-Offset"
	HeaderPending    = "Aof-Pending"
)

// Status codes, in HeaderStatus. They follow HTTP where a code fits.
const (
	StatusHeartbeat       = "100" // a follow request is waiting at the tail
	StatusEndOfBatch      = "204" // the batch is complete; body EndOfBatch
	StatusBadRequest      = "400" // malformed request or invalid argument
	StatusNotFound        = "404" // unknown stream, or no record at or after the sequence
	StatusGone            = "410" // the start is before retention: deleted records
	StatusTooLarge        = "413" // max_msgs or max_bytes above the hard cap, or the request body too large
	StatusBeyondEnd       = "416" // start offset beyond the end of the stream
	StatusInternal        = "500" // I/O error, corruption, anything else
	StatusNotImplemented  = "501" // a start this gateway cannot resolve (gateways before start_time answered it for start_time)
	StatusUnavailable     = "503" // Tier 2 unavailable, gateway busy or stopping: retry
	StatusVersionMismatch = "505" // Aof-Api-Version not understood
)

// Bounds of a batch. A request above a hard cap is refused with
// StatusTooLarge rather than silently cut, so a client learns the limit.
const (
	DefaultMaxMsgs  = 1000
	MaxMaxMsgs      = 10000
	DefaultMaxBytes = 1 << 20  // bytes of record bodies
	MaxMaxBytes     = 16 << 20 // bytes of record bodies
	// MaxRequestBytes bounds the request body.
	MaxRequestBytes = 64 << 10
)

// Follow timing, in milliseconds on the wire.
const (
	DefaultHeartbeatMS = 5000
	MinHeartbeatMS     = 100
	DefaultExpiresMS   = 30000
	MaxExpiresMS       = 300000 // 5 minutes
)

// Request asks for one batch of records of the stream named by the subject.
//
// The start is one of StartOffset (the default, 0), StartSeq (the first
// record whose JetStream sequence is at least StartSeq) or StartTime
// (RFC 3339: the first record appended at or after it). A gateway before
// start_time answers it StatusNotImplemented. EndOffset, when
// above 0, ends the read before that offset (exclusive).
//
// With Pack, the records come in packs of many records per message
// (pack.go); the control messages are unchanged.
//
// With Follow, a request that finds no record at its start waits for one
// up to ExpiresMS, sending a heartbeat every HeartbeatMS; if none comes
// the batch ends empty with AtTail.
type Request struct {
	StartOffset uint64 `json:"start_offset,omitempty"`
	StartSeq    uint64 `json:"start_seq,omitempty"`
	StartTime   string `json:"start_time,omitempty"`
	EndOffset   uint64 `json:"end_offset,omitempty"`
	MaxMsgs     int    `json:"max_msgs,omitempty"`
	MaxBytes    int    `json:"max_bytes,omitempty"`
	Follow      bool   `json:"follow,omitempty"`
	HeartbeatMS int64  `json:"heartbeat_ms,omitempty"`
	ExpiresMS   int64  `json:"expires_ms,omitempty"`
	// Pack asks for the records in packs (HeaderPack, pack.go) instead
	// of a message each. A gateway that predates packs ignores it.
	Pack bool `json:"pack,omitempty"`
}

// Why a batch ended, in EndOfBatch.Reason.
const (
	ReasonMaxMsgs  = "max_msgs"  // max_msgs records sent
	ReasonMaxBytes = "max_bytes" // the next record would pass max_bytes
	ReasonEnd      = "end"       // end_offset reached
	ReasonTail     = "tail"      // the durable end of the stream
	ReasonExpired  = "expired"   // follow: nothing came within expires_ms
	// ReasonArchived: the end of the archived history a gateway that
	// does not own the stream serves from Tier 2; the stream goes on, and
	// the request from next_offset is answered by the owner or by a
	// newer copy. Not the tail: a Read continues.
	ReasonArchived = "archived"
)

// EndOfBatch is the body of the StatusEndOfBatch message.
type EndOfBatch struct {
	Stream string `json:"stream"`
	// NextOffset is where the next request starts to continue the read.
	NextOffset uint64 `json:"next_offset"`
	// Records and Bytes (of bodies) are what this batch sent.
	Records int   `json:"records"`
	Bytes   int64 `json:"bytes"`
	// Pending is how many durable records follow NextOffset (up to the
	// end offset, if the request had one) when the batch ended.
	Pending uint64 `json:"pending"`
	// AtTail: NextOffset is the durable end of the stream.
	AtTail bool   `json:"at_tail"`
	Reason string `json:"reason"`
}

// Error is the body of an error status message. NextOffset, when Records
// were sent before the error, is where a retry continues.
type Error struct {
	Code        string `json:"code"`
	Description string `json:"description"`
	Stream      string `json:"stream,omitempty"`
	Retryable   bool   `json:"retryable"`
	Records     int    `json:"records,omitempty"`
	NextOffset  uint64 `json:"next_offset,omitempty"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("aof read: %s %s", e.Code, e.Description)
}

// Retryable reports whether a request that got code may succeed later
// unchanged.
func Retryable(code string) bool { return code == StatusUnavailable }

// FormatUint is how offsets and sequences are written in headers.
func FormatUint(v uint64) string { return strconv.FormatUint(v, 10) }
