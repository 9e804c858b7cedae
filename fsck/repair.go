package fsck

import (
	"context"
	"strconv"

	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers"
)

// CheckLive checks stream ("" for all) of an open store against its live
// manifest index and, with repair, restores what Tier 2 can
// (RepairFromTier2). It is the check of a running gateway: torn manifest
// tails and temp files are left out, since the live log trimmed those when
// it opened and any seen now belong to a commit or snapshot in flight.
func CheckLive(ctx context.Context, s *tiers.Store, stream string, repair bool) (Report, error) {
	rep, err := Check(ctx, CheckOptions{Root: s.Root(), Stream: stream, Tier2: s.Tier2(), Index: s.ManifestIndex})
	if err != nil {
		return rep, err
	}
	kept := rep.Problems[:0]
	for _, p := range rep.Problems {
		if p.Kind != string(manifest.ProblemTornTail) && p.Kind != string(manifest.ProblemTempFile) {
			kept = append(kept, p)
		}
	}
	rep.Problems = kept
	if repair {
		RepairFromTier2(ctx, s, &rep)
	}
	return rep, nil
}

// RepairFromTier2 repairs, on an open store, the segment problems of rep
// that the store's other copies can restore. Tier 2 problems go first: a
// missing or damaged Tier 2 object is uploaded again from the local copy
// (which the upload reads back in full, compressing Tier 1 again from Tier
// 0 when it is damaged). A damaged or missing Tier 1 copy alone is
// restored on its own (RestoreTier1), the Tier 0 file kept; a damaged Tier
// 0 copy of a segment confirmed in Tier 2 is dropped with Tier 1 and
// hydrated back. The local copies of a segment whose Tier 2 object failed
// the same check are never dropped (RestoreTier1 drops a Tier 1 copy only
// for a Tier 2 copy confirmed since): they may be its only good copy.
// Problems it cannot repair get a note saying why.
func RepairFromTier2(ctx context.Context, s *tiers.Store, rep *Report) {
	tier2Damaged := map[string]bool{}
	tier0Damaged := map[string]bool{}
	for i := range rep.Problems {
		p := &rep.Problems[i]
		switch p.Kind {
		case KindTier2Missing, KindTier2Corrupt:
			tier2Damaged[segmentKey(p.Stream, p.Segment)] = true
			if !p.Repaired {
				reuploadObject(ctx, s, p)
			}
		case KindTier0Corrupt, KindTier0Mismatch:
			tier0Damaged[segmentKey(p.Stream, p.Segment)] = true
		}
	}
	inTier2 := map[string]bool{}
	for _, st := range s.Segments("") {
		inTier2[segmentKey(st.Stream, st.Segment)] = st.InTier2
	}
	for i := range rep.Problems {
		p := &rep.Problems[i]
		key := segmentKey(p.Stream, p.Segment)
		if p.Repaired {
			continue
		}
		switch p.Kind {
		case KindTier2Missing, KindTier2Corrupt:
		case KindTier0Corrupt, KindTier0Mismatch, KindTier1Corrupt, KindTier1Missing:
			switch {
			case tier0Damaged[key] && tier2Damaged[key]:
				p.RepairNote = "local copies kept: the segment's Tier 2 object failed this check too (run the repair again once Tier 2 is repaired)"
			case tier0Damaged[key]:
				restoreLocalCopy(ctx, s, p, inTier2[key])
			default:
				restoreTier1(ctx, s, p)
			}
		default:
			if p.RepairNote == "" {
				p.RepairNote = "not repairable from Tier 2"
			}
		}
	}
}

// reuploadObject uploads p's segment to Tier 2 again from its local copy.
func reuploadObject(ctx context.Context, s *tiers.Store, p *Problem) {
	if err := s.Reupload(ctx, p.Stream, p.Segment); err != nil {
		p.RepairNote = "re-upload from the local copy: " + err.Error()
		return
	}
	p.Repaired, p.RepairNote = true, "Tier 2 object re-uploaded from the local copy"
}

// restoreTier1 restores p's segment's Tier 1 copy alone, from Tier 0 or
// else Tier 2.
func restoreTier1(ctx context.Context, s *tiers.Store, p *Problem) {
	if err := s.RestoreTier1(ctx, p.Stream, p.Segment); err != nil {
		p.RepairNote = "restore the Tier 1 copy: " + err.Error()
		return
	}
	p.Repaired, p.RepairNote = true, "Tier 1 copy verified, or written again from Tier 0 or Tier 2"
}

func segmentKey(stream string, id uint64) string { return stream + "/" + strconv.FormatUint(id, 10) }

// restoreLocalCopy drops the damaged local copy of p's segment and
// hydrates it back from its confirmed Tier 2 copy.
func restoreLocalCopy(ctx context.Context, s *tiers.Store, p *Problem, inTier2 bool) {
	switch {
	case s.Tier2() == nil:
		p.RepairNote = "no Tier 2 configured to restore from"
		return
	case !inTier2:
		p.RepairNote = "segment has no confirmed Tier 2 copy"
		return
	}
	if err := s.EvictLocal(ctx, p.Stream, p.Segment); err != nil {
		p.RepairNote = "drop damaged local copy: " + err.Error()
		return
	}
	if err := s.Hydrate(ctx, p.Stream, p.Segment); err != nil {
		p.RepairNote = "hydrate from Tier 2: " + err.Error()
		return
	}
	p.Repaired, p.RepairNote = true, "local copy dropped and hydrated back from Tier 2"
}
