package control

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bop-aof/aof/config"
	"github.com/bop-aof/aof/fsck"
	"github.com/bop-aof/aof/ingest"
	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/backpressure"
	"github.com/bop-aof/aof/tracing"
)

// Read limits.
const (
	DefaultReadCount    = 100
	MaxReadCount        = 10000
	DefaultReadMaxBytes = 1 << 20  // bytes of bodies per answer
	MaxReadMaxBytes     = 64 << 20 // the most bytes of bodies a caller may ask for
	MaxReadWait         = 30 * time.Second
)

// checkStream returns ErrStreamNotFound unless stream is "" or known.
func checkStream(s *tiers.Store, stream string) error {
	if stream == "" {
		return nil
	}
	if err := config.ValidStreamName(stream); err != nil {
		return Errorf(CodeBadRequest, "%v", err)
	}
	for _, n := range s.Streams() {
		if n == stream {
			return nil
		}
	}
	return fmt.Errorf("%w: %q", tiers.ErrStreamNotFound, stream)
}

// Dump reports the residency of every segment of stream ("" for all) and
// the summary footer. in may be nil (offline: latency is 0).
func Dump(s *tiers.Store, stream string, in *tracing.Instruments) (DumpResponse, error) {
	if err := checkStream(s, stream); err != nil {
		return DumpResponse{}, err
	}
	segs := segmentsOf(s.Segments(stream))
	out := DumpResponse{Segments: segs, Summary: DumpSummary{Queues: queueDepthsOf(s.Queues()), Hydration: latency(in)}}
	for _, st := range segs {
		if st.InTier0 {
			out.Summary.Tier0.Segments++
			out.Summary.Tier0.Bytes += st.Bytes
		}
		if st.InTier1 {
			out.Summary.Tier1.Segments++
			out.Summary.Tier1.Bytes += st.CompressedBytes
		}
		if st.InTier2 {
			out.Summary.Tier2.Segments++
			out.Summary.Tier2.Bytes += st.CompressedBytes
		}
		if st.NeedsRecovery {
			out.Summary.NeedsRecovery++
		}
	}
	return out, nil
}

func latency(in *tracing.Instruments) LatencySummary {
	if in == nil {
		return LatencySummary{}
	}
	q := in.HydrationQuantiles.Summary()
	return LatencySummary{P50: q.P50, P90: q.P90, P99: q.P99}
}

// ListSegments lists the segments of stream ("" for all) resident in tier
// (nil for any).
func ListSegments(s *tiers.Store, req SegmentsListRequest) (SegmentsListResponse, error) {
	if err := checkStream(s, req.Stream); err != nil {
		return SegmentsListResponse{}, err
	}
	if req.Tier != nil && (*req.Tier < 0 || *req.Tier > 2) {
		return SegmentsListResponse{}, Errorf(CodeBadRequest, "tier must be 0, 1 or 2, got %d", *req.Tier)
	}
	out := SegmentsListResponse{Segments: []Segment{}}
	for _, seg := range segmentsOf(s.Segments(req.Stream)) {
		if req.Tier == nil || seg.InTier(*req.Tier) {
			out.Segments = append(out.Segments, seg)
		}
	}
	return out, nil
}

// findSegment returns the status of segment id, in stream or, when stream
// is "", in the only stream that has it.
func findSegment(s *tiers.Store, stream string, id uint64) (tiers.SegmentStatus, error) {
	if err := checkStream(s, stream); err != nil {
		return tiers.SegmentStatus{}, err
	}
	var found []tiers.SegmentStatus
	for _, st := range s.Segments(stream) {
		if st.Segment == id {
			found = append(found, st)
		}
	}
	switch len(found) {
	case 0:
		where := "any stream"
		if stream != "" {
			where = "stream " + stream
		}
		return tiers.SegmentStatus{}, fmt.Errorf("%w: segment %d in %s", tiers.ErrSegmentNotFound, id, where)
	case 1:
		return found[0], nil
	}
	names := make([]string, len(found))
	for i, f := range found {
		names[i] = f.Stream
	}
	return tiers.SegmentStatus{}, Errorf(CodeBadRequest, "segment %d exists in streams %s: name one with --stream", id, strings.Join(names, ", "))
}

