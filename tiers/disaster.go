package tiers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/segment"
	"github.com/bop-aof/aof/tiers/tier1"
	"github.com/bop-aof/aof/tiers/tier2"
)

// RecoveredMarker is the file RecoverFromTier2 leaves in the data root. A
// gateway that finds it re-reads its ingest stream from the start once, so
// that messages acknowledged before the disaster but never uploaded are
// stored again (sequence dedupe skips what Tier 2 already holds), then
// removes it.
const RecoveredMarker = "RECOVERED_FROM_TIER2"

// RecoverOptions configure RecoverFromTier2.
type RecoverOptions struct {
	Root   string
	FS     vfs.FS
	Tier2  tier2.Bucket
	Logger *slog.Logger
	// Force allows a data root that still holds manifest or segment files;
	// they are kept and Tier 2 copies are written beside them.
	Force bool
}

// RecoverReport says what RecoverFromTier2 rebuilt.
type RecoverReport struct {
	Streams []StreamRecovery `json:"streams"`
}

// StreamRecovery is one stream's part of a RecoverReport.
type StreamRecovery struct {
	Stream          string   `json:"stream"`
	ManifestChunks  int      `json:"manifest_chunks"`
	Snapshots       int      `json:"snapshots"`
	Segments        int      `json:"segments_in_tier2"`
	Restored        []uint64 `json:"segments_restored_to_tier0,omitempty"`
	LastExtID       uint64   `json:"last_ext_id"`
	NotInTier2      []uint64 `json:"segments_lost,omitempty"`
	ManifestRecords uint64   `json:"manifest_records"`
	// Holes are the ext_id (ingest sequence) ranges of lost segments below
	// segments that survived. The gateway stores them again when the
	// ingest stream redelivers them (HolesFile); what the ingest stream
	// no longer holds is gone.
	Holes []ExtRange `json:"lost_sequences,omitempty"`
	// Unbounded are lost segments whose sequences the recovery cannot
	// bound: they held records stored again by an earlier recovery, older
	// than the segments before them. Their messages are not stored again;
	// the log event and the report say so.
	Unbounded []uint64 `json:"lost_segments_range_unknown,omitempty"`
	// afterSegment is the highest segment id the recovery knew.
	afterSegment uint64
}

