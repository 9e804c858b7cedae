package tiers

import (
	"github.com/bop-aof/aof/manifest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/tiers/backpressure"
	"github.com/bop-aof/aof/tiers/segment"
)

// manifestOf matches the manifest chunk files of stream (not their temp
// files).
func manifestOf(stream string) func(string) bool {
	return func(n string) bool {
		return strings.Contains(n, "/manifest/"+stream+"/") && strings.HasSuffix(n, ".mlog")
	}
}

// segmentFile matches the Tier 0 file of segment id (not its temp file).
func segmentFile(id uint64) func(string) bool {
	return func(n string) bool { return filepath.Base(n) == segment.FileName(id) }
}

func nameEnds(suffix string) func(string) bool {
	return func(n string) bool { return strings.HasSuffix(n, suffix) }
}

// requireSealedOnDisk checks that segment id of stream still carries its
// footer: nothing may cut the footer of a segment current.sealed names.
func requireSealedOnDisk(t *testing.T, root, stream string, id uint64) {
	t.Helper()
	if _, err := segment.ReadFooter(vfs.Default, filepath.Join(root, "tier0", stream, segment.FileName(id))); err != nil {
		t.Fatalf("segment %d of %s: %v", id, stream, err)
	}
}

func requireSealedInManifest(t *testing.T, s *Store, stream string, id uint64) {
	t.Helper()
	idx, err := s.ManifestIndex(stream)
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := idx.Get(id); !ok || !st.Sealed {
		t.Fatalf("manifest of %s: segment %d sealed = %v (known %v), want sealed", stream, id, st.Sealed, ok)
	}
}

// TestSealSurvivesManifestFsyncFailure: the fsync of the SealSegment record
// fails once. The stream answers Flush backpressure, keeps the footer of the
// sealed segment, and Resume records the seal and goes on without a restart;
// the root reopens afterwards.
func TestSealSurvivesManifestFsyncFailure(t *testing.T) {
	ffs := vfs.NewFaultFS(nil)
	root := t.TempDir()
	s := openStore(t, Options{Root: root, FS: ffs})
	appendN(t, s, "sf", 0, 10)
	ffs.Inject(vfs.Fault{Op: vfs.OpSync, Times: 1, Err: vfs.ENOSPC, Match: manifestOf("sf")})
	if _, err := s.Seal(testCtx(t), "sf", false); !backpressure.Is(err, backpressure.Flush) {
		t.Fatalf("seal with a failing manifest fsync: %v, want Flush backpressure", err)
	}
	requireSealedOnDisk(t, root, "sf", 1)
	if err := s.AppendDurable(testCtx(t), "sf", []Record{{Payload: payload("sf", 10), ExtID: 11}}); !backpressure.Is(err, backpressure.Flush) {
		t.Fatalf("append before Resume: %v, want Flush backpressure", err)
	}
	requireSealedOnDisk(t, root, "sf", 1)
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	requireSealedInManifest(t, s, "sf", 1)
	appendN(t, s, "sf", 10, 10)
	readAll(t, s, "sf", 20)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, Options{Root: root})
	defer s.Close()
	requireSealedInManifest(t, s, "sf", 1)
	readAll(t, s, "sf", 20)
}

// TestStreamWithFullManifestDiskStopsAlone: while the manifest of one
// stream cannot be written, that stream answers Flush backpressure and
// another stream keeps ingesting and sealing; Store.Resume resumes the
// healthy streams without an error, and the stopped one once its disk has
// room again.
func TestStreamWithFullManifestDiskStopsAlone(t *testing.T) {
	ffs := vfs.NewFaultFS(nil)
	root := t.TempDir()
	s := openStore(t, Options{Root: root, FS: ffs})
	appendN(t, s, "full", 0, 10)
	appendN(t, s, "ok", 0, 10)
	ffs.Inject(vfs.Fault{Op: vfs.OpSync, Err: vfs.ENOSPC, Match: manifestOf("full")})
	if _, err := s.Seal(testCtx(t), "full", false); !backpressure.Is(err, backpressure.Flush) {
		t.Fatalf("seal with a full manifest disk: %v, want Flush backpressure", err)
	}
	for round := 0; round < 2; round++ {
		if err := s.Resume(); err != nil {
			t.Fatalf("round %d: Resume with one stream still stopped: %v", round, err)
		}
		if err := s.AppendDurable(testCtx(t), "full", []Record{{Payload: payload("full", 10), ExtID: 11}}); !backpressure.Is(err, backpressure.Flush) {
			t.Fatalf("round %d: append to the stopped stream: %v, want Flush backpressure", round, err)
		}
		appendN(t, s, "ok", 10+10*round, 10)
		if _, err := s.Seal(testCtx(t), "ok", false); err != nil {
			t.Fatalf("round %d: seal of the healthy stream: %v", round, err)
		}
	}
	requireSealedOnDisk(t, root, "full", 1)
	ffs.Reset() // the disk has room again
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "full", 10, 10)
	readAll(t, s, "full", 20)
	readAll(t, s, "ok", 30)
	requireSealedInManifest(t, s, "full", 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, Options{Root: root})
	defer s.Close()
	readAll(t, s, "full", 20)
	readAll(t, s, "ok", 30)
}

