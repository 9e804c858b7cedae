package fsck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
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

// ErrTier2Auth is wrapped by a check that Tier 2 refused the credentials
// of: the check stops, since no object can be verified.
var ErrTier2Auth = errors.New("tier 2 authentication failed")

// CheckOptions selects what Check looks at.
type CheckOptions struct {
	FS     vfs.FS // vfs.Default
	Root   string
	Stream string // "" for every stream under Root
	// Tier2, when set, is used to verify every Tier 2 object the manifest
	// names (presence and crc64, at the key it recorded, of any epoch)
	// and the manifest chain a recovery from Tier 2 would replay
	// (checkTier2Chain).
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
// 2 client every Tier 2 object's presence and crc64 and the manifest chain
// a recovery from Tier 2 would replay (checkTier2Chain). Damage is reported in
// the Report; the error is for failures to look (unreadable directory,
// Tier 2 authentication: ErrTier2Auth).
func Check(ctx context.Context, opts CheckOptions) (Report, error) {
	if opts.FS == nil {
		opts.FS = vfs.Default
	}
	rep := emptyReport()
	rep.Tier2 = opts.Tier2 != nil
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
		c := &streamCheck{opts: opts, fs: opts.FS, stream: name, counts: StreamCheck{Stream: name},
			mdir: filepath.Join(opts.Root, "manifest", name)}
		if err := c.run(ctx); err != nil {
			return rep, err
		}
		rep.Streams = append(rep.Streams, c.counts)
		rep.Problems = append(rep.Problems, c.probs...)
	}
	return rep, nil
}

