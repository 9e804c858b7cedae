package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/segment"
	"github.com/bop-aof/aof/tiers/tier1"
	"github.com/bop-aof/aof/tiers/tier2"
)

// Problem kinds found by Check beyond manifest.ProblemKind (torn-tail,
// temp-file, integrity, missing-chunk, snapshot).
const (
	KindTier0Corrupt  = "tier0-corrupt"  // a sealed segment file fails Verify
	KindTier0Tail     = "tier0-tail"     // the unsealed tail has a bad record
	KindTier0Missing  = "tier0-missing"  // the manifest says Tier 0, no file
	KindTier0Mismatch = "tier0-mismatch" // the file's footer disagrees with the manifest
	KindTier1Corrupt  = "tier1-corrupt"  // the artifact does not decode
	KindTier1Missing  = "tier1-missing"  // the manifest says Tier 1, no artifact
	KindTier2Missing  = "tier2-missing"  // the manifest says Tier 2, no object
	KindTier2Corrupt  = "tier2-corrupt"  // the object's bytes fail its crc64
	KindNeedsRecovery = "needs-recovery" // the manifest marks the segment unreadable
	KindIndex         = "index"          // the manifest could not be folded
)

// CheckOptions selects what Check looks at.
type CheckOptions struct {
	FS     vfs.FS // vfs.Default
	Root   string
	Stream string // "" for every stream under Root
	// Tier2, when set, is used to verify every Tier 2 object the manifest
	// names (presence and crc64) and the uploaded manifest chunks.
	Tier2 tier2.Bucket
	// Index returns the live index of a stream (a running gateway's). Nil
	// folds the manifest chunks on disk.
	Index func(stream string) (*manifest.Index, error)
	// RepairManifest trims torn manifest tails and removes temp files of
	// unfinished writes (manifest.Repair). Only with the gateway stopped.
	RepairManifest bool
}

// Check verifies a data root: every manifest chunk and record CRC, every
// Tier 0 segment (record CRCs, footer CRC-64 against the manifest), every
// Tier 1 artifact the manifest names (decoding all frames), and with a Tier
// 2 client every Tier 2 object's presence and crc64. Damage is reported in
// the CheckReport; the error is for failures to look (unreadable
// directory, Tier 2 authentication).
func Check(ctx context.Context, opts CheckOptions) (CheckReport, error) {
	if opts.FS == nil {
		opts.FS = vfs.Default
	}
	rep := CheckReport{Streams: []StreamCheck{}, Problems: []Problem{}, Tier2: opts.Tier2 != nil}
	streams, err := rootStreams(opts.FS, opts.Root)
	if err != nil {
		return rep, err
	}
	if opts.Stream != "" {
		if !contains(streams, opts.Stream) {
			return rep, fmt.Errorf("%w: %q under %s", tiers.ErrStreamNotFound, opts.Stream, opts.Root)
		}
		streams = []string{opts.Stream}
	}
	for _, name := range streams {
		sc, probs, err := checkStream1(ctx, opts, name)
		if err != nil {
			return rep, err
		}
		rep.Streams = append(rep.Streams, sc)
		rep.Problems = append(rep.Problems, probs...)
	}
	return rep, nil
}

