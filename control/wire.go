package control

import (
	"encoding/json"

	"github.com/bop-aof/aof/fsck"
)

// The wire types: every request and answer of the aof-admin service. They
// are the protocol's own structs, not the store's: a storage refactor
// must not change what crosses NATS, so each storage type is mapped to
// its wire twin next to the handlers (service.go), and
// TestWireJSONIsStable pins the JSON of every one. Changing a field name,
// a JSON type or an omitempty is a protocol change: it needs a new
// APIVersion.

// APIVersion is the version of the aof-admin wire protocol these types
// describe. It travels in the APIVersionHeader of every request and answer
// and in the service's micro metadata ("api_version"), so a client and a
// gateway of different releases can tell whether they understand each
// other. A request or answer without the header is version 1 (the
// protocol before the header existed, byte for byte the same).
const (
	APIVersion       = "1"
	APIVersionHeader = "Aof-Api-Version"
)

// SegmentState is the state of a segment as the wire names it.
type SegmentState string

// Segment states. The strings are the protocol's; the store's own state
// names are mapped to them (segmentStateOf).
const (
	StateActive        SegmentState = "active"         // the segment being appended to
	StateSealed        SegmentState = "sealed"         // closed to appends
	StateNeedsRecovery SegmentState = "needs_recovery" // no readable copy: an operator must act
)

// Segment is one segment with its residency, as dump and segments.list
// answer it. Bytes is the Tier 0 file size; CompressedBytes the Tier 1 and
// Tier 2 size.
type Segment struct {
	Stream           string       `json:"stream"`
	Segment          uint64       `json:"segment"`
	State            SegmentState `json:"state"`
	BaseOffset       uint64       `json:"base_offset"`
	NextOffset       uint64       `json:"next_offset"`
	Records          uint64       `json:"records"`
	Bytes            int64        `json:"bytes"`
	CompressedBytes  int64        `json:"compressed_bytes,omitempty"`
	InTier0          bool         `json:"in_tier0"`
	InTier1          bool         `json:"in_tier1"`
	InTier2          bool         `json:"in_tier2"`
	Tier2Key         string       `json:"tier2_key,omitempty"`
	ETag             string       `json:"etag,omitempty"`
	PendingHydration bool         `json:"pending_hydration,omitempty"`
	// HydratedBytes is how much of the Tier 2 object (CompressedBytes in
	// all) a hydration in flight has downloaded.
	HydratedBytes int64  `json:"hydrated_bytes,omitempty"`
	NeedsRecovery bool   `json:"needs_recovery,omitempty"`
	Reason        string `json:"reason,omitempty"`
}

// InTier reports whether the segment has a copy in tier 0, 1 or 2.
func (s Segment) InTier(tier int) bool {
	switch tier {
	case 0:
		return s.InTier0
	case 1:
		return s.InTier1
	case 2:
		return s.InTier2
	}
	return false
}

// Tier0Stats is the Tier 0 byte budget. The JSON names are the Go names
// (the protocol's first version had no tags).
type Tier0Stats struct {
	MaxBytes          int64 `json:"MaxBytes"`
	UsedBytes         int64 `json:"UsedBytes"`     // charged to tracked segments
	ReservedBytes     int64 `json:"ReservedBytes"` // held by admissions in flight
	QueueDepth        int   `json:"QueueDepth"`    // appends waiting for admission
	Segments          int   `json:"Segments"`
	EvictableSegments int   `json:"EvictableSegments"`
	PinnedSegments    int   `json:"PinnedSegments"`
	Evictions         int64 `json:"Evictions"`
}

// Tier1Stats is the Tier 1 cache: bytes and artifacts held of its budget.
type Tier1Stats struct {
	Bytes    int64 `json:"Bytes"`
	Files    int   `json:"Files"`
	MaxBytes int64 `json:"MaxBytes"`
	Pinned   int   `json:"Pinned"`
	Uploaded int   `json:"Uploaded"`
}

// QueueDepths are the store's background queue depths.
type QueueDepths struct {
	Activation  int   `json:"activation_queue_depth"`
	Compression int   `json:"compression_queue_depth"`
	Upload      int   `json:"upload_queue_depth"`
	Hydration   int64 `json:"hydration_queue_depth"`
}

