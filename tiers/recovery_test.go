package tiers

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers/segment"
)

// Fixtures: segment id holds offsets [(id-1)*10, id*10) and ext_ids
// (id-1)*10+1 .. id*10; tiers names the copies ("012" = all three).

func sealedState(id uint64, tiers string) manifest.SegmentState {
	return manifest.SegmentState{
		Segment: id, BaseOffset: (id - 1) * 10, LastLogicalOffset: id * 10, OpenedMS: int64(id) * 100,
		Sealed: true, DurableBytes: 1000 + id, CRC64: 0xC0 + id, LastExtID: id * 10,
		InTier0: strings.Contains(tiers, "0"), InTier1: strings.Contains(tiers, "1"), InTier2: strings.Contains(tiers, "2"),
	}
}

func openState(id uint64) manifest.SegmentState {
	return manifest.SegmentState{Segment: id, BaseOffset: (id - 1) * 10, LastLogicalOffset: (id - 1) * 10,
		OpenedMS: int64(id) * 100, InTier0: true}
}

// sealedInfo is what the log keeps of sealedState(id, tiers) when the
// copies named by tiers are found.
func sealedInfo(id uint64, tiers string) segInfo {
	return segInfo{id: id, base: (id - 1) * 10, next: id * 10, bytes: int64(1000 + id),
		crc64: 0xC0 + id, lastExt: id * 10, createdMS: int64(id) * 100,
		st: manifest.SegmentState{Segment: id, Sealed: true,
			InTier0: strings.Contains(tiers, "0"), InTier1: strings.Contains(tiers, "1"), InTier2: strings.Contains(tiers, "2")}}
}

// footerInfo is a Tier 0 segment filled from footerOf(id).
func footerInfo(id uint64) segInfo {
	si := sealedInfo(id, "0")
	si.firstExt = (id-1)*10 + 1
	return si
}

func headerOf(id uint64) segment.Header {
	return segment.Header{SegmentID: id, BaseOffset: (id - 1) * 10, CreatedMS: int64(id) * 100}
}

func footerOf(id uint64) segment.Footer {
	return segment.Footer{RecordCount: 10, FirstOffset: (id - 1) * 10, LastOffset: id*10 - 1,
		DurableBytes: 1000 + id, CRC64: 0xC0 + id, FirstExtID: (id-1)*10 + 1, LastExtID: id * 10}
}

// tailReport is segment.Recover's report on tail id holding n records.
func tailReport(id, n uint64, cut int64) segment.RecoveryReport {
	rep := segment.RecoveryReport{Segment: id, Header: headerOf(id), Records: n, DurableBytes: 500,
		NextOffset: (id-1)*10 + n, CutBytes: cut}
	if cut > 0 {
		rep.CutRecords, rep.CutReason = 1, "short record"
	}
	return rep
}

// activeInfo is the adopted tail id holding n records.
func activeInfo(id, n uint64) segInfo {
	return segInfo{id: id, base: (id - 1) * 10, next: (id-1)*10 + n, bytes: 500, lastExt: (id-1)*10 + n,
		createdMS: int64(id) * 100, st: manifest.SegmentState{Segment: id, InTier0: true}}
}

// Tier 0 files as the inventory finds them.
func untouchedFile() *tier0File { return &tier0File{} }

func adoptedTail(id, n uint64, cut int64) *tier0File {
	return &tier0File{scan: &tailScan{rep: tailReport(id, n, cut), lastExt: (id-1)*10 + n}}
}

func sealedFile(id uint64) *tier0File {
	return &tier0File{read: true, header: headerOf(id), footer: footerOf(id), hasFooter: true}
}

func sealedTail(id uint64) *tier0File {
	f := sealedFile(id)
	f.scan = &tailScan{sealed: true}
	return f
}

func footerlessFile(id uint64) *tier0File { return &tier0File{read: true, header: headerOf(id)} }

type invSpec struct {
	manifest []manifest.SegmentState
	files    map[uint64]*tier0File
	mark     uint64 // current.sealed; 0: none
	tier1    []uint64
}

func (s invSpec) inventory() *recoveryInventory {
	inv := &recoveryInventory{manifest: map[uint64]manifest.SegmentState{}, files: map[uint64]*tier0File{},
		tier1: map[uint64]bool{}}
	for _, st := range s.manifest {
		inv.manifest[st.Segment] = st
	}
	for id, f := range s.files {
		inv.files[id] = f
		inv.tail = max(inv.tail, id)
	}
	if s.mark > 0 {
		inv.mark, inv.markOK = segment.SealedMark{SegmentID: s.mark}, true
	}
	for _, id := range s.tier1 {
		inv.tier1[id] = true
	}
	return inv
}