// encodedSize is about what m takes in a JSON answer: bodies are base64.
func encodedSize(m Message) int {
	n := 128 + len(m.Subject) + (len(m.Body)+2)/3*4
	for k, vs := range m.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 8
		}
	}
	return n
}

// RangedReadMaxCount is the largest read served from a cold segment by
// ranged GETs instead of hydration.
const RangedReadMaxCount = 8

// Read returns records of req.Stream from req.From within the count and
// byte bounds. Reads of up to RangedReadMaxCount records are served from a
// segment that is only in Tier 2 with ranged GETs; larger ones hydrate it
// (waiting up to ctx's deadline). The read stops at the durable tail.
func Read(ctx context.Context, s *tiers.Store, req ReadRequest) (ReadResponse, error) {
	return readWithin(ctx, s, req, MaxReadMaxBytes)
}

// readWithin is Read with a hard limit on the encoded answer: the control
// service passes what fits in one NATS message.
func readWithin(ctx context.Context, s *tiers.Store, req ReadRequest, hardLimit int) (ReadResponse, error) {
	if req.Stream == "" {
		return ReadResponse{}, Errorf(CodeBadRequest, "read needs a stream")
	}
	if err := checkStream(s, req.Stream); err != nil {
		return ReadResponse{}, err
	}
	count, maxBytes := readBounds(req)
	r, err := s.Reader(req.Stream)
	if err != nil {
		return ReadResponse{}, err
	}
	defer r.Close()
	r.Seek(req.From)
	// A handful of records from a segment that is only in Tier 2 are
	// served with ranged GETs of their frames, without hydrating it.
	r.SetRangedReads(count <= RangedReadMaxCount)
	a := readAnswer{out: ReadResponse{Stream: req.Stream, Messages: []Message{}, Next: req.From}, maxBytes: maxBytes, hardLimit: hardLimit}
	backoff := 10 * time.Millisecond
	for len(a.out.Messages) < count {
		e, step, err := nextRecord(ctx, r, req, len(a.out.Messages) == 0, &backoff)
		switch step {
		case readRetry:
			continue
		case readAtTail:
			a.out.AtTail = true
			return a.out, nil
		case readStopped:
			// What was read so far is an answer; the error only when
			// there is none.
			if len(a.out.Messages) > 0 {
				return a.out, nil
			}
			return a.out, err
		}
		full, err := a.add(e, req.Stream)
		if err != nil || full {
			return a.out, err
		}
	}
	return a.out, nil
}

// readBounds returns the record count and body bytes a read may answer,
// defaults and limits applied.
func readBounds(req ReadRequest) (count, maxBytes int) {
	count, maxBytes = req.Count, req.MaxBytes
	if count <= 0 {
		count = DefaultReadCount
	}
	count = min(count, MaxReadCount)
	if maxBytes <= 0 {
		maxBytes = DefaultReadMaxBytes
	}
	return count, min(maxBytes, MaxReadMaxBytes)
}

// readStep says what nextRecord got.
type readStep int

const (
	readRecord  readStep = iota // a record to answer
	readRetry                   // the segment is hydrating: ask again
	readAtTail                  // the durable end of the stream
	readStopped                 // an error, or ctx ended
)