// sealStep is one durable step of Log.rollLocked, named in the order it
// runs: the footer, current.sealed, the SealSegment record, the next
// segment and its SegmentOpened record.
type sealStep struct {
	name  string
	op    vfs.Op
	match func(string) bool
	after int // matching operations of the seal before this one
}

var sealSteps = []sealStep{
	{"footer write", vfs.OpWrite, segmentFile(1), 0},
	{"footer fsync", vfs.OpSync, segmentFile(1), 0},
	{"current.sealed temp write", vfs.OpWrite, nameEnds(segment.CurrentSealedName + ".tmp"), 0},
	{"current.sealed temp fsync", vfs.OpSync, nameEnds(segment.CurrentSealedName + ".tmp"), 0},
	{"current.sealed rename", vfs.OpRename, nameEnds(segment.CurrentSealedName), 0},
	{"current.sealed dir fsync", vfs.OpSyncDir, nameEnds("/tier0/cr"), 0},
	{"SealSegment record write", vfs.OpWrite, manifestOf("cr"), 0},
	{"SealSegment record fsync", vfs.OpSync, manifestOf("cr"), 0},
	{"SealSegment header write", vfs.OpWrite, manifestOf("cr"), 1},
	{"SealSegment header fsync", vfs.OpSync, manifestOf("cr"), 1},
	{"next segment temp create", vfs.OpOpen, nameEnds(segment.TempFileName(2)), 0},
	{"next segment header fsync", vfs.OpSync, nameEnds(segment.TempFileName(2)), 0},
	{"next segment rename", vfs.OpRename, segmentFile(2), 0},
	{"next segment dir fsync", vfs.OpSyncDir, nameEnds("/tier0/cr"), 1},
	{"SegmentOpened record write", vfs.OpWrite, manifestOf("cr"), 2},
	{"SegmentOpened record fsync", vfs.OpSync, manifestOf("cr"), 2},
	{"SegmentOpened header write", vfs.OpWrite, manifestOf("cr"), 3},
	{"SegmentOpened header fsync", vfs.OpSync, manifestOf("cr"), 3},
}

// TestRootReopensAfterCrashAtEachSealStep crashes right after each durable
// step of a seal. The restart must open the root, serve every acknowledged
// record, take new appends and seal again, and a second restart must agree.
func TestRootReopensAfterCrashAtEachSealStep(t *testing.T) {
	for _, step := range sealSteps {
		t.Run(step.name, func(t *testing.T) {
			ffs := vfs.NewFaultFS(nil)
			root := t.TempDir()
			s := openStore(t, Options{Root: root, FS: ffs})
			appendN(t, s, "cr", 0, 10)
			ffs.CrashAfter(step.op, step.match, step.after)
			_, err := s.Seal(testCtx(t), "cr", false)
			if !ffs.Crashed() {
				t.Fatalf("the seal never reached the step (seal: %v)", err)
			}
			s.Close()

			s = openStore(t, Options{Root: root})
			readAll(t, s, "cr", 10)
			appendN(t, s, "cr", 10, 10)
			if _, err := s.Seal(testCtx(t), "cr", false); err != nil {
				t.Fatalf("seal after the restart: %v", err)
			}
			readAll(t, s, "cr", 20)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openStore(t, Options{Root: root})
			defer s.Close()
			readAll(t, s, "cr", 20)
		})
	}
}

// sealFailingOnce appends ten records to stream cr of a new store and
// seals it with step failing once with a full disk. It returns the store,
// its root and what Seal answered.
func sealFailingOnce(t *testing.T, step sealStep) (*Store, string, error) {
	t.Helper()
	ffs := vfs.NewFaultFS(nil)
	root := t.TempDir()
	s := openStore(t, Options{Root: root, FS: ffs})
	appendN(t, s, "cr", 0, 10)
	ft := ffs.Inject(vfs.Fault{Op: step.op, Match: step.match, After: step.after, Times: 1, Err: vfs.ENOSPC})
	_, err := s.Seal(testCtx(t), "cr", false)
	if ft.Fired() == 0 {
		t.Fatalf("the seal never reached the step (seal: %v)", err)
	}
	return s, root, err
}

