package manifest

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/bop-aof/aof/internal/vfs"
)

// ProblemKind classifies what Check found.
type ProblemKind string

const (
	// ProblemTornTail: bytes after a chunk's committed range, left by a
	// commit that never returned. Repair trims them; nothing committed is lost.
	ProblemTornTail ProblemKind = "torn-tail"
	// ProblemTempFile: a temp file of an atomic write that never finished.
	// Repair removes it.
	ProblemTempFile ProblemKind = "temp-file"
	// ProblemIntegrity: damage inside committed data. Not repairable
	// locally: restore the chunk from Tier 2 or a snapshot.
	ProblemIntegrity ProblemKind = "integrity"
	// ProblemMissingChunk: a gap in the chunk sequence that no snapshot covers.
	ProblemMissingChunk ProblemKind = "missing-chunk"
	// ProblemSnapshot: a snapshot file that does not verify; Open skips it.
	ProblemSnapshot ProblemKind = "snapshot"
)

// Problem is one finding of Check, with where it is.
type Problem struct {
	Kind   ProblemKind
	File   string
	Chunk  uint64
	Offset int64
	Reason string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s %s chunk %d offset %d: %s", p.Kind, p.File, p.Chunk, p.Offset, p.Reason)
}

// Report is the result of Check.
type Report struct {
	Stream    string
	Chunks    int
	Records   uint64
	Unknown   int
	Snapshots int
	Problems  []Problem
}

// OK reports whether Check found nothing at all.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// Repairable reports whether Repair can fix every problem found.
func (r Report) Repairable() bool {
	for _, p := range r.Problems {
		if p.Kind != ProblemTornTail && p.Kind != ProblemTempFile {
			return false
		}
	}
	return true
}

// Check verifies every chunk and snapshot of stream in dir without changing
// anything and lists each problem with its chunk, offset and reason. The
// error is for failures to read the directory or a file, not for damage.
func Check(fs vfs.FS, dir, stream string) (Report, error) {
	rep := Report{Stream: stream}
	d, err := listDir(fs, dir, nil)
	if err != nil {
		return rep, err
	}
	ents, err := fs.ReadDir(dir)
	if err != nil {
		return rep, fmt.Errorf("list manifest dir: %w", err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), tmpExt) {
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemTempFile, File: e.Name(), Reason: "unfinished atomic write"})
		}
	}
	oldestSnap := uint64(0)
	haveSnap := false
	for _, id := range d.snapshots {
		rep.Snapshots++
		path := SnapshotPath(dir, id)
		data, err := vfs.ReadFile(fs, path)
		if err != nil {
			return rep, fmt.Errorf("read snapshot %d: %w", id, err)
		}
		s, err := DecodeSnapshot(data)
		if err == nil && s.ID != id {
			err = fmt.Errorf("%w: file holds snapshot %d", ErrSnapshot, s.ID)
		}
		if err != nil {
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemSnapshot, File: filepath.Base(path), Reason: err.Error()})
			continue
		}
		if !haveSnap || s.Position.Chunk < oldestSnap {
			oldestSnap, haveSnap = s.Position.Chunk, true
		}
	}
	var prev *ChunkHeader
	for i, c := range d.chunks {
		rep.Chunks++
		path := ChunkPath(dir, c)
		name := filepath.Base(path)
		if i == 0 && c > 0 && (!haveSnap || oldestSnap > c) {
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemMissingChunk, File: name, Chunk: 0, Offset: -1,
				Reason: fmt.Sprintf("chunks 0-%d missing and no snapshot covers them", c-1)})
		}
		if i > 0 && c != d.chunks[i-1]+1 {
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemMissingChunk, File: name, Chunk: d.chunks[i-1] + 1, Offset: -1,
				Reason: fmt.Sprintf("gap before chunk %d", c)})
			prev = nil
		}
		data, err := vfs.ReadFile(fs, path)
		if err != nil {
			return rep, fmt.Errorf("read chunk %d: %w", c, err)
		}
		h, torn, n, unknown, err := checkChunk(data)
		rep.Records += n
		rep.Unknown += unknown
		if err != nil {
			var ie *IntegrityError
			off := int64(0)
			if errors.As(err, &ie) {
				off, err = ie.Offset, ie.Err
			}
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemIntegrity, File: name, Chunk: c, Offset: off, Reason: err.Error()})
			prev = nil
			continue
		}
		if h.Index != c {
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemIntegrity, File: name, Chunk: c, Reason: fmt.Sprintf("header names chunk %d", h.Index)})
		}
		if prev != nil && prev.Index+1 == c && h.BaseRecord != prev.BaseRecord+prev.RecordCount {
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemIntegrity, File: name, Chunk: c,
				Reason: fmt.Sprintf("base record %d, previous chunk ends at %d", h.BaseRecord, prev.BaseRecord+prev.RecordCount)})
		}
		if torn > 0 {
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemTornTail, File: name, Chunk: c, Offset: h.End(),
				Reason: fmt.Sprintf("%d bytes after the committed range", torn)})
		}
		prev = &h
	}
	return rep, nil
}

func checkChunk(data []byte) (h ChunkHeader, torn int64, n uint64, unknown int, err error) {
	r, err := NewChunkReader(data)
	if err != nil {
		return h, 0, 0, 0, err
	}
	for {
		if _, err = r.Next(); err == io.EOF {
			return r.Header, r.TornBytes, n, r.Unknown, nil
		}
		if err != nil {
			return r.Header, r.TornBytes, n, r.Unknown, err
		}
		n++
	}
}

// Repair fixes what Check can fix without Tier 2: it trims torn tails and
// removes temp files of unfinished writes. It returns the report of a Check
// run afterwards, so the problems left are the ones that need Tier 2 or an
// operator. Run it only while no Log has the stream open.
func Repair(fs vfs.FS, dir, stream string) (Report, error) {
	rep, err := Check(fs, dir, stream)
	if err != nil {
		return rep, err
	}
	for _, p := range rep.Problems {
		path := filepath.Join(dir, p.File)
		switch p.Kind {
		case ProblemTornTail:
			if err := truncateFile(fs, path, p.Offset); err != nil {
				return rep, fmt.Errorf("trim chunk %d: %w", p.Chunk, err)
			}
		case ProblemTempFile:
			if err := fs.Remove(path); err != nil {
				return rep, fmt.Errorf("remove %s: %w", p.File, err)
			}
		}
	}
	if err := fs.SyncDir(dir); err != nil {
		return rep, fmt.Errorf("sync manifest dir: %w", err)
	}
	return Check(fs, dir, stream)
}
