package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/config"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/backpressure"
	"github.com/bop-aof/aof/tiers/tier0"
	"github.com/bop-aof/aof/tiers/tier1"
	"github.com/bop-aof/aof/tiers/tier2"
)

// Endpoint names. Each is served on <prefix>.<name>.
const (
	EndpointStatus          = "status"
	EndpointDump            = "dump"
	EndpointSeal            = "seal"
	EndpointFlush           = "flush"
	EndpointHydrate         = "hydrate"
	EndpointSegmentsList    = "segments.list"
	EndpointSegmentsDelete  = "segments.delete"
	EndpointManifestCheck   = "manifest.check"
	EndpointManifestInspect = "manifest.inspect"
	EndpointRead            = "read"
	EndpointSnapshotCreate  = "snapshot.create"
	EndpointSnapshotList    = "snapshot.list"
	EndpointConfigReload    = "config.reload"
)

// Endpoints lists every endpoint the service registers, in a stable order.
var Endpoints = []string{
	EndpointStatus, EndpointDump, EndpointSeal, EndpointFlush, EndpointHydrate,
	EndpointSegmentsList, EndpointSegmentsDelete, EndpointManifestCheck,
	EndpointManifestInspect, EndpointRead, EndpointSnapshotCreate,
	EndpointSnapshotList, EndpointConfigReload,
}

// Error codes carried in the Nats-Service-Error-Code header of an error
// response. They follow HTTP status numbers, as NATS micro tooling expects.
const (
	CodeBadRequest     = "400" // malformed request or invalid argument
	CodeUnauthorized   = "401" // NATS or Tier 2 authentication/authorization
	CodeForbidden      = "403" // the NATS server refused the request: the user lacks the permission
	CodeNotFound       = "404" // stream, segment or offset not found
	CodeConflict       = "409" // refused: the operation would break an invariant
	CodeTooLarge       = "413" // one record does not fit the answer limit
	CodeInternal       = "500" // I/O error, corruption, anything else
	CodeUnavailable    = "503" // backpressure or Tier 2 unavailable: retry later
	CodeNotImplemented = "501" // the store cannot do this (yet)
)

// Exit codes of aof2-admin (REFERENCE.md).
const (
	ExitOK       = 0
	ExitUsage    = 1
	ExitNotFound = 2
	ExitAuth     = 3
	ExitIO       = 4
)

// Error is an error answer of the service: a code (Code* above) and a
// message. The client returns it for every error response.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s (code %s)", e.Message, e.Code) }

// Errorf builds an *Error.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Classify maps an error of the store, Tier 2 or NATS to a service error
// code.
func Classify(err error) string {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Code
	}
	var he *tiers.HydrationError
	switch {
	case err == nil:
		return ""
	case errors.Is(err, tiers.ErrStreamNotFound), errors.Is(err, tiers.ErrSegmentNotFound),
		errors.Is(err, tiers.ErrOffsetNotFound):
		return CodeNotFound
	case errors.Is(err, config.ErrInvalidName):
		return CodeBadRequest
	case errors.Is(err, tiers.ErrRootLocked):
		return CodeConflict
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired),
		errors.Is(err, nats.ErrAuthRevoked), errors.Is(err, nats.ErrAccountAuthExpired):
		return CodeUnauthorized
	case errors.Is(err, nats.ErrPermissionViolation):
		return CodeForbidden
	case errors.As(err, &he) && he.Reason == manifest.ReasonAuth:
		return CodeUnauthorized
	case errors.Is(err, context.DeadlineExceeded):
		return CodeUnavailable
	}
	var bp *backpressure.Error
	if errors.As(err, &bp) {
		return CodeUnavailable
	}
	var oe *tier2.OpError
	if errors.As(err, &oe) {
		switch oe.Reason() {
		case tier2.ReasonAuth:
			return CodeUnauthorized
		case tier2.ReasonUnavailable:
			return CodeUnavailable
		}
	}
	return CodeInternal
}