// TestSealRecoversFromAFailureAtEachStep fails each durable step of a seal
// once with a full disk, without a crash: the stream reports Flush (or
// Rollover) backpressure at worst, a Resume lets it go on without a
// restart, and the root reopens with every acknowledged record.
func TestSealRecoversFromAFailureAtEachStep(t *testing.T) {
	for _, step := range sealSteps {
		t.Run(step.name, func(t *testing.T) {
			s, root, err := sealFailingOnce(t, step)
			if err != nil && !backpressure.Is(err, backpressure.Flush) && !backpressure.Is(err, backpressure.Rollover) {
				t.Fatalf("seal: %v, want nil, Flush or Rollover backpressure", err)
			}
			if err := s.Resume(); err != nil {
				t.Fatal(err)
			}
			appendN(t, s, "cr", 10, 10)
			readAll(t, s, "cr", 20)
			if _, err := s.Seal(testCtx(t), "cr", false); err != nil {
				t.Fatalf("second seal: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openStore(t, Options{Root: root})
			defer s.Close()
			readAll(t, s, "cr", 20)
		})
	}
}

// TestRootReopensAfterAFailedSealStep fails each durable step of a seal
// once, lets the stream take (or refuse) an append as the ingest pipeline
// would, and then restarts without a Resume: the root must reopen with
// every acknowledged record whatever the failure left behind.
func TestRootReopensAfterAFailedSealStep(t *testing.T) {
	for _, step := range sealSteps {
		t.Run(step.name, func(t *testing.T) {
			s, root, _ := sealFailingOnce(t, step) // whatever the seal answered, the root must reopen
			acked := 10
			if err := s.AppendDurable(testCtx(t), "cr", []Record{{Payload: payload("cr", 10), ExtID: 11}}); err == nil {
				acked++
			} else if !backpressure.Is(err, backpressure.Flush) && !backpressure.Is(err, backpressure.Rollover) {
				t.Fatalf("append after the failed step: %v, want nil, Flush or Rollover backpressure", err)
			}
			s.Close()

			s = openStore(t, Options{Root: root})
			defer s.Close()
			readAll(t, s, "cr", acked)
			appendN(t, s, "cr", acked, 5)
			if _, err := s.Seal(testCtx(t), "cr", false); err != nil {
				t.Fatalf("seal after the restart: %v", err)
			}
			readAll(t, s, "cr", acked+5)
		})
	}
}

// TestRootWithACutFooterReopens: a root left by an older version, where a
// failed SealSegment commit was followed by an append that cut the footer
// of the segment current.sealed names, opens again: the segment is sealed
// anew over its durable records and the seal recorded.
func TestRootWithACutFooterReopens(t *testing.T) {
	ffs := vfs.NewFaultFS(nil)
	root := t.TempDir()
	s := openStore(t, Options{Root: root, FS: ffs})
	appendN(t, s, "old", 0, 10)
	ffs.Inject(vfs.Fault{Op: vfs.OpSync, Err: vfs.ENOSPC, Match: manifestOf("old")})
	s.Seal(testCtx(t), "old", false)
	ffs.Crash()
	s.Close()
	path := filepath.Join(root, "tier0", "old", segment.FileName(1))
	ft, err := segment.ReadFooter(vfs.Default, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, int64(ft.DurableBytes)); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, Options{Root: root})
	requireSealedOnDisk(t, root, "old", 1)
	requireSealedInManifest(t, s, "old", 1)
	readAll(t, s, "old", 10)
	appendN(t, s, "old", 10, 5)
	readAll(t, s, "old", 15)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, Options{Root: root})
	defer s.Close()
	readAll(t, s, "old", 15)
}

