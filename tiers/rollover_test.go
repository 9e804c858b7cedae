package tiers

import (
	"strings"
	"testing"

	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/tiers/segment"
)

// A transient failure creating the next segment at rollover (a full disk
// for a moment) does not wedge the stream: once the disk has room the
// next append opens the segment and goes on, without a restart.
func TestRolloverCreateFailureDoesNotWedgeTheStream(t *testing.T) {
	ffs := vfs.NewFaultFS(nil)
	s := openStore(t, Options{Root: t.TempDir(), FS: ffs})
	defer s.Close()
	appendN(t, s, "w", 0, 5)
	ffs.Inject(vfs.Fault{Op: vfs.OpOpen, Match: func(n string) bool {
		return strings.Contains(n, "/tier0/") && strings.Contains(n, segment.TempFileName(2))
	}, Times: 1, Err: vfs.ENOSPC})
	s.Seal(testCtx(t), "w", false) // the next segment's create fails once
	ffs.Reset()
	var err error
	for i := 0; i < 3; i++ {
		err = s.AppendDurable(testCtx(t), "w", []Record{{Payload: payload("w", 5+i), ExtID: uint64(6 + i)}})
	}
	if err != nil {
		t.Fatalf("append once the disk has room again: %v", err)
	}
	readAll(t, s, "w", 8)
}