func with(st manifest.SegmentState, change func(*manifest.SegmentState)) manifest.SegmentState {
	change(&st)
	return st
}

func withInfo(si segInfo, change func(*segInfo)) segInfo {
	change(&si)
	return si
}

// decided keeps, of each loaded segment's folded state, what the plan
// decides (its phase and copies); the rest is the manifest's, copied.
func decided(acts []recoveryAction) []recoveryAction {
	out := make([]recoveryAction, len(acts))
	for i, a := range acts {
		if ls, ok := a.(loadSegment); ok {
			st := ls.info.st
			ls.info.st = manifest.SegmentState{Segment: st.Segment, Sealed: st.Sealed,
				InTier0: st.InTier0, InTier1: st.InTier1, InTier2: st.InTier2, Tier2Key: st.Tier2Key, ETag: st.ETag,
				CompressedBytes: st.CompressedBytes, NeedsRecovery: st.NeedsRecovery, Reason: st.Reason}
			a = ls
		}
		out[i] = a
	}
	return out
}

// TestRecoveryPlan: one case per situation a restart can find, each with
// the exact actions that recover it.
func TestRecoveryPlan(t *testing.T) {
	// Segment 2 is the unsealed tail with 3 records in most cases.
	tail2 := []recoveryAction{
		loadSegment{activeInfo(2, 3)}, adoptTail{2, nil, tailReport(2, 3, 0)}, chargeTier0Budget{2, false, false},
	}
	then := func(parts ...[]recoveryAction) []recoveryAction {
		var out []recoveryAction
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		inv  invSpec
		want []recoveryAction
	}{{
		name: "empty root: the first segment is opened",
		want: []recoveryAction{openNextSegment{}, commitManifest{}},
	}, {
		name: "clean restart: a sealed segment awaiting compression and a torn active tail",
		inv: invSpec{manifest: []manifest.SegmentState{sealedState(1, "0"), openState(2)},
			files: map[uint64]*tier0File{1: untouchedFile(), 2: adoptedTail(2, 3, 17)}, mark: 1},
		want: []recoveryAction{
			loadSegment{sealedInfo(1, "0")}, chargeTier0Budget{1, true, false},
			loadSegment{activeInfo(2, 3)}, adoptTail{2, nil, tailReport(2, 3, 17)}, chargeTier0Budget{2, false, false},
			commitManifest{}, queueCompression{1},
		},
	}, {
		name: "compressed segment awaiting upload",
		inv: invSpec{manifest: []manifest.SegmentState{sealedState(1, "01"), openState(2)},
			files: map[uint64]*tier0File{1: untouchedFile(), 2: adoptedTail(2, 3, 0)}, mark: 1, tier1: []uint64{1}},
		want: then([]recoveryAction{loadSegment{sealedInfo(1, "01")}, chargeTier0Budget{1, true, true}},
			tail2, []recoveryAction{commitManifest{}, queueUpload{1}}),
	}, {
		name: "uploaded artifact is marked uploaded again, nothing queued",
		inv: invSpec{manifest: []manifest.SegmentState{sealedState(1, "12"), openState(2)},
			files: map[uint64]*tier0File{2: adoptedTail(2, 3, 0)}, mark: 1, tier1: []uint64{1}},
		want: then([]recoveryAction{loadSegment{sealedInfo(1, "12")}, markArtifactUploaded{1}},
			tail2, []recoveryAction{commitManifest{}}),
	}, {
		name: "retired segment: the file and artifact a crash left are removed",
		inv: invSpec{manifest: []manifest.SegmentState{with(sealedState(1, ""), func(s *manifest.SegmentState) { s.Deleted = true }), openState(2)},
			files: map[uint64]*tier0File{1: untouchedFile(), 2: adoptedTail(2, 3, 0)}, mark: 1, tier1: []uint64{1}},
		want: then([]recoveryAction{dropRetiredFile{1}, dropStaleArtifact{1}}, tail2, []recoveryAction{commitManifest{}}),
	}, {
		name: "artifact the manifest does not count is dropped and compression redone",
		inv: invSpec{manifest: []manifest.SegmentState{sealedState(1, "0"), openState(2)},
			files: map[uint64]*tier0File{1: untouchedFile(), 2: adoptedTail(2, 3, 0)}, mark: 1, tier1: []uint64{1}},
		want: then([]recoveryAction{dropStaleArtifact{1}, loadSegment{sealedInfo(1, "0")}, chargeTier0Budget{1, true, false}},
			tail2, []recoveryAction{commitManifest{}, queueCompression{1}}),
	}, {
		name: "eviction interrupted after LocalEvicted: the file is removed",
		inv: invSpec{manifest: []manifest.SegmentState{sealedState(1, "1"), openState(2)},
			files: map[uint64]*tier0File{1: untouchedFile(), 2: adoptedTail(2, 3, 0)}, mark: 1, tier1: []uint64{1}},
		want: then([]recoveryAction{finishEviction{1}, loadSegment{sealedInfo(1, "1")}},
			tail2, []recoveryAction{commitManifest{}, queueUpload{1}}),
	}, {
		name: "evicted tail: its file is removed and the next segment opened",
		inv: invSpec{manifest: []manifest.SegmentState{sealedState(1, "12")},
			files: map[uint64]*tier0File{1: untouchedFile()}, mark: 1, tier1: []uint64{1}},
		want: []recoveryAction{finishEviction{1}, loadSegment{sealedInfo(1, "12")}, markArtifactUploaded{1},
			openNextSegment{}, commitManifest{}},
	}, {
		name: "crash before SegmentOpened: the tail unknown to the manifest is recorded and adopted",
		inv: invSpec{manifest: []manifest.SegmentState{sealedState(1, "0")},
			files: map[uint64]*tier0File{1: untouchedFile(), 2: adoptedTail(2, 3, 0)}, mark: 1},
		want: []recoveryAction{
			loadSegment{sealedInfo(1, "0")}, chargeTier0Budget{1, true, false},
			loadSegment{activeInfo(2, 3)}, recordOpened{2, 10, 200}, adoptTail{2, nil, tailReport(2, 3, 0)}, chargeTier0Budget{2, false, false},
			commitManifest{}, queueCompression{1},
		},
	}, {
		name: "crash after the footer: the seal is redone from the tail's footer",
		inv: invSpec{manifest: []manifest.SegmentState{openState(1)},
			files: map[uint64]*tier0File{1: sealedTail(1)}},
		want: []recoveryAction{loadSegment{footerInfo(1)}, redoSeal{1}, chargeTier0Budget{1, true, false},
			openNextSegment{}, commitManifest{}, queueCompression{1}},
	}, {
		name: "crash after current.sealed: the seal is redone from the footer",
		inv: invSpec{manifest: []manifest.SegmentState{openState(1)},
			files: map[uint64]*tier0File{1: sealedFile(1)}, mark: 1},
		want: []recoveryAction{loadSegment{footerInfo(1)}, redoSeal{1}, chargeTier0Budget{1, true, false},
			openNextSegment{}, commitManifest{}, queueCompression{1}},
	}, {
		name: "crash after the next segment's file: the seal and its SegmentOpened are redone",
		inv: invSpec{manifest: []manifest.SegmentState{openState(1)},
			files: map[uint64]*tier0File{1: sealedFile(1), 2: adoptedTail(2, 0, 0)}, mark: 1},
		want: []recoveryAction{
			loadSegment{footerInfo(1)}, redoSeal{1}, chargeTier0Budget{1, true, false},
			loadSegment{activeInfo(2, 0)}, recordOpened{2, 10, 200}, adoptTail{2, nil, tailReport(2, 0, 0)}, chargeTier0Budget{2, false, false},
			commitManifest{}, queueCompression{1},
		},
	}, {
		name: "sealed file unknown to the manifest: SegmentOpened and SealSegment recorded",
		inv:  invSpec{files: map[uint64]*tier0File{1: sealedFile(1), 2: adoptedTail(2, 3, 0)}, mark: 1},
		want: []recoveryAction{
			loadSegment{footerInfo(1)}, recordOpened{1, 0, 100}, redoSeal{1}, chargeTier0Budget{1, true, false},
			loadSegment{activeInfo(2, 3)}, recordOpened{2, 10, 200}, adoptTail{2, nil, tailReport(2, 3, 0)}, chargeTier0Budget{2, false, false},
			commitManifest{}, queueCompression{1},
		},
	}, {
		name: "footer cut by an older version: resealed and the seal recorded",
		inv: invSpec{manifest: []manifest.SegmentState{openState(1)},
			files: map[uint64]*tier0File{1: footerlessFile(1)}, mark: 1},
		want: []recoveryAction{
			loadSegment{withInfo(activeInfo(1, 0), func(si *segInfo) { si.st.Sealed, si.bytes, si.lastExt = true, 0, 0 })},
			resealCutFooter{1}, redoSeal{1}, chargeTier0Budget{1, true, false},
			openNextSegment{}, commitManifest{}, queueCompression{1},
		},
	}, {
		name: "seal recorded without its size: filled from the footer, not recorded again",
		inv: invSpec{manifest: []manifest.SegmentState{with(sealedState(1, "0"), func(s *manifest.SegmentState) { s.DurableBytes = 0 }), openState(2)},
			files: map[uint64]*tier0File{1: sealedFile(1), 2: adoptedTail(2, 3, 0)}, mark: 1},
		want: then([]recoveryAction{loadSegment{footerInfo(1)}, chargeTier0Budget{1, true, false}},
			tail2, []recoveryAction{commitManifest{}, queueCompression{1}}),
	}, {
		name: "Tier 0 only copy gone: needs recovery, nothing queued",
		inv: invSpec{manifest: []manifest.SegmentState{sealedState(1, "0"), openState(2)},
			files: map[uint64]*tier0File{2: adoptedTail(2, 3, 0)}, mark: 1},
		want: then([]recoveryAction{loadSegment{sealedInfo(1, "")}, markMissing{1, "tier0 file missing and no other copy"}},
			tail2, []recoveryAction{commitManifest{}}),
	}, {
		name: "Tier 1 only copy gone: needs recovery, nothing queued",
		inv: invSpec{manifest: []manifest.SegmentState{sealedState(1, "1"), openState(2)},
			files: map[uint64]*tier0File{2: adoptedTail(2, 3, 0)}, mark: 1},
		want: then([]recoveryAction{loadSegment{sealedInfo(1, "1")}, forgetTier1Copy{1}, markMissing{1, "tier1 artifact missing and no other copy"}},
			tail2, []recoveryAction{commitManifest{}}),
	}, {
		name: "artifact gone while Tier 2 holds the segment: only the Tier 1 copy is forgotten",
		inv: invSpec{manifest: []manifest.SegmentState{sealedState(1, "12"), openState(2)},
			files: map[uint64]*tier0File{2: adoptedTail(2, 3, 0)}, mark: 1},
		want: then([]recoveryAction{loadSegment{sealedInfo(1, "12")}, markArtifactUploaded{1}, forgetTier1Copy{1}},
			tail2, []recoveryAction{commitManifest{}}),
	}, {
		name: "artifact gone while the Tier 0 file stays: the budget does not count the file as evictable",
		inv: invSpec{manifest: []manifest.SegmentState{sealedState(1, "01"), openState(2)},
			files: map[uint64]*tier0File{1: untouchedFile(), 2: adoptedTail(2, 3, 0)}, mark: 1},
		want: then([]recoveryAction{loadSegment{sealedInfo(1, "01")}, chargeTier0Budget{1, true, false}, forgetTier1Copy{1}},
			tail2, []recoveryAction{commitManifest{}, queueCompression{1}}),
	}, {
		name: "Tier 2 delete interrupted with a local copy: undone by uploading again",
		inv: invSpec{manifest: []manifest.SegmentState{with(sealedState(1, "012"), func(s *manifest.SegmentState) { s.PendingJobs = manifest.PendingDelete }), openState(2)},
			files: map[uint64]*tier0File{1: untouchedFile(), 2: adoptedTail(2, 3, 0)}, mark: 1, tier1: []uint64{1}},
		want: then([]recoveryAction{loadSegment{sealedInfo(1, "012")}, chargeTier0Budget{1, true, true}, markArtifactUploaded{1}},
			tail2, []recoveryAction{commitManifest{}, undoTier2Delete{1}, queueUpload{1}}),
	}, {
		name: "retirement interrupted (Tier 2 delete, no local copy): left to the next retention pass",
		inv: invSpec{manifest: []manifest.SegmentState{with(sealedState(1, "2"), func(s *manifest.SegmentState) { s.PendingJobs = manifest.PendingDelete }), openState(2)},
			files: map[uint64]*tier0File{2: adoptedTail(2, 3, 0)}, mark: 1},
		want: then([]recoveryAction{loadSegment{sealedInfo(1, "2")}},
			tail2, []recoveryAction{commitManifest{}, resumeRetirement{1}}),
	}, {
		name: "segment already needing recovery: nothing queued",
		inv: invSpec{manifest: []manifest.SegmentState{with(sealedState(1, "0"), func(s *manifest.SegmentState) {
			s.NeedsRecovery, s.Reason = true, manifest.ReasonCodec
		}), openState(2)},
			files: map[uint64]*tier0File{1: untouchedFile(), 2: adoptedTail(2, 3, 0)}, mark: 1},
		want: then([]recoveryAction{loadSegment{withInfo(sealedInfo(1, "0"), func(si *segInfo) {
			si.st.NeedsRecovery, si.st.Reason = true, manifest.ReasonCodec
		})}, chargeTier0Budget{1, true, false}},
			tail2, []recoveryAction{commitManifest{}}),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := planRecovery(tc.inv.inventory())
			if err != nil {
				t.Fatalf("planRecovery: %v", err)
			}
			if got = decided(got); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("plan:\n%s\nwant:\n%s", describeActions(got), describeActions(tc.want))
			}
		})
	}
}

