package tiers

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bop-aof/aof/internal/vfs"
)

// ExtRange is the ext_ids (JetStream sequences) From < ext <= To.
type ExtRange struct {
	From uint64 `json:"after"`
	To   uint64 `json:"to"`
	// Segments are the lost segments the range was in, where the manifest
	// knows them. Once the range is stored again they are retired, so
	// that a later recovery does not count them as lost a second time.
	Segments []uint64 `json:"segments,omitempty"`
}

// Dedupe is what a writer needs to tell a redelivery from a message the
// stream does not hold: ext_ids up to Last are stored, except those in
// Missing, the records of segments a disaster recovery found lost (see
// HolesFile), which must be stored again.
type Dedupe struct {
	Last    uint64
	Missing []ExtRange
}

// Stored reports whether ext is already in the stream.
func (d *Dedupe) Stored(ext uint64) bool {
	if ext > d.Last {
		return false
	}
	for _, r := range d.Missing {
		if ext > r.From && ext <= r.To {
			return false
		}
	}
	return true
}

// Add records that ext was appended: Last rises to it, and since a stream
// is re-read in sequence order, a gap it falls in now starts after it.
func (d *Dedupe) Add(ext uint64) {
	d.Last = max(d.Last, ext)
	for i := range d.Missing {
		if r := &d.Missing[i]; ext > r.From && ext <= r.To {
			r.From = ext
		}
	}
}

// HolesFile, in the data root, lists per stream the ext_id ranges of
// segments that RecoverFromTier2 found lost (an object deleted from the
// bucket by hand or by a lifecycle rule) where the store would otherwise
// count them as held.
// Sequence dedupe would take their messages for duplicates of what the
// stream holds; with this file the gateway stores them again when the
// ingest stream redelivers them after the recovery. A range counts as
// refilled as far as the segments created after the recovery reach.
const HolesFile = "DEDUPE_HOLES.json"

// streamHoles is one stream's entry of HolesFile.
type streamHoles struct {
	// AfterSegment is the highest segment id the recovery knew: segments
	// above it were written after, and their records refill the holes.
	AfterSegment uint64     `json:"after_segment"`
	Holes        []ExtRange `json:"holes"`
}

func loadHoles(fs vfs.FS, root string) (map[string]streamHoles, error) {
	data, err := vfs.ReadFile(fs, filepath.Join(root, HolesFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tiers: read %s: %w", HolesFile, err)
	}
	var holes map[string]streamHoles
	if err := json.Unmarshal(data, &holes); err != nil {
		return nil, fmt.Errorf("tiers: %s: %w", HolesFile, err)
	}
	return holes, nil
}

func writeHoles(fs vfs.FS, root string, holes map[string]streamHoles) error {
	data, err := json.MarshalIndent(holes, "", "  ")
	if err != nil {
		return err
	}
	return vfs.WriteFileAtomic(fs, filepath.Join(root, HolesFile), data, 0o644)
}

// setStreamHoles replaces stream's entry of HolesFile with h (none when
// h holds no range), keeping the other streams' entries.
func setStreamHoles(fs vfs.FS, root, stream string, h streamHoles) error {
	all, err := loadHoles(fs, root)
	if err != nil {
		return err
	}
	if _, had := all[stream]; !had && len(h.Holes) == 0 {
		return nil
	}
	if all == nil {
		all = map[string]streamHoles{}
	}
	if len(h.Holes) == 0 {
		delete(all, stream)
	} else {
		all[stream] = h
	}
	if err := fs.MkdirAll(root, 0o755); err != nil {
		return err
	}
	return writeHoles(fs, root, all)
}

// DedupeView returns the stream's Dedupe: the highest ext_id appended to a
// segment that still has a copy, and the ranges of lost segments not yet
// stored again.
func (l *Log) DedupeView() Dedupe {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.holes.Holes) == 0 {
		return Dedupe{Last: l.lastExtLocked()}
	}
	d := Dedupe{Last: l.lastExtLocked()}
	// refilled is how far the segments written after the recovery reach;
	// kept is how far those of them that Tier 2 holds reach, counting
	// from the first and stopping at the first it does not (uploads go
	// in segment order).
	var refilled, kept uint64
	keeping := true
	for _, si := range l.segs {
		ext := si.lastExt
		if l.active != nil && si.id == l.active.Header().SegmentID {
			ext = l.active.LastExtID()
		}
		if si.id > l.holes.AfterSegment && si.st.NeedsRecovery {
			// A segment written after the recovery lost its copies too:
			// what it stored again is not safe, so nothing past it is.
			keeping = false
		}
		if ext == 0 || si.st.NeedsRecovery {
			continue
		}
		if si.id > l.holes.AfterSegment {
			refilled = max(refilled, ext)
			if keeping && (l.s.opts.Tier2 == nil || si.st.Sealed && si.st.InTier2) {
				kept = max(kept, ext)
			} else {
				keeping = false
			}
		}
	}
	var retire []uint64
	pending := false
	for _, h := range l.holes.Holes {
		if refilled < h.To {
			d.Missing = append(d.Missing, ExtRange{From: max(h.From, refilled), To: h.To})
			pending = true
			continue
		}
		// The lost segments leave the manifest only once Tier 2 holds
		// their records again: a recovery before that must still find
		// them lost.
		for _, id := range h.Segments {
			switch {
			case id > l.holes.AfterSegment:
				// Written after the recovery: it holds the refill, it is
				// not one of the lost (a holes file of a release before
				// 2026-12-02 could list an adoption's restored tail).
			case l.segmentLocked(id) == nil:
				// Retired (or never in the log): done.
			case l.lostRetired[id]:
				pending = true // being retired; a failure clears the mark
			case kept >= h.To:
				retire = append(retire, id)
				pending = true
			default:
				pending = true
			}
		}
	}
	if len(retire) > 0 {
		if l.lostRetired == nil {
			l.lostRetired = map[uint64]bool{}
		}
		for _, id := range retire {
			l.lostRetired[id] = true
		}
		l.s.bg.retireLostAsync(l, retire)
	}
	if !pending {
		// Refilled and retired: the fast path gives the same answer.
		l.holes = streamHoles{}
	}
	return d
}

// DedupeView is Log.DedupeView for stream; a stream not yet written has
// nothing stored.
func (s *Store) DedupeView(stream string) (Dedupe, error) {
	s.mu.Lock()
	l := s.logs[stream]
	s.mu.Unlock()
	if l == nil {
		return Dedupe{}, nil
	}
	return l.DedupeView(), nil
}

// checkHoles retires the lost segments of refilled ranges that became
// safe, when the stream has ranges left from a recovery: at open and
// after an upload, not only when the next message arrives.
func (l *Log) checkHoles() {
	l.mu.Lock()
	has := len(l.holes.Holes) > 0
	l.mu.Unlock()
	if has {
		l.DedupeView()
	}
}