// RecoverFromTier2 rebuilds a data root whose Tier 0, Tier 1 and manifest
// were lost, from what Tier 2 holds: the uploaded manifest chunks and
// snapshots are downloaded, and every segment object the rebuilt manifest
// does not show as uploaded (segments sealed after the last uploaded
// manifest chunk) is restored as a sealed Tier 0 file, which the next Open
// reconciles into the manifest. Segments the manifest knew only locally are
// reported as lost (their records may come back from the ingest stream, see
// RecoveredMarker).
func RecoverFromTier2(ctx context.Context, o RecoverOptions) (RecoverReport, error) {
	var rep RecoverReport
	if o.Tier2 = bucketOrNil(o.Tier2); o.Tier2 == nil {
		return rep, errors.New("tiers: recover: no Tier 2 client")
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if !o.Force {
		for _, d := range []string{"tier0", "tier1", "manifest"} {
			entries, err := o.FS.ReadDir(filepath.Join(o.Root, d))
			if err == nil && len(entries) > 0 {
				return rep, fmt.Errorf("tiers: recover: %s is not empty; recover into an empty data root (or force)", filepath.Join(o.Root, d))
			}
		}
	}
	chunks, err := listKeys(ctx, o.Tier2, "manifest/", ".mlog")
	if err != nil {
		return rep, err
	}
	snaps, err := listKeys(ctx, o.Tier2, "snapshots/", ".bin")
	if err != nil {
		return rep, err
	}
	segs, err := listKeys(ctx, o.Tier2, "segments/", ".zst")
	if err != nil {
		return rep, err
	}
	streams := map[string]bool{}
	for _, m := range []map[string][]uint64{chunks, snaps, segs} {
		for s := range m {
			streams[s] = true
		}
	}
	names := make([]string, 0, len(streams))
	for s := range streams {
		names = append(names, s)
	}
	sort.Strings(names)
	for _, stream := range names {
		sr, err := recoverStream(ctx, o, stream, chunks[stream], snaps[stream], segs[stream])
		if err != nil {
			return rep, fmt.Errorf("tiers: recover stream %s: %w", stream, err)
		}
		rep.Streams = append(rep.Streams, sr)
	}
	holes := map[string]streamHoles{}
	for _, sr := range rep.Streams {
		if len(sr.Holes) > 0 {
			holes[sr.Stream] = streamHoles{AfterSegment: sr.afterSegment, Holes: sr.Holes}
		}
	}
	if err := o.FS.MkdirAll(o.Root, 0o755); err != nil {
		return rep, err
	}
	// Always written, empty or not: a holes file from an earlier
	// recovery must not outlive this one.
	if err := writeHoles(o.FS, o.Root, holes); err != nil {
		return rep, fmt.Errorf("tiers: recover: write %s: %w", HolesFile, err)
	}
	marker, _ := json.Marshal(map[string]any{"recovered_at": time.Now().UTC().Format(time.RFC3339), "report": rep})
	if err := vfs.WriteFileAtomic(o.FS, filepath.Join(o.Root, RecoveredMarker), marker, 0o644); err != nil {
		return rep, fmt.Errorf("tiers: recover: write marker: %w", err)
	}
	return rep, nil
}

// listKeys lists <prefix><stream>/<n><ext> objects as stream -> sorted n.
func listKeys(ctx context.Context, c tier2.Bucket, prefix, ext string) (map[string][]uint64, error) {
	objs, err := tier2.List(ctx, c, prefix)
	if err != nil {
		return nil, fmt.Errorf("tiers: recover: list %s: %w", prefix, err)
	}
	out := map[string][]uint64{}
	for _, o := range objs {
		rest := strings.TrimPrefix(o.Key, prefix)
		stream, file, ok := strings.Cut(rest, "/")
		num, isExt := strings.CutSuffix(file, ext)
		if !ok || !isExt {
			continue
		}
		n, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			continue
		}
		out[stream] = append(out[stream], n)
	}
	for s := range out {
		sort.Slice(out[s], func(i, j int) bool { return out[s][i] < out[s][j] })
	}
	return out, nil
}

func download(ctx context.Context, o RecoverOptions, key, path string) error {
	var buf bytes.Buffer
	if _, err := o.Tier2.Get(ctx, key, &buf); err != nil {
		return fmt.Errorf("download %s: %w", key, err)
	}
	if err := o.FS.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return vfs.WriteFileAtomic(o.FS, path, buf.Bytes(), 0o644)
}

func recoverStream(ctx context.Context, o RecoverOptions, stream string, chunks, snaps, segs []uint64) (StreamRecovery, error) {
	sr := StreamRecovery{Stream: stream, ManifestChunks: len(chunks), Snapshots: len(snaps), Segments: len(segs)}
	idx, err := downloadManifest(ctx, o, stream, chunks, snaps)
	if err != nil {
		return sr, err
	}
	sr.ManifestRecords = idx.Records
	inTier2 := map[uint64]bool{}
	for _, id := range segs {
		inTier2[id] = true
	}
	dir0 := filepath.Join(o.Root, "tier0", stream)
	restored, highest, err := restoreUnrecordedSegments(ctx, o, &sr, idx, segs, inTier2)
	if err != nil {
		return sr, err
	}
	for _, st := range idx.Segments() {
		if !st.Deleted && !inTier2[st.Segment] && st.Sealed {
			sr.NotInTier2 = append(sr.NotInTier2, st.Segment)
		}
		// The bucket, not the manifest, says what survived: an object
		// can be deleted behind the gateway's back.
		if inTier2[st.Segment] && st.LastExtID > sr.LastExtID {
			sr.LastExtID = st.LastExtID
		}
	}
	if highest > 0 {
		if err := segment.WriteCurrentSealed(o.FS, dir0, highest); err != nil {
			return sr, err
		}
	}
	sr.Holes, sr.Unbounded, sr.afterSegment = lostRanges(idx.Segments(), inTier2, restored)
	for _, id := range sr.Unbounded {
		o.Logger.Error("stream_recovery_segment_range_unknown", "stream", stream, "segment", id,
			"note", "the segment held records stored again by an earlier recovery; they are not restored")
	}
	for _, h := range sr.Holes {
		o.Logger.Warn("stream_recovery_sequences_lost", "stream", stream, "after_sequence", h.From, "to_sequence", h.To,
			"note", "a lost segment lies below segments that survived; the gateway stores these again if the ingest stream still holds them")
	}
	o.Logger.Info("stream_recovered_from_tier2", "stream", stream, "chunks", len(chunks), "snapshots", len(snaps),
		"segments", len(segs), "restored", len(sr.Restored), "lost", len(sr.NotInTier2))
	return sr, nil
}