// TestRecoveryPlanRefusesAnUnsealedOlderFile: only the tail may lack a
// footer; an older file without one, which current.sealed does not name
// either, stops the open rather than lose or invent its records.
func TestRecoveryPlanRefusesAnUnsealedOlderFile(t *testing.T) {
	inv := invSpec{manifest: []manifest.SegmentState{openState(1), openState(2)},
		files: map[uint64]*tier0File{1: footerlessFile(1), 2: adoptedTail(2, 3, 0)}}.inventory()
	acts, err := planRecovery(inv)
	if !errors.Is(err, segment.ErrNotSealed) || !strings.Contains(err.Error(), "segment 1") {
		t.Fatalf("planRecovery: %v (plan %s), want segment 1 not sealed", err, describeActions(acts))
	}
}

// TestRecoveryInventoryReadsOnlyWhatDecides: the inventory scans the tail
// unless current.sealed names it or the manifest has taken it out of Tier
// 0, and opens an older file only when the manifest lacks its seal.
func TestRecoveryInventoryReadsOnlyWhatDecides(t *testing.T) {
	inv := invSpec{
		manifest: []manifest.SegmentState{
			with(sealedState(1, ""), func(s *manifest.SegmentState) { s.Deleted = true }),
			sealedState(2, "1"), sealedState(3, "0"), openState(4), openState(5),
		},
		files: map[uint64]*tier0File{1: untouchedFile(), 2: untouchedFile(), 3: untouchedFile(), 4: untouchedFile(), 5: untouchedFile()},
		mark:  4,
	}.inventory()
	for _, c := range []struct {
		id          uint64
		scan, reads bool
	}{{1, false, false}, {2, false, false}, {3, false, false}, {4, false, true}, {5, true, true}} {
		if got := inv.scansTail(c.id); got != c.scan {
			t.Errorf("segment %d: scansTail = %v, want %v", c.id, got, c.scan)
		}
		if got := inv.readsSeal(c.id); got != c.reads {
			t.Errorf("segment %d: readsSeal = %v, want %v", c.id, got, c.reads)
		}
	}
	inv.files[5].scan = &tailScan{}
	if inv.readsSeal(5) {
		t.Error("an adopted tail has no footer to read")
	}
	inv.mark.SegmentID = 5
	if inv.scansTail(5) {
		t.Error("a tail current.sealed names is scanned")
	}
}