// StatusResponse answers status.
type StatusResponse struct {
	Service string             `json:"service"`
	Version string             `json:"version"`
	Root    string             `json:"root"`
	Tier2   bool               `json:"tier2"`
	Streams []string           `json:"streams"`
	Tier0   Tier0Stats         `json:"tier0"`
	Tier1   Tier1Stats         `json:"tier1"`
	Queues  QueueDepths        `json:"queues"`
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
	Tier0         TierCount      `json:"tier0"`
	Tier1         TierCount      `json:"tier1"`
	Tier2         TierCount      `json:"tier2"`
	NeedsRecovery int            `json:"needs_recovery"`
	Queues        QueueDepths    `json:"queues"`
	Hydration     LatencySummary `json:"hydration_latency_ms"`
}

// DumpResponse is every segment with its residency and the summary.
type DumpResponse struct {
	Segments []Segment   `json:"segments"`
	Summary  DumpSummary `json:"summary"`
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
	Segments []Segment `json:"segments"`
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

// String names the problem with its stream, segment or chunk and reason,
// as fsck writes it.
func (p Problem) String() string {
	return fsck.Problem{Stream: p.Stream, Kind: p.Kind, Segment: p.Segment, Chunk: p.Chunk, File: p.File,
		Offset: p.Offset, Reason: p.Reason, Repaired: p.Repaired, RepairNote: p.RepairNote}.String()
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

// ManifestSegment is the folded manifest history of one segment, as
// manifest.inspect answers it. The JSON names are the Go names (the
// protocol's first version had no tags). PendingJobs is the bit set of
// background jobs in flight (bit 0 compression, 1 upload, 2 hydration,
// 3 delete); LastFailure and Reason are manifest reason codes (formats.md).
type ManifestSegment struct {
	Stream            string `json:"Stream"`
	Segment           uint64 `json:"Segment"`
	BaseOffset        uint64 `json:"BaseOffset"`
	Epoch             uint32 `json:"Epoch"`
	LastLogicalOffset uint64 `json:"LastLogicalOffset"`
	LastTimestampMS   int64  `json:"LastTimestampMS"`
	OpenedMS          int64  `json:"OpenedMS"`
	RecordCount       uint64 `json:"RecordCount"`
	Sealed            bool   `json:"Sealed"`
	DurableBytes      uint64 `json:"DurableBytes"`
	CRC64             uint64 `json:"CRC64"`
	LastExtID         uint64 `json:"LastExtID"`
	FlushFailure      bool   `json:"FlushFailure"`
	InTier0           bool   `json:"InTier0"`
	InTier1           bool   `json:"InTier1"`
	InTier2           bool   `json:"InTier2"`
	CompressedBytes   uint64 `json:"CompressedBytes"`
	DictionaryID      uint32 `json:"DictionaryID"`
	ResidentBytes     uint64 `json:"ResidentBytes"`
	Tier2Key          string `json:"Tier2Key"`
	ETag              string `json:"ETag"`
	HydrationSource   uint64 `json:"HydrationSource"`
	PendingJobs       uint8  `json:"PendingJobs"`
	LastFailure       uint32 `json:"LastFailure"`
	Failures          uint32 `json:"Failures"`
	NeedsRecovery     bool   `json:"NeedsRecovery"`
	Reason            uint32 `json:"Reason"`
	Deleted           bool   `json:"Deleted"`
}

// StreamManifest is the manifest of one stream.
type StreamManifest struct {
	Stream   string            `json:"stream"`
	Records  uint64            `json:"records"`
	Chunks   []ChunkView       `json:"chunks"`
	Segments []ManifestSegment `json:"segments"`
	Recent   []RecordView      `json:"recent"`
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

// HandoverRequest asks gateway Node to hand every partition it owns over
// (a rolling upgrade): it archives and releases them, then takes none
// until it restarts.
type HandoverRequest struct {
	Node string `json:"node"`
}

// DrainRequest asks gateway Node to give every partition it owns away
// and take none (a gateway leaving, or one to be restarted), or with Off
// to take its share again.
type DrainRequest struct {
	Node string `json:"node"`
	Off  bool   `json:"off,omitempty"`
}

// DrainResponse answers cluster.drain.
type DrainResponse struct {
	Node     string `json:"node"`
	Draining bool   `json:"draining"`
	// Released are the partitions it handed over.
	Released []int `json:"released"`
	// TookMS is how long the drain took, in milliseconds.
	TookMS int64 `json:"took_ms"`
	// Warning says what the operator should know, such as no other
	// gateway being there to take the partitions.
	Warning string `json:"warning,omitempty"`
}

// HandoverResponse answers cluster.handover.
type HandoverResponse struct {
	Node string `json:"node"`
	// Released are the partitions it handed over.
	Released []int `json:"released"`
	// TookMS is how long the handover took, in milliseconds.
	TookMS int64 `json:"took_ms"`
}