// nextRecord reads the next record. At the tail of an empty answer with
// req.WaitMS it waits that long for one (tail-follow); while the segment
// is coming back from Tier 2 it backs off 10 ms to 250 ms, as
// REFERENCE.md asks, until ctx ends.
func nextRecord(ctx context.Context, r *tiers.Reader, req ReadRequest, empty bool, backoff *time.Duration) (tiers.Entry, readStep, error) {
	e, err := r.TryNext(ctx)
	switch {
	case err == nil:
		return e, readRecord, nil
	case backpressure.Is(err, backpressure.Tail):
		if !empty || req.WaitMS <= 0 {
			return e, readAtTail, nil
		}
		wait := min(time.Duration(req.WaitMS)*time.Millisecond, MaxReadWait)
		wctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		e, err = r.Next(wctx)
		switch {
		case err == nil:
			return e, readRecord, nil
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			return e, readAtTail, nil
		}
		return e, readStopped, err
	case backpressure.Is(err, backpressure.Hydration):
		select {
		case <-ctx.Done():
			return e, readStopped, fmt.Errorf("read %s offset %d: waiting for hydration: %w", req.Stream, r.Offset(), ctx.Err())
		case <-time.After(*backoff):
		}
		*backoff = min(*backoff*2, 250*time.Millisecond)
		return e, readRetry, nil
	}
	return e, readStopped, err
}

// readAnswer collects the records of a read answer within its bounds.
type readAnswer struct {
	out       ReadResponse
	maxBytes  int // of bodies
	hardLimit int // of the encoded answer
	bodies    int
	encoded   int
}

// add appends the record e unless the answer is full; full reports that
// it was. max_bytes bounds the bodies, and the first record always goes
// out however large; the encoded answer must still fit hardLimit.
func (a *readAnswer) add(e tiers.Entry, stream string) (full bool, err error) {
	m := toMessage(e)
	n := encodedSize(m)
	if a.encoded+n > a.hardLimit {
		if len(a.out.Messages) == 0 {
			return true, Errorf(CodeTooLarge, "record %d of %s takes %d bytes encoded, over the %d-byte answer limit", e.Offset, stream, n, a.hardLimit)
		}
		return true, nil
	}
	if len(a.out.Messages) > 0 && a.bodies+len(m.Body) > a.maxBytes {
		return true, nil
	}
	a.bodies += len(m.Body)
	a.encoded += n
	a.out.Messages = append(a.out.Messages, m)
	a.out.Next = e.Offset + 1
	return false, nil
}

func toMessage(e tiers.Entry) Message {
	m := Message{Offset: e.Offset, ExtID: e.ExtID, AppendMS: e.AppendMS}
	env, err := ingest.DecodeEnvelope(e.Payload)
	if err != nil {
		m.Body, m.Raw = append([]byte(nil), e.Payload...), true
		return m
	}
	m.Subject, m.Header, m.Body = env.Subject, env.Header, append([]byte(nil), env.Body...)
	return m
}

// Inspect describes the manifest of stream ("" for all): its chunk files,
// the folded state of each segment and the recent last records.
func Inspect(s *tiers.Store, req ManifestInspectRequest) (ManifestInspectResponse, error) {
	if err := checkStream(s, req.Stream); err != nil {
		return ManifestInspectResponse{}, err
	}
	out := ManifestInspectResponse{Streams: []StreamManifest{}}
	for _, name := range s.Streams() {
		if req.Stream != "" && name != req.Stream {
			continue
		}
		idx, err := s.ManifestIndex(name)
		if err != nil {
			return out, err
		}
		chunks, err := s.ManifestChunks(name)
		if err != nil {
			return out, err
		}
		sm := StreamManifest{Stream: name, Records: idx.Records, Chunks: []ChunkView{}, Segments: manifestSegmentsOf(idx.Segments()), Recent: []RecordView{}}
		for _, c := range chunks {
			h := c.Header
			sm.Chunks = append(sm.Chunks, ChunkView{Index: h.Index, BaseRecord: h.BaseRecord, Records: h.RecordCount,
				CommittedLen: h.CommittedLen, Sealed: h.Sealed(), Uploaded: h.Uploaded()})
		}
		if req.Recent > 0 {
			recent, err := recentRecords(vfs.Default, chunks, req.Recent)
			if err != nil {
				return out, err
			}
			sm.Recent = recent
		}
		out.Streams = append(out.Streams, sm)
	}
	return out, nil
}