// ExitCode maps an error to the aof2-admin exit code: 1 usage, 2 not found,
// 3 authentication or authorization, 4 I/O (everything else that failed).
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	switch Classify(err) {
	case CodeBadRequest, CodeConflict, CodeNotImplemented, CodeTooLarge:
		return ExitUsage
	case CodeNotFound:
		return ExitNotFound
	case CodeUnauthorized, CodeForbidden:
		return ExitAuth
	}
	return ExitIO
}

// asError converts err to an *Error for the wire.
func asError(err error) *Error {
	var ce *Error
	if errors.As(err, &ce) {
		return ce
	}
	return &Error{Code: Classify(err), Message: err.Error()}
}

// StatusResponse answers status.
type StatusResponse struct {
	Service string             `json:"service"`
	Version string             `json:"version"`
	Root    string             `json:"root"`
	Tier2   bool               `json:"tier2"`
	Streams []string           `json:"streams"`
	Tier0   tier0.Stats        `json:"tier0"`
	Tier1   tier1.CacheStats   `json:"tier1"`
	Queues  tiers.QueueDepths  `json:"queues"`
	Gateway json.RawMessage    `json:"gateway,omitempty"`
	Latency LatencySummary     `json:"hydration_latency_ms"`
	Extra   map[string]float64 `json:"extra,omitempty"`
}

// StreamRequest names one stream ("" for all where allowed).
type StreamRequest struct {
	Stream string `json:"stream,omitempty"`
}

// DumpRequest asks for the residency of one stream ("" for all).
type DumpRequest = StreamRequest

// TierCount counts the segments resident in one tier.
type TierCount struct {
	Segments int   `json:"segments"`
	Bytes    int64 `json:"bytes"`
}

// LatencySummary is hydration latency in milliseconds.
type LatencySummary struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
}

// DumpSummary is the JSON footer of aof2-admin dump.
type DumpSummary struct {
	Tier0         TierCount         `json:"tier0"`
	Tier1         TierCount         `json:"tier1"`
	Tier2         TierCount         `json:"tier2"`
	NeedsRecovery int               `json:"needs_recovery"`
	Queues        tiers.QueueDepths `json:"queues"`
	Hydration     LatencySummary    `json:"hydration_latency_ms"`
}

// DumpResponse is every segment with its residency and the summary.
type DumpResponse struct {
	Segments []tiers.SegmentStatus `json:"segments"`
	Summary  DumpSummary           `json:"summary"`
}

// SealRequest seals the active segment of Stream, or of every stream with All.
type SealRequest struct {
	Stream string `json:"stream,omitempty"`
	Force  bool   `json:"force,omitempty"`
	All    bool   `json:"all,omitempty"`
}

// SealedSegment is one segment sealed by a seal request. Segment is 0 with
// Skipped set when the active segment was empty and force was not given.
type SealedSegment struct {
	Stream  string `json:"stream"`
	Segment uint64 `json:"segment"`
	Skipped bool   `json:"skipped,omitempty"`
}

// SealResponse answers seal.
type SealResponse struct {
	Sealed []SealedSegment `json:"sealed"`
}

// FlushRequest makes a stream durable within Timeout milliseconds (0: the
// request's own deadline).
type FlushRequest struct {
	Stream    string `json:"stream"`
	TimeoutMS int64  `json:"timeout_ms,omitempty"`
}

// FlushResponse answers flush.
type FlushResponse struct {
	Stream     string `json:"stream"`
	NextOffset uint64 `json:"next_offset"`
	DurationMS int64  `json:"duration_ms"`
}

// HydrateRequest brings one segment back into Tier 1. Stream may be empty
// when the segment id is unique across streams.
type HydrateRequest struct {
	Stream  string `json:"stream,omitempty"`
	Segment uint64 `json:"segment"`
}

// HydrateResponse answers hydrate.
type HydrateResponse struct {
	Stream       string `json:"stream"`
	Segment      uint64 `json:"segment"`
	AlreadyLocal bool   `json:"already_local"`
	Bytes        int64  `json:"bytes"`
	DurationMS   int64  `json:"duration_ms"`
}

