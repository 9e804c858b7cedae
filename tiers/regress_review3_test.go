package tiers

import (
	"strings"
	"testing"

	"github.com/bop-aof/aof/internal/vfs"
	"github.com/bop-aof/aof/tiers/segment"
)

// R6: a transient failure creating the next segment at rollover wedges the
// stream until restart.
func TestReviewRolloverCreateFailureWedges(t *testing.T) {
	ffs := vfs.NewFaultFS(nil)
	s := openStore(t, Options{Root: t.TempDir(), FS: ffs})
	defer s.Close()
	appendN(t, s, "w", 0, 5)
	ffs.Inject(vfs.Fault{Op: vfs.OpOpen, Match: func(n string) bool {
		return strings.Contains(n, "/tier0/") && strings.Contains(n, segment.TempFileName(2))
	}, Times: 1, Err: vfs.ENOSPC})
	_, err := s.Seal(testCtx(t), "w", false)
	t.Logf("seal: %v", err)
	ffs.Reset()
	for i := 0; i < 3; i++ {
		err = s.AppendDurable(testCtx(t), "w", []Record{{Payload: payload("w", 5+i), ExtID: uint64(6 + i)}})
		t.Logf("append after fault cleared: %v", err)
	}
	if err != nil {
		t.Fatalf("CONFIRMED: stream wedged after transient create failure: %v", err)
	}
}