func rootStreams(fs vfs.FS, root string) ([]string, error) {
	seen := map[string]bool{}
	for _, d := range []string{"manifest", "tier0", "tier1"} {
		names, err := streamDirs(fs, filepath.Join(root, d))
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			seen[n] = true
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

func chunkPtr(c uint64) *int64 { v := int64(c); return &v }

func checkStream1(ctx context.Context, opts CheckOptions, stream string) (StreamCheck, []Problem, error) {
	fs := opts.FS
	sc := StreamCheck{Stream: stream}
	var probs []Problem
	mdir := filepath.Join(opts.Root, "manifest", stream)

	// 1. The manifest chunks and snapshots.
	if ok, _ := exists(fs, mdir); ok {
		mrep, err := manifest.Check(fs, mdir, stream)
		if err != nil {
			return sc, nil, fmt.Errorf("check manifest of %s: %w", stream, err)
		}
		after := mrep
		if opts.RepairManifest && len(mrep.Problems) > 0 {
			if after, err = manifest.Repair(fs, mdir, stream); err != nil {
				return sc, nil, fmt.Errorf("repair manifest of %s: %w", stream, err)
			}
		}
		left := map[string]bool{}
		for _, p := range after.Problems {
			left[string(p.Kind)+"|"+p.File+"|"+strconv.FormatUint(p.Chunk, 10)] = true
		}
		for _, p := range mrep.Problems {
			pr := Problem{Stream: stream, Kind: string(p.Kind), Chunk: chunkPtr(p.Chunk), File: p.File, Offset: p.Offset, Reason: p.Reason}
			if p.Offset < 0 {
				pr.Offset = 0
			}
			if opts.RepairManifest {
				if !left[string(p.Kind)+"|"+p.File+"|"+strconv.FormatUint(p.Chunk, 10)] {
					pr.Repaired, pr.RepairNote = true, repairNote(p.Kind)
				} else {
					pr.RepairNote = "damage inside committed data: restore the chunk from Tier 2 (" + manifest.ChunkKey(stream, p.Chunk) + ") or a snapshot"
				}
			}
			probs = append(probs, pr)
		}
		sc.Chunks, sc.Records, sc.Snapshots = after.Chunks, after.Records, after.Snapshots
	}

	// 2. The folded index, to compare the files against.
	var idx *manifest.Index
	var err error
	if opts.Index != nil {
		idx, err = opts.Index(stream)
	} else {
		idx, err = FoldIndex(fs, mdir, stream)
	}
	if err != nil {
		probs = append(probs, Problem{Stream: stream, Kind: KindIndex, Reason: "manifest not folded, files checked on their own: " + err.Error()})
		idx = nil
	}

	// 3. Tier 0 segment files.
	dir0 := filepath.Join(opts.Root, "tier0", stream)
	files, err := segment.ListSegments(fs, dir0)
	if err != nil {
		return sc, nil, fmt.Errorf("list tier0 of %s: %w", stream, err)
	}
	onDisk := map[uint64]bool{}
	for _, id := range files {
		onDisk[id] = true
		sc.SegmentsChecked++
		path := filepath.Join(dir0, segment.FileName(id))
		ft, err := segment.Verify(fs, path, segment.WithStream(stream))
		switch {
		case errors.Is(err, segment.ErrNotSealed):
			if p := scanTail(fs, path, stream, id); p != nil {
				probs = append(probs, *p)
			}
			continue
		case err != nil:
			probs = append(probs, Problem{Stream: stream, Kind: KindTier0Corrupt, Segment: id, File: segment.FileName(id),
				Offset: corruptionOffset(err), Reason: err.Error()})
			continue
		}
		if idx != nil {
			if st, ok := idx.Get(id); ok && st.Sealed && st.CRC64 != 0 && st.CRC64 != ft.CRC64 {
				probs = append(probs, Problem{Stream: stream, Kind: KindTier0Mismatch, Segment: id, File: segment.FileName(id),
					Reason: fmt.Sprintf("footer crc64 %016x, manifest says %016x", ft.CRC64, st.CRC64)})
			}
		}
	}
	if idx == nil {
		return sc, probs, nil
	}

	// 4. Every segment the manifest knows, against Tier 1 and Tier 2.
	for _, st := range idx.Segments() {
		if st.Deleted {
			continue
		}
		id := st.Segment
		if st.NeedsRecovery {
			probs = append(probs, Problem{Stream: stream, Kind: KindNeedsRecovery, Segment: id, Reason: "manifest marks it needs-recovery: " + st.Reason.String()})
		}
		if st.InTier0 && st.Sealed && !onDisk[id] && !st.InTier1 && !st.InTier2 {
			probs = append(probs, Problem{Stream: stream, Kind: KindTier0Missing, Segment: id, File: segment.FileName(id),
				Reason: "manifest says the only copy is in Tier 0 and the file is gone"})
		}
		if st.InTier1 {
			path := filepath.Join(opts.Root, "tier1", stream, fmt.Sprintf("%020d.zst", id))
			if ok, _ := exists(fs, path); !ok {
				probs = append(probs, Problem{Stream: stream, Kind: KindTier1Missing, Segment: id, File: filepath.Base(path),
					Reason: "manifest says Tier 1, no artifact on disk"})
			} else if err := verifyArtifact(fs, path); err != nil {
				probs = append(probs, Problem{Stream: stream, Kind: KindTier1Corrupt, Segment: id, File: filepath.Base(path), Reason: err.Error()})
			}
		}
		if st.InTier2 && opts.Tier2 != nil {
			sc.Tier2Checked++
			if p, err := checkObject(ctx, opts.Tier2, stream, id, st.Tier2Key); err != nil {
				return sc, nil, err
			} else if p != nil {
				probs = append(probs, *p)
			}
		}
	}
	return sc, probs, nil
}

func repairNote(k manifest.ProblemKind) string {
	switch k {
	case manifest.ProblemTornTail:
		return "torn tail trimmed"
	case manifest.ProblemTempFile:
		return "temp file removed"
	}
	return ""
}

func exists(fs vfs.FS, path string) (bool, error) {
	_, err := fs.Stat(path)
	if err == nil {
		return true, nil
	}
	return false, err
}

func corruptionOffset(err error) int64 {
	var ce *segment.CorruptionError
	if errors.As(err, &ce) {
		return ce.Offset
	}
	return 0
}

// scanTail reads every record of the unsealed tail segment.
func scanTail(fs vfs.FS, path, stream string, id uint64) *Problem {
	r, err := segment.Open(fs, path, segment.WithStream(stream))
	if err != nil {
		return &Problem{Stream: stream, Kind: KindTier0Tail, Segment: id, File: filepath.Base(path), Reason: err.Error()}
	}
	defer r.Close()
	for {
		_, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return &Problem{Stream: stream, Kind: KindTier0Tail, Segment: id, File: filepath.Base(path), Offset: corruptionOffset(err),
				Reason: err.Error() + " (the next gateway start keeps only the records before it)"}
		}
	}
}

// verifyArtifact decodes every frame of a Tier 1 artifact.
func verifyArtifact(fs vfs.FS, path string) error {
	ar, err := tier1.OpenArtifact(fs, path)
	if err != nil {
		return err
	}
	defer ar.Close()
	if n := ar.Size(); n > 0 {
		if _, err := ar.ReadRange(0, n); err != nil {
			return err
		}
	}
	return nil
}

// checkObject downloads a segment's Tier 2 object, which verifies its
// crc64. Authentication failures abort the check (error code 401).
func checkObject(ctx context.Context, c tier2.Bucket, stream string, id uint64, key string) (*Problem, error) {
	if key == "" {
		key = tier2.SegmentKey(stream, id)
	}
	_, err := c.Get(ctx, key, io.Discard)
	switch tier2.Reason(err) {
	case tier2.ReasonTransient:
		if err == nil {
			return nil, nil
		}
	case tier2.ReasonMissing:
		return &Problem{Stream: stream, Kind: KindTier2Missing, Segment: id, File: key, Reason: "object missing in Tier 2"}, nil
	case tier2.ReasonCodec:
		return &Problem{Stream: stream, Kind: KindTier2Corrupt, Segment: id, File: key, Reason: err.Error()}, nil
	case tier2.ReasonAuth:
		return nil, &Error{Code: CodeUnauthorized, Message: "tier 2 authentication failed: " + err.Error()}
	}
	return nil, fmt.Errorf("check tier 2 object %s: %w", key, err)
}

// FoldIndex rebuilds a stream's manifest index from the files in dir
// without opening (and so without changing) the log: from chunk 0 when it
// is present, else from the newest valid snapshot plus the chunks after it.
func FoldIndex(fs vfs.FS, dir, stream string) (*manifest.Index, error) {
	ents, err := fs.ReadDir(dir)
	if err != nil {
		return manifest.NewIndex(stream), nil //nolint:nilerr // no manifest yet: empty index
	}
	var chunks, snaps []uint64
	for _, e := range ents {
		name := e.Name()
		if s, ok := strings.CutSuffix(name, ".mlog"); ok {
			if id, err := strconv.ParseUint(s, 10, 64); err == nil {
				chunks = append(chunks, id)
			}
		}
		if s, ok := strings.CutPrefix(name, "snapshot_"); ok {
			if id, err := strconv.ParseUint(strings.TrimSuffix(s, ".bin"), 10, 64); err == nil && strings.HasSuffix(s, ".bin") {
				snaps = append(snaps, id)
			}
		}
	}
	sort.Slice(chunks, func(i, j int) bool { return chunks[i] < chunks[j] })
	sort.Slice(snaps, func(i, j int) bool { return snaps[i] > snaps[j] })
	idx := manifest.NewIndex(stream)
	from := manifest.Position{}
	if len(chunks) == 0 || chunks[0] > 0 {
		found := false
		for _, id := range snaps {
			data, err := vfs.ReadFile(fs, manifest.SnapshotPath(dir, id))
			if err != nil {
				continue
			}
			if s, err := manifest.DecodeSnapshot(data); err == nil {
				idx, from, found = s.Index, s.Position, true
				break
			}
		}
		if !found && len(chunks) > 0 {
			return nil, fmt.Errorf("chunks before %d are gone and no snapshot covers them", chunks[0])
		}
	}
	for _, c := range chunks {
		if c < from.Chunk {
			continue
		}
		data, err := vfs.ReadFile(fs, manifest.ChunkPath(dir, c))
		if err != nil {
			return nil, fmt.Errorf("read chunk %d: %w", c, err)
		}
		_, recs, err := manifest.ReadChunk(data)
		if err != nil {
			return nil, fmt.Errorf("chunk %d: %w", c, err)
		}
		for _, r := range recs {
			if c == from.Chunk && r.Offset < from.Offset {
				continue
			}
			idx.Apply(r.Record)
		}
	}
	return idx, nil
}

// RepairFromTier2 repairs, on an open store, the segment problems of rep
// that Tier 2 can restore: a damaged or missing Tier 0 or Tier 1 copy of a
// segment confirmed in Tier 2 is dropped and hydrated back from Tier 2.
// Problems it cannot repair get a note saying why.
func RepairFromTier2(ctx context.Context, s *tiers.Store, rep *CheckReport) {
	status := map[string]tiers.SegmentStatus{}
	for _, st := range s.Segments("") {
		status[st.Stream+"/"+strconv.FormatUint(st.Segment, 10)] = st
	}
	for i := range rep.Problems {
		p := &rep.Problems[i]
		if p.Repaired {
			continue
		}
		switch p.Kind {
		case KindTier0Corrupt, KindTier0Mismatch, KindTier1Corrupt, KindTier1Missing:
		case KindTier2Missing, KindTier2Corrupt:
			if err := s.Reupload(ctx, p.Stream, p.Segment); err != nil {
				p.RepairNote = "re-upload from the local copy: " + err.Error()
				continue
			}
			p.Repaired, p.RepairNote = true, "Tier 2 object re-uploaded from the local copy"
			continue
		default:
			if p.RepairNote == "" {
				p.RepairNote = "not repairable from Tier 2"
			}
			continue
		}
		st, ok := status[p.Stream+"/"+strconv.FormatUint(p.Segment, 10)]
		if s.Tier2() == nil {
			p.RepairNote = "no Tier 2 configured to restore from"
			continue
		}
		if !ok || !st.InTier2 {
			p.RepairNote = "segment has no confirmed Tier 2 copy"
			continue
		}
		if err := s.EvictLocal(ctx, p.Stream, p.Segment); err != nil {
			p.RepairNote = "drop damaged local copy: " + err.Error()
			continue
		}
		if err := s.Hydrate(ctx, p.Stream, p.Segment); err != nil {
			p.RepairNote = "hydrate from Tier 2: " + err.Error()
			continue
		}
		p.Repaired, p.RepairNote = true, "local copy dropped and hydrated back from Tier 2"
	}
}

// CheckOffline checks (and with repair, repairs) the data root of a stopped
// gateway, opts.Root: torn manifest tails and temp files first, then with a
// Tier 2 client (opts.Tier2) the damaged local segment copies, by opening
// the store with opts (see OpenOffline) and hydrating them back from Tier 2.
//
// A check only reads, so it takes the root's shared lock: several checks
// may run at once, none while a gateway (or another writer) has the root
// open, whose half-written tails would read as damage. A repair writes and
// takes the writer's exclusive lock.
func CheckOffline(ctx context.Context, opts tiers.Options, stream string, repair bool) (CheckReport, error) {
	t2 := opts.Tier2
	rep, err := checkLocked(ctx, CheckOptions{FS: opts.FS, Root: opts.Root, Stream: stream, Tier2: t2, RepairManifest: repair})
	if err != nil || !repair || rep.Remaining() == 0 || t2 == nil {
		if err == nil && repair && t2 == nil {
			for i := range rep.Problems {
				if !rep.Problems[i].Repaired && rep.Problems[i].RepairNote == "" {
					rep.Problems[i].RepairNote = "no Tier 2 configured to restore from"
				}
			}
		}
		return rep, err
	}
	s, err := OpenOffline(ctx, opts)
	if err != nil {
		return rep, err
	}
	RepairFromTier2(ctx, s, &rep)
	if err := s.Close(); err != nil {
		return rep, fmt.Errorf("close store: %w", err)
	}
	return rep, nil
}

// checkLocked runs Check under the root's lock: shared for a check,
// exclusive for a repair. The lock is released before the Tier 2 repair
// opens the store, which takes it again.
func checkLocked(ctx context.Context, opts CheckOptions) (CheckReport, error) {
	if err := checkRoot(opts.Root); err != nil {
		return CheckReport{Streams: []StreamCheck{}, Problems: []Problem{}}, err
	}
	lock := tiers.LockRootShared
	if opts.RepairManifest {
		lock = tiers.LockRoot
	}
	l, err := lock(opts.Root)
	if err != nil {
		if errors.Is(err, tiers.ErrRootLocked) {
			err = rootInUse(err)
		}
		return CheckReport{Streams: []StreamCheck{}, Problems: []Problem{}}, err
	}
	defer l.Release()
	return Check(ctx, opts)
}