// SegmentsListRequest filters segments by stream and tier (-1 or absent: any).
type SegmentsListRequest struct {
	Stream string `json:"stream,omitempty"`
	Tier   *int   `json:"tier,omitempty"`
}

// SegmentsListResponse answers segments.list.
type SegmentsListResponse struct {
	Segments []tiers.SegmentStatus `json:"segments"`
}

// SegmentsDeleteRequest removes copies of a sealed segment down to Tier
// (0: the Tier 0 file; 1: both local copies; 2: retire it everywhere).
type SegmentsDeleteRequest struct {
	Stream  string `json:"stream,omitempty"`
	Segment uint64 `json:"segment"`
	Tier    int    `json:"tier"`
	Force   bool   `json:"force,omitempty"`
	// AcknowledgeDataLoss lets tier 2 retire a segment that is not
	// confirmed in Tier 2, whose local copies are then the only ones:
	// its records are lost. Force does not imply it.
	AcknowledgeDataLoss bool `json:"acknowledge_data_loss,omitempty"`
	// RequestedBy is who asks, as the client states it (aof2-admin sends
	// user@host). It is logged, not checked: NATS does not tell the
	// service who sent a request, so who may delete is decided by the
	// NATS permissions on the segments.delete subject.
	RequestedBy string `json:"requested_by,omitempty"`
}

// SegmentsDeleteResponse answers segments.delete.
type SegmentsDeleteResponse struct {
	Stream  string `json:"stream"`
	Segment uint64 `json:"segment"`
	Removed []int  `json:"removed_tiers"`
}

// ManifestCheckRequest checks one stream ("" for all). Repair on a running
// gateway re-fetches damaged local copies from Tier 2; trimming torn
// manifest tails needs the gateway stopped (aof2-admin manifest check --root).
type ManifestCheckRequest struct {
	Stream string `json:"stream,omitempty"`
	Repair bool   `json:"repair,omitempty"`
}

// Problem is one finding of a check: where, what and whether it was repaired.
type Problem struct {
	Stream   string `json:"stream"`
	Kind     string `json:"kind"`
	Segment  uint64 `json:"segment,omitempty"`
	Chunk    *int64 `json:"chunk,omitempty"`
	File     string `json:"file,omitempty"`
	Offset   int64  `json:"offset,omitempty"`
	Reason   string `json:"reason"`
	Repaired bool   `json:"repaired,omitempty"`
	// RepairNote says what repair did, or why it could not.
	RepairNote string `json:"repair_note,omitempty"`
}

// String names the problem with its stream, segment or chunk and reason.
func (p Problem) String() string {
	where := ""
	switch {
	case p.Chunk != nil:
		where = fmt.Sprintf("chunk %d", *p.Chunk)
	case p.Segment != 0 || p.Kind != "":
		where = fmt.Sprintf("segment %d", p.Segment)
	}
	s := fmt.Sprintf("stream %s | %s | %s", p.Stream, where, p.Kind)
	if p.File != "" {
		s += " | " + p.File
	}
	if p.Offset > 0 {
		s += fmt.Sprintf(" @%d", p.Offset)
	}
	s += " | " + p.Reason
	if p.Repaired {
		s += " | repaired"
		if p.RepairNote != "" {
			s += ": " + p.RepairNote
		}
	} else if p.RepairNote != "" {
		s += " | not repaired: " + p.RepairNote
	}
	return s
}

// StreamCheck is the check of one stream.
type StreamCheck struct {
	Stream          string `json:"stream"`
	Chunks          int    `json:"chunks"`
	Records         uint64 `json:"records"`
	Snapshots       int    `json:"snapshots"`
	SegmentsChecked int    `json:"segments_checked"`
	Tier2Checked    int    `json:"tier2_objects_checked"`
}

// CheckReport answers manifest.check.
type CheckReport struct {
	Streams  []StreamCheck `json:"streams"`
	Problems []Problem     `json:"problems"`
	// Tier2 says whether Tier 2 objects were checked.
	Tier2 bool `json:"tier2"`
}