// rootStreams lists every stream with a directory in any local tier.
func rootStreams(fs vfs.FS, root string) ([]string, error) {
	seen := map[string]bool{}
	for _, d := range []string{"manifest", "tier0", "tier1"} {
		names, err := StreamsUnder(fs, filepath.Join(root, d))
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

// StreamsUnder lists the stream directories under dir (one of a data
// root's manifest, tier0 or tier1), sorted; none when dir does not exist.
func StreamsUnder(fs vfs.FS, dir string) ([]string, error) {
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

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// streamCheck is the check of one stream, in four steps: the manifest
// files, the folded index, the Tier 0 files, then every segment the index
// knows against Tier 1 and Tier 2.
type streamCheck struct {
	opts   CheckOptions
	fs     vfs.FS
	stream string
	mdir   string
	counts StreamCheck
	probs  []Problem
}

func (c *streamCheck) run(ctx context.Context) error {
	if err := c.checkManifest(); err != nil {
		return err
	}
	idx := c.foldIndex()
	onDisk, err := c.checkTier0Files(idx)
	if err != nil {
		return err
	}
	if idx != nil {
		if err := c.checkIndexedSegments(ctx, idx, onDisk); err != nil {
			return err
		}
	}
	if c.opts.Tier2 != nil {
		return c.checkTier2Chain(ctx)
	}
	return nil
}

func (c *streamCheck) add(p Problem) {
	p.Stream = c.stream
	c.probs = append(c.probs, p)
}

// checkManifest checks the manifest chunks and snapshots and, when asked,
// repairs them; a problem is repaired when the repaired manifest no longer
// shows it.
func (c *streamCheck) checkManifest() error {
	if ok, _ := exists(c.fs, c.mdir); !ok {
		return nil
	}
	mrep, err := manifest.Check(c.fs, c.mdir, c.stream)
	if err != nil {
		return fmt.Errorf("check manifest of %s: %w", c.stream, err)
	}
	after := mrep
	if c.opts.RepairManifest && len(mrep.Problems) > 0 {
		if after, err = manifest.Repair(c.fs, c.mdir, c.stream); err != nil {
			return fmt.Errorf("repair manifest of %s: %w", c.stream, err)
		}
	}
	left := map[string]bool{}
	for _, p := range after.Problems {
		left[manifestProblemKey(p)] = true
	}
	for _, p := range mrep.Problems {
		pr := Problem{Kind: string(p.Kind), Chunk: chunkPtr(p.Chunk), File: p.File, Offset: max(p.Offset, 0), Reason: p.Reason}
		if c.opts.RepairManifest {
			if !left[manifestProblemKey(p)] {
				pr.Repaired, pr.RepairNote = true, repairNote(p.Kind)
			} else {
				pr.RepairNote = "damage inside committed data: restore the chunk from Tier 2 (" + manifest.ChunkKey(c.stream, p.Chunk) + ") or a snapshot"
			}
		}
		c.add(pr)
	}
	c.counts.Chunks, c.counts.Records, c.counts.Snapshots = after.Chunks, after.Records, after.Snapshots
	return nil
}

func manifestProblemKey(p manifest.Problem) string {
	return string(p.Kind) + "|" + p.File + "|" + strconv.FormatUint(p.Chunk, 10)
}

func chunkPtr(c uint64) *int64 { v := int64(c); return &v }

func repairNote(k manifest.ProblemKind) string {
	switch k {
	case manifest.ProblemTornTail:
		return "torn tail trimmed"
	case manifest.ProblemTempFile:
		return "temp file removed"
	}
	return ""
}

// foldIndex returns the index to compare the files against: the live one
// when the options give it, else the manifest folded from disk. Nil when
// the manifest cannot be folded: the files are then checked on their own.
func (c *streamCheck) foldIndex() *manifest.Index {
	var idx *manifest.Index
	var err error
	if c.opts.Index != nil {
		idx, err = c.opts.Index(c.stream)
	} else {
		idx, err = FoldIndex(c.fs, c.mdir, c.stream)
	}
	if err != nil {
		c.add(Problem{Kind: KindIndex, Reason: "manifest not folded, files checked on their own: " + err.Error()})
		return nil
	}
	return idx
}

// checkTier0Files verifies every Tier 0 segment file (the unsealed tail
// record by record) and, with an index, its footer crc64 against the
// manifest. It returns the segments that have a file.
func (c *streamCheck) checkTier0Files(idx *manifest.Index) (map[uint64]bool, error) {
	dir0 := filepath.Join(c.opts.Root, "tier0", c.stream)
	files, err := segment.ListSegments(c.fs, dir0)
	if err != nil {
		return nil, fmt.Errorf("list tier0 of %s: %w", c.stream, err)
	}
	onDisk := map[uint64]bool{}
	for _, id := range files {
		onDisk[id] = true
		c.counts.SegmentsChecked++
		name := segment.FileName(id)
		ft, err := segment.Verify(c.fs, filepath.Join(dir0, name), segment.WithStream(c.stream))
		switch {
		case errors.Is(err, segment.ErrNotSealed):
			if p := scanTail(c.fs, filepath.Join(dir0, name), c.stream, id); p != nil {
				c.add(*p)
			}
			continue
		case err != nil:
			c.add(Problem{Kind: KindTier0Corrupt, Segment: id, File: name, Offset: corruptionOffset(err), Reason: err.Error()})
			continue
		}
		if idx == nil {
			continue
		}
		if st, ok := idx.Get(id); ok && st.Sealed && st.CRC64 != 0 && st.CRC64 != ft.CRC64 {
			c.add(Problem{Kind: KindTier0Mismatch, Segment: id, File: name,
				Reason: fmt.Sprintf("footer crc64 %016x, manifest says %016x", ft.CRC64, st.CRC64)})
		}
	}
	return onDisk, nil
}

// checkIndexedSegments checks every segment the manifest knows against
// the copies it names: Tier 0 files gone, Tier 1 artifacts and Tier 2
// objects.
func (c *streamCheck) checkIndexedSegments(ctx context.Context, idx *manifest.Index, onDisk map[uint64]bool) error {
	for _, st := range idx.Segments() {
		if st.Deleted {
			continue
		}
		id := st.Segment
		if st.NeedsRecovery {
			c.add(Problem{Kind: KindNeedsRecovery, Segment: id, Reason: "manifest marks it needs-recovery: " + st.Reason.String()})
		}
		if st.InTier0 && st.Sealed && !onDisk[id] && !st.InTier1 && !st.InTier2 {
			c.add(Problem{Kind: KindTier0Missing, Segment: id, File: segment.FileName(id),
				Reason: "manifest says the only copy is in Tier 0 and the file is gone"})
		}
		if st.InTier1 {
			c.checkTier1Artifact(id)
		}
		if st.InTier2 && c.opts.Tier2 != nil {
			c.counts.Tier2Checked++
			p, err := checkObject(ctx, c.opts.Tier2, c.stream, id, st.Tier2Key)
			if err != nil {
				return err
			}
			if p != nil {
				c.add(*p)
			}
		}
	}
	return nil
}

func (c *streamCheck) checkTier1Artifact(id uint64) {
	path := filepath.Join(c.opts.Root, "tier1", c.stream, fmt.Sprintf("%020d.zst", id))
	if ok, _ := exists(c.fs, path); !ok {
		c.add(Problem{Kind: KindTier1Missing, Segment: id, File: filepath.Base(path), Reason: "manifest says Tier 1, no artifact on disk"})
	} else if err := verifyArtifact(c.fs, path); err != nil {
		c.add(Problem{Kind: KindTier1Corrupt, Segment: id, File: filepath.Base(path), Reason: err.Error()})
	}
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
// crc64. Authentication failures abort the check (ErrTier2Auth).
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
		return nil, fmt.Errorf("%w: %w", ErrTier2Auth, err)
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