// downloadManifest downloads the manifest chunks of stream and the newest
// usable snapshot, and returns the index they fold to.
func downloadManifest(ctx context.Context, o RecoverOptions, stream string, chunks, snaps []uint64) (*manifest.Index, error) {
	dir := filepath.Join(o.Root, "manifest", stream)
	if err := o.FS.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	for _, c := range chunks {
		if err := download(ctx, o, manifest.ChunkKey(stream, c), manifest.ChunkPath(dir, c)); err != nil {
			return nil, err
		}
	}
	if err := restoreSnapshot(ctx, o, stream, dir, chunks, snaps); err != nil {
		return nil, err
	}
	man, err := manifest.Open(o.FS, dir, stream, manifest.Options{Logger: o.Logger})
	if err != nil {
		return nil, fmt.Errorf("open downloaded manifest: %w", err)
	}
	idx := man.Index()
	if err := man.Close(); err != nil {
		return nil, err
	}
	return idx, nil
}

// restoreUnrecordedSegments restores the segments uploaded after the last
// uploaded manifest chunk as sealed Tier 0 files, and returns their
// footers and the highest id restored. An object that fails its checksum
// or does not decode (say a repair re-upload that had not replaced it yet)
// holds nothing usable: it counts as lost, like a missing object (removed
// from inTier2), so its sequences are stored again from the ingest stream.
func restoreUnrecordedSegments(ctx context.Context, o RecoverOptions, sr *StreamRecovery, idx *manifest.Index, segs []uint64, inTier2 map[uint64]bool) (map[uint64]segment.Footer, uint64, error) {
	stream := sr.Stream
	dir0 := filepath.Join(o.Root, "tier0", stream)
	var highest uint64
	restored := map[uint64]segment.Footer{}
	for _, id := range segs {
		if st, ok := idx.Get(id); ok && st.Sealed && st.InTier2 {
			continue
		}
		ft, err := restoreObject(ctx, o, stream, dir0, id)
		if isCorruption(err) {
			o.Logger.Error("stream_recovery_segment_object_corrupt", "stream", stream, "segment", id,
				"key", tier2.SegmentKey(stream, id), "err", err,
				"note", "counted as lost; its sequences are stored again if the ingest stream still holds them")
			delete(inTier2, id)
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("restore segment %d: %w", id, err)
		}
		sr.Restored = append(sr.Restored, id)
		restored[id] = ft
		sr.LastExtID = max(sr.LastExtID, ft.LastExtID)
		highest = max(highest, id)
	}
	return restored, highest, nil
}

