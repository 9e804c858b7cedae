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
	"slices"
	"sort"
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
	streams, err := listTier2(ctx, o.Tier2)
	if err != nil {
		return rep, err
	}
	names := make([]string, 0, len(streams))
	for s := range streams {
		names = append(names, s)
	}
	sort.Strings(names)
	for _, stream := range names {
		sr, err := recoverStream(ctx, o, stream, streams[stream])
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

// streamObjects is what Tier 2 holds of one stream, in both key layouts.
type streamObjects struct {
	manifest manifest.Tier2Objects
	segments map[uint64][]uint64 // epoch -> segment ids
	keys     map[string]bool     // every segment object's key
}

// listTier2 lists the manifest, snapshot and segment objects of every
// stream, keys with and without an epoch part alike.
func listTier2(ctx context.Context, c tier2.Bucket) (map[string]*streamObjects, error) {
	out := map[string]*streamObjects{}
	for _, prefix := range []string{tier2.KindManifest + "/", tier2.KindSnapshot + "/", tier2.KindSegment + "/"} {
		objs, err := tier2.List(ctx, c, prefix)
		if err != nil {
			return nil, fmt.Errorf("tiers: recover: list %s: %w", prefix, err)
		}
		for _, obj := range objs {
			k, ok := tier2.ParseKey(obj.Key)
			if !ok {
				continue
			}
			so := out[k.Stream]
			if so == nil {
				so = &streamObjects{segments: map[uint64][]uint64{}, keys: map[string]bool{}}
				out[k.Stream] = so
			}
			switch k.Kind {
			case tier2.KindManifest:
				so.manifest.AddChunk(k.Epoch, k.ID)
			case tier2.KindSnapshot:
				so.manifest.AddSnapshot(k.Epoch, k.ID)
			case tier2.KindSegment:
				so.segments[k.Epoch] = append(so.segments[k.Epoch], k.ID)
				so.keys[obj.Key] = true
			}
		}
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

func recoverStream(ctx context.Context, o RecoverOptions, stream string, objs *streamObjects) (StreamRecovery, error) {
	sr := StreamRecovery{Stream: stream}
	chain, err := chooseChain(ctx, o, stream, objs.manifest)
	if err != nil {
		return sr, err
	}
	sr.ManifestChunks, sr.Snapshots = len(chain.Chunks), len(objs.manifest.Snapshots[chain.Epoch])
	idx, err := downloadManifest(ctx, o, stream, chain)
	if err != nil {
		return sr, err
	}
	sr.ManifestRecords = idx.Records
	// Segment objects the chain references by key, whatever their epoch,
	// and the chain's own epoch's objects it has not recorded yet (see
	// restoreUnrecordedSegments); any other epoch's objects are a
	// zombie's or were written again by the owner after it: not history.
	segs := sorted(objs.segments[chain.Epoch])
	inTier2 := map[uint64]bool{}
	for _, id := range segs {
		inTier2[id] = true
	}
	for _, st := range idx.Segments() {
		if st.Tier2Key != "" && objs.keys[st.Tier2Key] {
			inTier2[st.Segment] = true
		}
	}
	sr.Segments = len(inTier2)
	dir0 := filepath.Join(o.Root, "tier0", stream)
	restored, highest, err := restoreUnrecordedSegments(ctx, o, &sr, idx, chain.Epoch, segs, inTier2)
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
	// The rebuilt copy is the chain of chain.Epoch: an owner keeps it
	// unless another owner archived past that chain (ownership.Stale).
	if err := manifest.WriteLocalEpoch(o.FS, filepath.Join(o.Root, "manifest", stream), chain.Epoch); err != nil {
		return sr, fmt.Errorf("record the epoch of the rebuilt manifest: %w", err)
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
	o.Logger.Info("stream_recovered_from_tier2", "stream", stream, "epoch", chain.Epoch, "chunks", sr.ManifestChunks,
		"snapshots", sr.Snapshots, "segments", sr.Segments, "restored", len(sr.Restored), "lost", len(sr.NotInTier2))
	return sr, nil
}

func sorted(v []uint64) []uint64 {
	out := append([]uint64(nil), v...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// downloadManifest downloads the chain's manifest chunks and snapshot,
// and returns the index they fold to.
func downloadManifest(ctx context.Context, o RecoverOptions, stream string, chain manifest.Tier2Chain) (*manifest.Index, error) {
	dir := filepath.Join(o.Root, "manifest", stream)
	if err := o.FS.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	for _, c := range chain.Chunks {
		if err := download(ctx, o, manifest.ChunkKeyAt(stream, chain.Epoch, c), manifest.ChunkPath(dir, c)); err != nil {
			return nil, err
		}
	}
	if s := chain.Snapshot; s != nil {
		if err := vfs.WriteFileAtomic(o.FS, manifest.SnapshotPath(dir, s.ID), chain.SnapshotData, 0o644); err != nil {
			return nil, err
		}
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
func restoreUnrecordedSegments(ctx context.Context, o RecoverOptions, sr *StreamRecovery, idx *manifest.Index, epoch uint64, segs []uint64, inTier2 map[uint64]bool) (map[uint64]segment.Footer, uint64, error) {
	stream := sr.Stream
	dir0 := filepath.Join(o.Root, "tier0", stream)
	var highest uint64
	restored := map[uint64]segment.Footer{}
	for _, id := range segs {
		if st, ok := idx.Get(id); ok && st.Sealed && st.InTier2 {
			continue
		}
		key := tier2.SegmentKeyAt(stream, epoch, id)
		ft, err := restoreObject(ctx, o, key, dir0, id)
		if isCorruption(err) {
			o.Logger.Error("stream_recovery_segment_object_corrupt", "stream", stream, "segment", id,
				"key", key, "err", err,
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

// chooseChain picks the manifest chain of stream to rebuild from, by the
// rule of manifest.ChooseTier2Chain: the highest epoch with a usable
// snapshot, so a new owner's chain wins over what a zombie of an older
// epoch wrote after the takeover. Newer snapshots it skips are logged: a
// corrupt one, and one uploaded before the chunk holding its position was
// sealed (that chunk never reached Tier 2, and the manifest cannot replay
// from the middle of a missing chunk). The older snapshot plus the chunks
// after it is what Tier 2 manifest pruning keeps (manifest/tier2prune.go).
//
// A skipped snapshot that verifies but is ahead of every chunk of its
// epoch is deleted from the bucket: its chunk will never arrive (the node
// that wrote it is gone), and the rebuilt manifest numbers new snapshots
// from the one used, so it would otherwise meet a stale snapshot under a
// new snapshot's id whose position names a chunk index the new manifest
// reuses.
func chooseChain(ctx context.Context, o RecoverOptions, stream string, objs manifest.Tier2Objects) (manifest.Tier2Chain, error) {
	chain, skipped, err := manifest.ChooseTier2Chain(objs, snapshotLoader(ctx, o, stream))
	for _, sk := range skipped {
		o.Logger.Warn("stream_recovery_snapshot_skipped", "stream", stream, "epoch", sk.Epoch, "snapshot", sk.ID,
			"reason", sk.Reason, "position", sk.Position.String(), "err", sk.Err)
		if !sk.Stale {
			continue
		}
		key := manifest.SnapshotKeyAt(stream, sk.Epoch, sk.ID)
		if derr := o.Tier2.Delete(ctx, key); derr != nil {
			return chain, fmt.Errorf("delete unusable snapshot %s: %w", key, derr)
		}
	}
	if err != nil {
		return chain, err
	}
	if epochs := len(objs.Chunks) + len(objs.Snapshots); epochs > 0 {
		args := []any{"stream", stream, "epoch", chain.Epoch, "snapshot", snapshotID(chain.Snapshot), "chunks", len(chain.Chunks)}
		if chain.Epoch > 0 {
			// Objects of a lower epoch are not read after these.
			args = append(args, "note", "a gateway writing on from this root must use a higher epoch")
		}
		o.Logger.Info("stream_recovery_chain_chosen", args...)
	}
	return chain, nil
}

// snapshotLoader downloads a snapshot object of stream; one that fails
// its checksum is manifest.ErrObjectCorrupt.
func snapshotLoader(ctx context.Context, o RecoverOptions, stream string) func(epoch, id uint64) ([]byte, error) {
	return func(epoch, id uint64) ([]byte, error) {
		key := manifest.SnapshotKeyAt(stream, epoch, id)
		var buf bytes.Buffer
		_, err := o.Tier2.Get(ctx, key, &buf)
		if oe := (*tier2.CorruptionError)(nil); errors.As(err, &oe) {
			return nil, fmt.Errorf("%w: %w", manifest.ErrObjectCorrupt, err)
		}
		if err != nil {
			return nil, fmt.Errorf("download %s: %w", key, err)
		}
		return buf.Bytes(), nil
	}
}

func snapshotID(s *manifest.Snapshot) uint64 {
	if s == nil {
		return 0
	}
	return s.ID
}

// restoreObject downloads segment id's object at key and restores it as a
// verified sealed Tier 0 file in dir0.
func restoreObject(ctx context.Context, o RecoverOptions, key, dir0 string, id uint64) (segment.Footer, error) {
	if err := o.FS.MkdirAll(dir0, 0o755); err != nil {
		return segment.Footer{}, err
	}
	tmp := filepath.Join(dir0, segment.FileName(id)+".zst.tmp")
	defer o.FS.Remove(tmp)
	if err := download(ctx, o, key, tmp); err != nil {
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

// snapshotReplayable is manifest.SnapshotReplayable (the rule moved there
// with the chain choice; tests still name it here).
func snapshotReplayable(pos manifest.Position, chunks []uint64) bool {
	return manifest.SnapshotReplayable(pos, chunks)
}

// ListTier2Manifest lists the manifest chunks and snapshots Tier 2 holds
// of stream, keys of both layouts, by epoch.
func ListTier2Manifest(ctx context.Context, b tier2.Bucket, stream string) (manifest.Tier2Objects, error) {
	var objs manifest.Tier2Objects
	for _, kind := range []string{tier2.KindManifest, tier2.KindSnapshot} {
		list, err := tier2.List(ctx, b, kind+"/"+stream+"/")
		if err != nil {
			return objs, fmt.Errorf("list %s of %s: %w", kind, stream, err)
		}
		for _, o := range list {
			k, ok := tier2.ParseKey(o.Key)
			switch {
			case !ok || k.Stream != stream:
			case k.Kind == tier2.KindManifest:
				objs.AddChunk(k.Epoch, k.ID)
			default:
				objs.AddSnapshot(k.Epoch, k.ID)
			}
		}
	}
	return objs, nil
}

// ErrAdoptIncomplete is returned by AdoptFromTier2 (and Store.Adopt) when
// what Tier 2 holds of the record's chain does not reach the record: an
// adopted copy short of it would store the next sequences at offsets the
// archived history already uses, and count that history as never stored.
var ErrAdoptIncomplete = errors.New("tiers: Tier 2 does not hold the archived state the record names")

// AdoptFromTier2 rebuilds the manifest of stream under o.Root from Tier 2
// as a takeover adopts it: the chain of rec.Epoch up to rec.Position, the
// stream's archived-through record (manifest.Archived), and nothing after
// it, so whatever a zombie of that epoch wrote later is left out. When no
// chain of that epoch reaches the position any more (a writer still at
// the epoch snapshotted past it and pruned behind: manifest pruneBehind),
// the epoch's newest usable chain is adopted instead: what it holds after
// the position was archived by that epoch's writer, at the offsets a
// re-read would give, and the ingest stream still holds it. Either way
// the adopted manifest must archive at least through rec.Through and
// rec.NextOffset, or nothing is adopted (ErrAdoptIncomplete).
//
// Segments stay in Tier 2 and are hydrated on demand; none is restored,
// since the new owner reads every record after them again from the
// ingest stream. Sealed segments the adopted manifest does not show in
// Tier 2 (the position covers their seal, not their upload) are recorded
// as lost in HolesFile, as a disaster recovery does: the Log stores their
// sequences again and retires them once Tier 2 holds the refill. The
// stream's manifest directory must be empty or absent (a stale node clears
// it first); o.Force is not consulted. It returns the adopted index.
func AdoptFromTier2(ctx context.Context, o RecoverOptions, stream string, rec manifest.Archived) (*manifest.Index, error) {
	if o.Tier2 = bucketOrNil(o.Tier2); o.Tier2 == nil {
		return nil, errors.New("tiers: adopt: no Tier 2 client")
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	dir := filepath.Join(o.Root, "manifest", stream)
	if entries, err := o.FS.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("tiers: adopt %s: %s is not empty", stream, dir)
	}
	chain, exact, err := adoptChain(ctx, o, stream, rec)
	if err != nil {
		return nil, fmt.Errorf("tiers: adopt %s: %w", stream, err)
	}
	idx, err := downloadManifest(ctx, o, stream, chain)
	if err == nil {
		err = checkAdopted(o, stream, idx, rec, exact)
	}
	if err == nil {
		err = recordAdoptedLoss(o, stream, idx)
	}
	if err == nil {
		err = restoreEmptyTail(o, stream, idx)
	}
	if err != nil {
		// A partial copy must not be opened as the stream.
		if rerr := removeTree(o.FS, dir); rerr != nil {
			o.Logger.Error("stream_adopt_cleanup_failed", "stream", stream, "dir", dir, "err", rerr)
		}
		return nil, fmt.Errorf("tiers: adopt %s: %w", stream, err)
	}
	o.Logger.Info("stream_adopted_from_tier2", "stream", stream, "epoch", rec.Epoch, "up_to", rec.Position.String(),
		"up_to_record", exact, "snapshot", snapshotID(chain.Snapshot), "chunks", len(chain.Chunks), "segments", idx.Len())
	return idx, nil
}

// adoptChain picks the chain AdoptFromTier2 adopts, and whether it ends at
// the record's position (false: the epoch's newest chain, past it).
func adoptChain(ctx context.Context, o RecoverOptions, stream string, rec manifest.Archived) (manifest.Tier2Chain, bool, error) {
	objs, err := ListTier2Manifest(ctx, o.Tier2, stream)
	if err != nil {
		return manifest.Tier2Chain{}, false, err
	}
	load := snapshotLoader(ctx, o, stream)
	logSkipped := func(skipped []manifest.SkippedSnapshot) {
		for _, sk := range skipped {
			o.Logger.Info("stream_adopt_snapshot_skipped", "stream", stream, "epoch", sk.Epoch, "snapshot", sk.ID,
				"reason", sk.Reason, "position", sk.Position.String(), "err", sk.Err)
		}
	}
	chain, skipped, err := manifest.ChooseTier2ChainUpTo(objs, rec.Epoch, rec.Position, load)
	logSkipped(skipped)
	if err != nil || chain.Reaches(rec.Position) {
		return chain, true, err
	}
	o.Logger.Warn("stream_adopt_chain_pruned", "stream", stream, "epoch", rec.Epoch, "up_to", rec.Position.String(),
		"note", "no chain of the record's epoch reaches its position any more (a writer still at that epoch snapshotted past it and pruned behind); adopting that epoch's newest chain")
	chain, skipped, err = manifest.ChooseTier2ChainOf(objs, rec.Epoch, load)
	logSkipped(skipped)
	return chain, false, err
}

// checkAdopted refuses an adopted index that archives less than the
// record: fewer sequences, or an offset below the record's next one.
func checkAdopted(o RecoverOptions, stream string, idx *manifest.Index, rec manifest.Archived, exact bool) error {
	through, next := indexArchived(idx.Segments())
	if through < rec.Through || next < rec.NextOffset {
		return fmt.Errorf("%w: the manifest adopted from epoch %d's chain archives through sequence %d, next offset %d; the record says through %d, next offset %d at %v",
			ErrAdoptIncomplete, rec.Epoch, through, next, rec.Through, rec.NextOffset, rec.Position)
	}
	if exact && next != rec.NextOffset {
		o.Logger.Warn("stream_adopt_offset_differs", "stream", stream, "next_offset", next, "record_next_offset", rec.NextOffset,
			"note", "the manifest up to the record's position archives further than the record says")
	}
	return nil
}

// indexArchived is what an adopted index shows archived, by the rule of
// manifest.Log.Archived: the leading segments that are sealed and in
// Tier 2 (or gone), abandoned unsealed ones passed over.
func indexArchived(segs []manifest.SegmentState) (through, next uint64) {
	for i, s := range segs {
		if !s.Sealed && i < len(segs)-1 {
			continue
		}
		if !s.Deleted && !s.InTier2 {
			break
		}
		through = max(through, s.LastExtID)
		if s.Sealed {
			next = max(next, s.LastLogicalOffset)
		}
	}
	return through, next
}

// restoreEmptyTail creates the adopted index's open segment, when its last
// segment is one, as an empty Tier 0 file with the header the manifest
// gives it. Its records, if the owner appended any, come after the
// archived position and are read again from the ingest stream into it,
// at the offsets they had. Without the file the store would find a
// segment the manifest holds in Tier 0 and no copy of it, and mark it
// missing: an error on every handover, for a segment that lost nothing.
func restoreEmptyTail(o RecoverOptions, stream string, idx *manifest.Index) error {
	tail, ok := restoredTail(idx.Segments())
	if !ok {
		return nil
	}
	dir0 := filepath.Join(o.Root, "tier0", stream)
	if err := o.FS.MkdirAll(dir0, 0o755); err != nil {
		return err
	}
	w, err := segment.Create(o.FS, dir0, segment.Header{
		StreamID:   manifest.CRC64([]byte(stream)),
		SegmentID:  tail.Segment,
		BaseOffset: tail.BaseOffset,
		CreatedMS:  tail.OpenedMS,
	}, segment.WithStream(stream), segment.WithLogger(o.Logger))
	if err != nil {
		return fmt.Errorf("restore the open segment %d empty: %w", tail.Segment, err)
	}
	return w.Close()
}

// restoredTail is the adopted index's last segment when it is open: the
// one restoreEmptyTail restores empty and recordAdoptedLoss counts among
// the segments after the holes.
func restoredTail(segs []manifest.SegmentState) (manifest.SegmentState, bool) {
	if len(segs) == 0 {
		return manifest.SegmentState{}, false
	}
	t := segs[len(segs)-1]
	return t, !t.Sealed && !t.Deleted && t.InTier0
}

// withoutSegment is holes with id taken out of every range's lost
// segments.
func withoutSegment(holes []ExtRange, id uint64) []ExtRange {
	for i := range holes {
		holes[i].Segments = slices.DeleteFunc(holes[i].Segments, func(s uint64) bool { return s == id })
	}
	return holes
}

// recordAdoptedLoss records in HolesFile the sequences of the sealed
// segments the adopted index does not show in Tier 2: the record's
// position covers their seal but not their upload, and no copy of them
// reaches the new owner. Without this the Log would mark them needing
// recovery and the archived state would stop at them for good; with it,
// their sequences are stored again from the ingest stream (never purged:
// they were never archived) and the lost segments are retired once Tier 2
// holds the refill. The stream's entry is replaced, whatever an earlier
// copy left in it.
func recordAdoptedLoss(o RecoverOptions, stream string, idx *manifest.Index) error {
	segs := idx.Segments()
	inTier2 := map[uint64]bool{}
	for _, st := range segs {
		inTier2[st.Segment] = st.InTier2
	}
	holes, unbounded, after := lostRanges(segs, inTier2, nil)
	for _, id := range unbounded {
		o.Logger.Error("stream_adopt_segment_range_unknown", "stream", stream, "segment", id,
			"note", "the segment held records stored again by an earlier recovery; they are not stored again")
	}
	// The open tail is restored empty (restoreEmptyTail): everything it
	// will hold is written after the adoption, refills included, so it
	// counts among the segments after the holes. Its records before the
	// adoption are a hole (stored again), but the segment is not lost:
	// listed among a hole's lost segments it would be retired once the
	// refill is in Tier 2, the refill with it.
	if t, ok := restoredTail(segs); ok && t.Segment > 0 && t.Segment <= after {
		after = t.Segment - 1
		holes = withoutSegment(holes, t.Segment)
	}
	for _, h := range holes {
		o.Logger.Warn("stream_adopt_segments_lost", "stream", stream, "after_sequence", h.From, "to_sequence", h.To,
			"segments", h.Segments, "note", "sealed but not uploaded by the owner before; stored again from the ingest stream")
	}
	var entry streamHoles
	if len(holes) > 0 {
		entry = streamHoles{AfterSegment: after, Holes: holes}
	}
	if err := setStreamHoles(o.FS, o.Root, stream, entry); err != nil {
		return fmt.Errorf("write %s: %w", HolesFile, err)
	}
	return nil
}
