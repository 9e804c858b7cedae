package control

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bop-aof/aof/config"
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

// OpenOffline opens the store of a stopped gateway's data root, opts.Root,
// for the offline commands. opts are the options the configuration gives
// (package internal/options), as the gateway builds them: with library
// defaults a smaller Tier 1 budget would evict the artifacts of a root
// configured larger. opts.Tier2 may be nil (no Tier 2 configured): the
// store then reads what is local and reports Tier 2 residency from the
// manifest.
//
// Opening runs the store's recovery (manifest replay, trimming an unsealed
// tail segment, resuming pending compressions), exactly as the gateway's
// next start would, so it takes the writer's lock of the root: while a
// gateway has the root open it fails with an error that wraps
// tiers.ErrRootLocked, names the gateway's pid and points to the online
// command.
func OpenOffline(ctx context.Context, opts tiers.Options) (*tiers.Store, error) {
	root := opts.Root
	if err := checkRoot(root); err != nil {
		return nil, err
	}
	s, err := tiers.Open(ctx, opts)
	if err != nil {
		if errors.Is(err, tiers.ErrRootLocked) {
			return nil, rootInUse(err)
		}
		return nil, fmt.Errorf("open store at %s: %w", root, err)
	}
	return s, nil
}

// checkRoot refuses an empty or missing data root: an offline command
// must not create one.
func checkRoot(root string) error {
	if root == "" {
		return Errorf(CodeBadRequest, "no data root given")
	}
	if _, err := os.Stat(root); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Errorf(CodeNotFound, "data root %s does not exist", root)
		}
		return fmt.Errorf("stat data root: %w", err)
	}
	return nil
}

// rootInUse explains a refused root lock to the operator of an offline
// command.
func rootInUse(err error) error {
	return fmt.Errorf("%w; offline commands (--root) need the gateway stopped: while it runs, leave out --root and the command asks the gateway", err)
}

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
	segs := s.Segments(stream)
	if segs == nil {
		segs = []tiers.SegmentStatus{}
	}
	out := DumpResponse{Segments: segs, Summary: DumpSummary{Queues: s.Queues(), Hydration: latency(in)}}
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
	out := SegmentsListResponse{Segments: []tiers.SegmentStatus{}}
	for _, st := range s.Segments(req.Stream) {
		if req.Tier == nil || InTier(st, *req.Tier) {
			out.Segments = append(out.Segments, st)
		}
	}
	return out, nil
}

// InTier reports whether st has a copy in tier 0, 1 or 2.
func InTier(st tiers.SegmentStatus, tier int) bool {
	switch tier {
	case 0:
		return st.InTier0
	case 1:
		return st.InTier1
	case 2:
		return st.InTier2
	}
	return false
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
	count, maxBytes := req.Count, req.MaxBytes
	if count <= 0 {
		count = DefaultReadCount
	}
	if count > MaxReadCount {
		count = MaxReadCount
	}
	if maxBytes <= 0 {
		maxBytes = DefaultReadMaxBytes
	}
	maxBytes = min(maxBytes, MaxReadMaxBytes)
	encoded := 0
	r, err := s.Reader(req.Stream)
	if err != nil {
		return ReadResponse{}, err
	}
	defer r.Close()
	r.Seek(req.From)
	// A handful of records from a segment that is only in Tier 2 are
	// served with ranged GETs of their frames, without hydrating it.
	r.SetRangedReads(count <= RangedReadMaxCount)
	out := ReadResponse{Stream: req.Stream, Messages: []Message{}, Next: req.From}
	size := 0
	backoff := 10 * time.Millisecond
	for len(out.Messages) < count {
		e, err := r.TryNext(ctx)
		switch {
		case err == nil:
		case backpressure.Is(err, backpressure.Tail):
			if len(out.Messages) == 0 && req.WaitMS > 0 {
				wait := min(time.Duration(req.WaitMS)*time.Millisecond, MaxReadWait)
				wctx, cancel := context.WithTimeout(ctx, wait)
				e, err = r.Next(wctx)
				cancel()
				if err != nil {
					if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
						out.AtTail = true
						return out, nil
					}
					return out, err
				}
				break
			}
			out.AtTail = true
			return out, nil
		case backpressure.Is(err, backpressure.Hydration):
			// The segment is coming back from Tier 2: back off 10 ms to
			// 250 ms as REFERENCE.md asks, until ctx ends.
			select {
			case <-ctx.Done():
				if len(out.Messages) > 0 {
					return out, nil
				}
				return out, fmt.Errorf("read %s offset %d: waiting for hydration: %w", req.Stream, r.Offset(), ctx.Err())
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 250*time.Millisecond)
			continue
		default:
			if len(out.Messages) > 0 {
				return out, nil
			}
			return out, err
		}
		m := toMessage(e)
		n := encodedSize(m)
		// max_bytes bounds the bodies, and the first record always goes
		// out however large; the encoded answer must still fit hardLimit.
		if encoded+n > hardLimit {
			if len(out.Messages) == 0 {
				return out, Errorf(CodeTooLarge, "record %d of %s takes %d bytes encoded, over the %d-byte answer limit", e.Offset, req.Stream, n, hardLimit)
			}
			break
		}
		if len(out.Messages) > 0 && size+len(m.Body) > maxBytes {
			break
		}
		size += len(m.Body)
		encoded += n
		out.Messages = append(out.Messages, m)
		out.Next = e.Offset + 1
	}
	return out, nil
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
		sm := StreamManifest{Stream: name, Records: idx.Records, Chunks: []ChunkView{}, Segments: idx.Segments(), Recent: []RecordView{}}
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
	streams, err := streamDirs(fs, filepath.Join(root, "manifest"))
	if err != nil {
		return out, err
	}
	if stream != "" && !contains(streams, stream) {
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

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// streamDirs lists the stream directories under dir, sorted; none when dir
// does not exist.
func streamDirs(fs vfs.FS, dir string) ([]string, error) {
	ents, err := fs.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}