// restoreSnapshot downloads the newest snapshot of stream that recovery
// can use: one that verifies and that the chunks in Tier 2 follow without
// a gap. Newer ones are skipped: a corrupt one, and one uploaded before the
// chunk holding its position was sealed (that chunk never reached Tier 2,
// and the manifest cannot replay from the middle of a missing chunk). The
// manifest then falls back to the older snapshot plus the chunks after it,
// which is what Tier 2 manifest pruning keeps (manifest/tier2prune.go).
//
// A skipped snapshot that verifies but is ahead of every chunk in Tier 2
// is deleted from the bucket: its chunk will never arrive (the node that wrote it is gone), and the rebuilt
// manifest numbers new snapshots from the one used, so it would otherwise
// meet a stale snapshot under a new snapshot's id whose position names a
// chunk index the new manifest reuses.
func restoreSnapshot(ctx context.Context, o RecoverOptions, stream, dir string, chunks, snaps []uint64) error {
	for i := len(snaps) - 1; i >= 0; i-- {
		id := snaps[i]
		key := manifest.SnapshotKey(stream, id)
		var buf bytes.Buffer
		_, err := o.Tier2.Get(ctx, key, &buf)
		var oe *tier2.CorruptionError
		if err != nil && !errors.As(err, &oe) {
			return fmt.Errorf("download %s: %w", key, err)
		}
		var snap *manifest.Snapshot
		if err == nil {
			if snap, err = manifest.DecodeSnapshot(buf.Bytes()); err == nil && snap.ID != id {
				err = fmt.Errorf("%w: id %d in object of snapshot %d", manifest.ErrSnapshot, snap.ID, id)
			}
		}
		if err != nil {
			o.Logger.Warn("stream_recovery_snapshot_skipped", "stream", stream, "snapshot", id, "reason", "does not verify", "err", err)
			continue
		}
		if !snapshotReplayable(snap.Position, chunks) {
			o.Logger.Warn("stream_recovery_snapshot_skipped", "stream", stream, "snapshot", id,
				"reason", "the chunks after its position are not in Tier 2", "position", snap.Position.String())
			if n := len(chunks); n == 0 || chunks[n-1] < snap.Position.Chunk {
				if err := o.Tier2.Delete(ctx, key); err != nil {
					return fmt.Errorf("delete unusable snapshot %s: %w", key, err)
				}
			}
			continue
		}
		if err := o.FS.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return vfs.WriteFileAtomic(o.FS, manifest.SnapshotPath(dir, id), buf.Bytes(), 0o644)
	}
	return nil
}

// snapshotReplayable reports whether the chunks in Tier 2 (ascending)
// continue a snapshot at pos: they run from pos.Chunk without a gap, and
// hold pos.Chunk itself unless pos is that chunk's start.
func snapshotReplayable(pos manifest.Position, chunks []uint64) bool {
	next := pos.Chunk
	for _, c := range chunks {
		if c < pos.Chunk {
			continue
		}
		if c != next {
			return false
		}
		next++
	}
	return next > pos.Chunk || pos.Offset <= manifest.ChunkHeaderSize
}

// restoreObject downloads segment id's object and restores it as a
// verified sealed Tier 0 file in dir0.
func restoreObject(ctx context.Context, o RecoverOptions, stream, dir0 string, id uint64) (segment.Footer, error) {
	if err := o.FS.MkdirAll(dir0, 0o755); err != nil {
		return segment.Footer{}, err
	}
	tmp := filepath.Join(dir0, segment.FileName(id)+".zst.tmp")
	defer o.FS.Remove(tmp)
	if err := download(ctx, o, tier2.SegmentKey(stream, id), tmp); err != nil {
		return segment.Footer{}, err
	}
	return restoreSegment(o.FS, tmp, filepath.Join(dir0, segment.FileName(id)))
}

// isCorruption reports whether err says the bytes are bad, rather than
// that they could not be read.
func isCorruption(err error) bool {
	var oe *tier2.CorruptionError
	var ae *tier1.CorruptionError
	var se *segment.CorruptionError
	return errors.As(err, &oe) || errors.As(err, &ae) || errors.As(err, &se)
}