// recentRecords reads the last n committed records from the newest chunks.
func recentRecords(fs vfs.FS, chunks []manifest.ChunkInfo, n int) ([]RecordView, error) {
	var out []RecordView
	for i := len(chunks) - 1; i >= 0 && len(out) < n; i-- {
		data, err := vfs.ReadFile(fs, chunks[i].Path)
		if err != nil {
			return nil, fmt.Errorf("read chunk %d: %w", chunks[i].Header.Index, err)
		}
		_, recs, err := manifest.ReadChunk(data)
		if err != nil {
			return nil, fmt.Errorf("chunk %d: %w", chunks[i].Header.Index, err)
		}
		var views []RecordView
		for _, cr := range recs {
			views = append(views, recordView(chunks[i].Header.Index, cr))
		}
		if len(views) > n-len(out) {
			views = views[len(views)-(n-len(out)):]
		}
		out = append(views, out...)
	}
	if out == nil {
		out = []RecordView{}
	}
	return out, nil
}

func recordView(chunk uint64, cr manifest.ChunkRecord) RecordView {
	r := cr.Record
	p := ""
	if r.Payload != nil {
		p = strings.TrimPrefix(fmt.Sprintf("%+v", r.Payload), "&")
	}
	return RecordView{Chunk: chunk, Offset: cr.Offset, Type: r.Type.String(), Segment: r.Segment,
		LogicalOffset: r.LogicalOffset, TimestampMS: r.TimestampMS, Payload: p}
}

// ListSnapshots lists the snapshot files of stream ("" for all) under root.
func ListSnapshots(fs vfs.FS, root, stream string) (SnapshotListResponse, error) {
	if fs == nil {
		fs = vfs.Default
	}
	out := SnapshotListResponse{Snapshots: []SnapshotInfo{}}
	streams, err := fsck.StreamsUnder(fs, filepath.Join(root, "manifest"))
	if err != nil {
		return out, err
	}
	if stream != "" && !slices.Contains(streams, stream) {
		return out, fmt.Errorf("%w: %q", tiers.ErrStreamNotFound, stream)
	}
	for _, name := range streams {
		if stream != "" && name != stream {
			continue
		}
		dir := filepath.Join(root, "manifest", name)
		ents, err := fs.ReadDir(dir)
		if err != nil {
			return out, fmt.Errorf("list %s: %w", dir, err)
		}
		for _, e := range ents {
			idStr, ok := strings.CutPrefix(e.Name(), "snapshot_")
			if !ok || !strings.HasSuffix(idStr, ".bin") {
				continue
			}
			id, err := strconv.ParseUint(strings.TrimSuffix(idStr, ".bin"), 10, 64)
			if err != nil {
				continue
			}
			data, err := vfs.ReadFile(fs, filepath.Join(dir, e.Name()))
			if err != nil {
				return out, fmt.Errorf("read snapshot %d of %s: %w", id, name, err)
			}
			info := SnapshotInfo{Stream: name, SnapshotID: id, Bytes: int64(len(data))}
			if snap, err := manifest.DecodeSnapshot(data); err != nil {
				info.Reason = err.Error()
			} else {
				info.Valid, info.Chunk, info.Offset = true, snap.Position.Chunk, snap.Position.Offset
			}
			out.Snapshots = append(out.Snapshots, info)
		}
	}
	sort.Slice(out.Snapshots, func(i, j int) bool {
		a, b := out.Snapshots[i], out.Snapshots[j]
		if a.Stream != b.Stream {
			return a.Stream < b.Stream
		}
		return a.SnapshotID < b.SnapshotID
	})
	return out, nil
}