func describeActions(acts []recoveryAction) string {
	var b strings.Builder
	for _, a := range acts {
		fmt.Fprintf(&b, "  %T %+v\n", a, a)
	}
	return b.String()
}

// TestSegmentPhase: a lost segment is needs_recovery whatever else holds,
// the active one is active, every other sealed; the JSON keeps the strings
// operators and scripts read.
func TestSegmentPhase(t *testing.T) {
	for _, c := range []struct {
		si     segInfo
		active bool
		want   SegmentPhase
		json   string
	}{
		{segInfo{st: manifest.SegmentState{Sealed: true}}, false, PhaseSealed, `"state":"sealed"`},
		{segInfo{}, true, PhaseActive, `"state":"active"`},
		{segInfo{st: manifest.SegmentState{Sealed: true, NeedsRecovery: true}}, false, PhaseNeedsRecovery, `"state":"needs_recovery"`},
		{segInfo{st: manifest.SegmentState{NeedsRecovery: true}}, true, PhaseNeedsRecovery, `"state":"needs_recovery"`},
	} {
		got := c.si.phase(c.active)
		b, err := json.Marshal(SegmentStatus{State: got})
		if got != c.want || err != nil || !strings.Contains(string(b), c.json) {
			t.Errorf("%+v active=%v: phase %q, JSON %s (%v), want %q and %s", c.si, c.active, got, b, err, c.want, c.json)
		}
	}
}