// Remaining counts the problems not repaired.
func (r CheckReport) Remaining() int {
	n := 0
	for _, p := range r.Problems {
		if !p.Repaired {
			n++
		}
	}
	return n
}

// ManifestInspectRequest asks for a stream's manifest: chunks, folded
// segment states, and its Recent last records.
type ManifestInspectRequest struct {
	Stream string `json:"stream,omitempty"`
	Recent int    `json:"recent,omitempty"`
}

// ChunkView is one manifest chunk file.
type ChunkView struct {
	Index        uint64 `json:"index"`
	BaseRecord   uint64 `json:"base_record"`
	Records      uint64 `json:"records"`
	CommittedLen uint64 `json:"committed_len"`
	Sealed       bool   `json:"sealed"`
	Uploaded     bool   `json:"uploaded"`
}

// RecordView is one manifest record, decoded for people.
type RecordView struct {
	Chunk         uint64 `json:"chunk"`
	Offset        int64  `json:"offset"`
	Type          string `json:"type"`
	Segment       uint64 `json:"segment"`
	LogicalOffset uint64 `json:"logical_offset"`
	TimestampMS   int64  `json:"timestamp_ms"`
	Payload       string `json:"payload"`
}

// StreamManifest is the manifest of one stream.
type StreamManifest struct {
	Stream   string                  `json:"stream"`
	Records  uint64                  `json:"records"`
	Chunks   []ChunkView             `json:"chunks"`
	Segments []manifest.SegmentState `json:"segments"`
	Recent   []RecordView            `json:"recent"`
}

// ManifestInspectResponse answers manifest.inspect.
type ManifestInspectResponse struct {
	Streams []StreamManifest `json:"streams"`
}

// ReadRequest reads up to Count records (default 100, at most 10000) and
// MaxBytes body bytes (default 1 MiB) of Stream from offset From. With
// WaitMS > 0 and nothing to return yet, it waits that long for a record
// (tail-follow).
type ReadRequest struct {
	Stream   string `json:"stream"`
	From     uint64 `json:"from"`
	Count    int    `json:"count,omitempty"`
	MaxBytes int    `json:"max_bytes,omitempty"`
	WaitMS   int64  `json:"wait_ms,omitempty"`
}

// Message is one stored record: its position and the NATS message it
// holds. Body is base64 in JSON. A payload that is not an envelope is
// returned whole in Body with Raw set.
type Message struct {
	Offset   uint64              `json:"offset"`
	ExtID    uint64              `json:"ext_id"`
	AppendMS int64               `json:"append_ms"`
	Subject  string              `json:"subject,omitempty"`
	Header   map[string][]string `json:"header,omitempty"`
	Body     []byte              `json:"body"`
	Raw      bool                `json:"raw,omitempty"`
}

// ReadResponse answers read. Next is the offset to ask for next.
type ReadResponse struct {
	Stream   string    `json:"stream"`
	Messages []Message `json:"messages"`
	Next     uint64    `json:"next"`
	// AtTail: the read stopped at the durable end of the stream.
	AtTail bool `json:"at_tail"`
}

// SnapshotRequest names the stream to snapshot.
type SnapshotRequest = StreamRequest

// SnapshotResponse answers snapshot.create.
type SnapshotResponse struct {
	Stream     string `json:"stream"`
	SnapshotID uint64 `json:"snapshot_id"`
}

// SnapshotInfo is one snapshot file.
type SnapshotInfo struct {
	Stream     string `json:"stream"`
	SnapshotID uint64 `json:"snapshot_id"`
	Bytes      int64  `json:"bytes"`
	Chunk      uint64 `json:"chunk"`
	Offset     int64  `json:"offset"`
	Valid      bool   `json:"valid"`
	Reason     string `json:"reason,omitempty"`
}

// SnapshotListResponse answers snapshot.list.
type SnapshotListResponse struct {
	Snapshots []SnapshotInfo `json:"snapshots"`
}

// ReloadResponse answers config.reload with what the gateway's hook returned.
type ReloadResponse struct {
	Result json.RawMessage `json:"result"`
}
