package fsck

import "fmt"

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

// Problem is one finding of a check: where, what and whether it was
// repaired. Chunk is set for a problem of a manifest chunk, Segment for one
// of a segment; Offset is the byte offset in File when known.
type Problem struct {
	Stream   string
	Kind     string
	Segment  uint64
	Chunk    *int64
	File     string
	Offset   int64
	Reason   string
	Repaired bool
	// RepairNote says what repair did, or why it could not.
	RepairNote string
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

// StreamCheck counts what the check of one stream looked at.
type StreamCheck struct {
	Stream          string
	Chunks          int
	Records         uint64
	Snapshots       int
	SegmentsChecked int
	Tier2Checked    int
	// Tier2Epoch is the epoch of the manifest chain a recovery from Tier 2
	// would replay, and Tier2ManifestChunks the chunks of it checked.
	Tier2Epoch          uint64
	Tier2ManifestChunks int
}

// Report is the outcome of a check: what each stream held and every
// problem found. Tier2 says whether Tier 2 objects were checked.
type Report struct {
	Streams  []StreamCheck
	Problems []Problem
	Tier2    bool
}

func emptyReport() Report { return Report{Streams: []StreamCheck{}, Problems: []Problem{}} }

// Remaining counts the problems not repaired.
func (r Report) Remaining() int {
	n := 0
	for _, p := range r.Problems {
		if !p.Repaired {
			n++
		}
	}
	return n
}