// restoreSegment decompresses a Tier 1/2 artifact into a segment file and
// verifies it end to end.
func restoreSegment(fs vfs.FS, artifact, path string) (segment.Footer, error) {
	ar, err := tier1.OpenArtifact(fs, artifact)
	if err != nil {
		return segment.Footer{}, err
	}
	data, err := ar.ReadRange(0, ar.Size())
	ar.Close()
	if err != nil {
		return segment.Footer{}, err
	}
	if err := vfs.WriteFileAtomic(fs, path, data, 0o644); err != nil {
		return segment.Footer{}, err
	}
	ft, err := segment.Verify(fs, path)
	if err != nil {
		fs.Remove(path)
		return segment.Footer{}, err
	}
	return ft, nil
}

// TakeRecoveredMarker reports whether root was rebuilt by RecoverFromTier2
// and not yet re-read by a gateway; done removes the marker.
func TakeRecoveredMarker(fs vfs.FS, root string) (found bool, done func() error) {
	if fs == nil {
		fs = vfs.Default
	}
	path := filepath.Join(root, RecoveredMarker)
	if _, err := fs.Stat(path); err != nil {
		return false, func() error { return nil }
	}
	return true, func() error {
		if err := fs.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return fs.SyncDir(root)
	}
}

// lostRanges returns the ext_id ranges of the segments Tier 2 no longer
// holds, and the highest segment id the recovery knew.
//
// segs is the downloaded manifest's index and restored the footers of the
// segments restored from objects it did not show as uploaded. A lost
// segment's range starts after the last ext_id of the segment before it
// (ingest appends in sequence order, and the manifest keeps only the
// last); a restored segment whose first ext_id leaves a gap after the
// segments before it reveals lost segments the manifest never saw sealed.
// Lost segments above every survivor count too: the manifest may still
// show them as uploaded, and the gateway would count them as held.
func lostRanges(segs []manifest.SegmentState, inTier2 map[uint64]bool, restored map[uint64]segment.Footer) (holes []ExtRange, unbounded []uint64, highest uint64) {
	type known struct {
		id, first, last uint64 // 0: not known
		lost, deleted   bool
	}
	byID := map[uint64]known{}
	for _, st := range segs {
		byID[st.Segment] = known{id: st.Segment, last: st.LastExtID, deleted: st.Deleted,
			lost: !st.Deleted && !inTier2[st.Segment]}
	}
	for id, ft := range restored {
		k := known{id: id}
		if ft.RecordCount > 0 {
			k.first, k.last = ft.FirstExtID, ft.LastExtID
		}
		byID[id] = k
	}
	list := make([]known, 0, len(byID))
	for _, k := range byID {
		list = append(list, k)
		highest = max(highest, k.id)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].id < list[j].id })

	add := func(from, to uint64, seg []uint64) {
		if to <= from {
			return
		}
		if n := len(holes); n > 0 && holes[n-1].To == from {
			holes[n-1].To = to // adjacent: one range
			holes[n-1].Segments = append(holes[n-1].Segments, seg...)
			return
		}
		holes = append(holes, ExtRange{From: from, To: to, Segments: seg})
	}
	// prev is the highest ext_id of the segments before, retired ones
	// included: what retention removed is not to come back. unknown are
	// lost segments whose range the manifest does not know (opened but
	// not sealed when it was last uploaded, or missing ids): a restored
	// segment after them bounds it.
	var prev, lastID uint64
	var unknown []uint64
	for _, k := range list {
		for id := lastID + 1; lastID > 0 && id < k.id; id++ {
			unknown = append(unknown, id) // an id with no trace at all
		}
		lastID = k.id
		switch {
		case k.deleted:
		case k.lost && k.last == 0:
			unknown = append(unknown, k.id)
			continue
		case k.lost && k.last > prev:
			add(prev, k.last, append(unknown, k.id))
			unknown = nil
		case k.lost:
			// Older ext_ids than the segments before it: records stored
			// again by an earlier recovery. Which ones, the manifest does
			// not say (it keeps only the last ext_id).
			unbounded = append(unbounded, k.id)
		case !k.lost && len(unknown) > 0 && k.first > 0:
			add(prev, k.first-1, unknown)
			unknown = nil
		}
		prev = max(prev, k.last)
	}
	return holes, unbounded, highest
}