// TestSealWaitsForAManifestThatFailedBefore: a manifest commit of the
// stream failed before the seal (a background record, say). The seal
// finds out first and seals nothing: Flush backpressure, appends go on
// into the unsealed segment, and the seal succeeds once the disk has room,
// with the failed record committed once.
func TestSealWaitsForAManifestThatFailedBefore(t *testing.T) {
	ffs := vfs.NewFaultFS(nil)
	root := t.TempDir()
	s := openStore(t, Options{Root: root, FS: ffs})
	defer s.Close()
	appendN(t, s, "pre", 0, 10)
	l, err := s.existing("pre")
	if err != nil {
		t.Fatal(err)
	}
	ffs.Inject(vfs.Fault{Op: vfs.OpSync, Err: vfs.ENOSPC, Match: manifestOf("pre")})
	if err := l.record(manifest.Record{Type: manifest.CustomEvent, Payload: manifest.CustomEventPayload{SchemaID: 7}}); err == nil {
		t.Fatal("record with a full manifest disk succeeded")
	}
	if _, err := s.Seal(testCtx(t), "pre", false); !backpressure.Is(err, backpressure.Flush) {
		t.Fatalf("seal with a failed manifest: %v, want Flush backpressure", err)
	}
	if _, err := segment.ReadFooter(vfs.Default, filepath.Join(root, "tier0", "pre", segment.FileName(1))); err == nil {
		t.Fatal("the seal wrote a footer although its record could not be committed")
	}
	appendN(t, s, "pre", 10, 5)
	ffs.Reset()
	if _, err := s.Seal(testCtx(t), "pre", false); err != nil {
		t.Fatalf("seal once the disk has room: %v", err)
	}
	requireSealedInManifest(t, s, "pre", 1)
	idx, _ := s.ManifestIndex("pre")
	if idx.Custom != 1 {
		t.Fatalf("%d custom records committed, want the failed one once", idx.Custom)
	}
	readAll(t, s, "pre", 15)
}

// TestResumeStreamSaysWhetherOneStreamIsWritable: ResumeStream answers
// Flush backpressure for a stream whose manifest still cannot be written,
// nil for a healthy or unknown stream, and once the disk has room it
// resumes the stream, which takes appends again.
func TestResumeStreamSaysWhetherOneStreamIsWritable(t *testing.T) {
	ffs := vfs.NewFaultFS(nil)
	s := openStore(t, Options{Root: t.TempDir(), FS: ffs})
	defer s.Close()
	appendN(t, s, "full", 0, 10)
	appendN(t, s, "ok", 0, 10)
	ffs.Inject(vfs.Fault{Op: vfs.OpSync, Err: vfs.ENOSPC, Match: manifestOf("full")})
	if _, err := s.Seal(testCtx(t), "full", false); !backpressure.Is(err, backpressure.Flush) {
		t.Fatalf("seal with a full manifest disk: %v, want Flush backpressure", err)
	}
	for _, stream := range []string{"ok", "never-written"} {
		if err := s.ResumeStream(stream); err != nil {
			t.Fatalf("ResumeStream(%s): %v, want nil", stream, err)
		}
	}
	for range 2 {
		if err := s.ResumeStream("full"); !backpressure.Is(err, backpressure.Flush) {
			t.Fatalf("ResumeStream with the manifest disk still full: %v, want Flush backpressure", err)
		}
	}
	ffs.Reset()
	if err := s.ResumeStream("full"); err != nil {
		t.Fatalf("ResumeStream once the disk has room: %v", err)
	}
	requireSealedInManifest(t, s, "full", 1)
	appendN(t, s, "full", 10, 5)
	readAll(t, s, "full", 15)
}

// TestResumeStreamRetriesAPendingManifestRecord: the seal is recorded but
// the next segment's SegmentOpened record cannot be committed. The log
// itself is not stopped, yet the stream is not writable as far as its
// manifest goes: ResumeStream answers Flush backpressure until the record
// commits.
func TestResumeStreamRetriesAPendingManifestRecord(t *testing.T) {
	ffs := vfs.NewFaultFS(nil)
	s := openStore(t, Options{Root: t.TempDir(), FS: ffs})
	defer s.Close()
	appendN(t, s, "po", 0, 10)
	// The seal's first two manifest fsyncs (SealSegment record, header)
	// succeed; SegmentOpened's fail.
	ffs.Inject(vfs.Fault{Op: vfs.OpSync, Err: vfs.ENOSPC, After: 2, Match: manifestOf("po")})
	if _, err := s.Seal(testCtx(t), "po", false); !backpressure.Is(err, backpressure.Flush) {
		t.Fatalf("seal whose SegmentOpened cannot commit: %v, want Flush backpressure", err)
	}
	requireSealedInManifest(t, s, "po", 1)
	if err := s.ResumeStream("po"); !backpressure.Is(err, backpressure.Flush) {
		t.Fatalf("ResumeStream with SegmentOpened still pending: %v, want Flush backpressure", err)
	}
	ffs.Reset()
	if err := s.ResumeStream("po"); err != nil {
		t.Fatalf("ResumeStream once the disk has room: %v", err)
	}
	appendN(t, s, "po", 10, 5)
	readAll(t, s, "po", 15)
}
