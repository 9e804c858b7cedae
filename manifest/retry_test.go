package manifest

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/bop-aof/aof/internal/vfs"
)

// commitStep is one durable step of a Commit, named in the order it runs.
type commitStep struct {
	name   string
	op     vfs.Op
	suffix string // of the file name the step acts on
	after  int    // matching operations of the commit before this one
	rotate bool   // the commit rotates to a new chunk
}

var commitSteps = []commitStep{
	{"record write", vfs.OpWrite, chunkExt, 0, false},
	{"record fsync", vfs.OpSync, chunkExt, 0, false},
	{"header write", vfs.OpWrite, chunkExt, 1, false},
	{"header fsync", vfs.OpSync, chunkExt, 1, false},
	{"seal slot write", vfs.OpWrite, chunkExt, 0, true},
	{"seal slot fsync", vfs.OpSync, chunkExt, 0, true},
	{"new chunk temp write", vfs.OpWrite, chunkExt + tmpExt, 0, true},
	{"new chunk temp fsync", vfs.OpSync, chunkExt + tmpExt, 0, true},
	{"new chunk rename", vfs.OpRename, chunkExt, 0, true},
	{"new chunk dir fsync", vfs.OpSyncDir, "", 0, true},
}

// openForStep opens a Log holding recs[:3]; for a rotating step the chunk
// capacity makes recs[3] start chunk 1.
func openForStep(t *testing.T, fs vfs.FS, dir string, step commitStep) *Log {
	t.Helper()
	recs := sampleRecords()
	opts := Options{}
	if step.rotate {
		n := 0
		for _, r := range recs[:3] {
			n += len(AppendRecord(nil, r))
		}
		opts.ChunkCapacity = int64(ChunkHeaderSize + n)
	}
	l := openLog(t, fs, dir, opts)
	appendCommit(t, l, recs[:3]...)
	return l
}

func injectStep(ffs *vfs.FaultFS, step commitStep, times int) *vfs.Fault {
	return ffs.Inject(vfs.Fault{Op: step.op, After: step.after, Times: times, Err: vfs.ENOSPC,
		Match: func(n string) bool { return strings.HasSuffix(n, step.suffix) }})
}

// TestManifestLogRecoversAfterFsyncFailure fails each durable step of a
// commit once with a full disk. The failed Commit keeps its records
// pending; the next Commit cuts the chunk back to its committed length,
// writes them again and succeeds, without a reopen, and a reopen reads
// every record exactly once.
func TestManifestLogRecoversAfterFsyncFailure(t *testing.T) {
	recs := sampleRecords()
	for _, step := range commitSteps {
		t.Run(step.name, func(t *testing.T) {
			dir := t.TempDir()
			ffs := vfs.NewFaultFS(nil)
			l := openForStep(t, ffs, dir, step)
			ft := injectStep(ffs, step, 1)
			if _, err := l.Append(recs[3]); err != nil {
				t.Fatal(err)
			}
			if err := l.Commit(); !errors.Is(err, vfs.ENOSPC) {
				t.Fatalf("commit with the step failing: %v, want ENOSPC", err)
			}
			if ft.Fired() != 1 {
				t.Fatal("the commit never reached the step")
			}
			if err := l.Commit(); err != nil {
				t.Fatalf("commit once the disk has room: %v", err)
			}
			if got := l.Index(); !got.Equal(fold(recs[:4])) {
				t.Fatalf("index after the retry holds %d records, want 4", got.Records)
			}
			appendCommit(t, l, recs[4])
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, dir); !reflect.DeepEqual(got, recs[:5]) {
				t.Fatalf("%d records on disk, want the 5 committed ones once each", len(got))
			}
			l = openLog(t, vfs.Default, dir, Options{})
			defer l.Close()
			if got := l.Index(); !got.Equal(fold(recs[:5])) {
				t.Fatalf("index after reopen holds %d records, want 5", got.Records)
			}
		})
	}
}

// TestManifestLogKeepsRefusingWhileTheDiskIsFull: every retry while the
// fault lasts fails with the cause and changes nothing committed; once
// the disk has room the pending records commit once.
func TestManifestLogKeepsRefusingWhileTheDiskIsFull(t *testing.T) {
	recs := sampleRecords()
	dir := t.TempDir()
	ffs := vfs.NewFaultFS(nil)
	l := openForStep(t, ffs, dir, commitSteps[1])
	injectStep(ffs, commitSteps[1], 0)
	if _, err := l.Append(recs[3]); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := l.Commit(); !errors.Is(err, vfs.ENOSPC) {
			t.Fatalf("commit %d while the disk is full: %v, want ENOSPC", i, err)
		}
		if _, err := l.Append(recs[4]); !errors.Is(err, vfs.ENOSPC) {
			t.Fatalf("append %d while the disk is full: %v, want ENOSPC", i, err)
		}
		if got := l.Index(); !got.Equal(fold(recs[:3])) {
			t.Fatalf("index while failing holds %d records, want the 3 committed", got.Records)
		}
	}
	ffs.Reset()
	appendCommit(t, l, recs[4])
	l.Close()
	if got := readAll(t, dir); !reflect.DeepEqual(got, recs[:5]) {
		t.Fatalf("%d records on disk, want 5 once each", len(got))
	}
}

// TestManifestReopensAfterCrashFollowingAFailedCommit: a crash right after
// a failed commit (and after a failed retry) leaves a manifest that opens
// with the records committed before, plus at most the pending ones, each
// once; it takes new records.
func TestManifestReopensAfterCrashFollowingAFailedCommit(t *testing.T) {
	recs := sampleRecords()
	for _, step := range commitSteps {
		for _, retried := range []bool{false, true} {
			name := step.name
			if retried {
				name += "/retried"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				ffs := vfs.NewFaultFS(nil)
				l := openForStep(t, ffs, dir, step)
				times := 1
				if retried {
					times = 2
				}
				injectStep(ffs, step, times)
				if _, err := l.Append(recs[3]); err != nil {
					t.Fatal(err)
				}
				if err := l.Commit(); err == nil {
					t.Fatal("commit with the step failing succeeded")
				}
				if retried {
					l.Commit()
				}
				ffs.Crash()
				l.Close()

				l = openLog(t, vfs.Default, dir, Options{})
				got := l.Index()
				if !got.Equal(fold(recs[:3])) && !got.Equal(fold(recs[:4])) {
					t.Fatalf("index after the crash holds %d records, want 3 or 4", got.Records)
				}
				n := int(got.Records)
				appendCommit(t, l, recs[4])
				l.Close()
				want := append(recs[:n:n], recs[4])
				if got := readAll(t, dir); !reflect.DeepEqual(got, want) {
					t.Fatalf("%d records on disk, want %d", len(got), len(want))
				}
			})
		}
	}
}
