package fsck

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bop-aof/aof/manifest"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/segment"
)

func TestCheckFindsAFlippedByteInASegmentAndAManifestChunk(t *testing.T) {
	root := buildDemoRoot(t)
	ctx := testCtx(t)
	rep, err := Check(ctx, CheckOptions{Root: root})
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("healthy root: %+v, %v", rep.Problems, err)
	}

	flipByte(t, filepath.Join(root, "tier0", "demo", segment.FileName(1)), segment.HeaderSize+40)
	rep, err = Check(ctx, CheckOptions{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	p, ok := kinds(rep)[KindTier0Corrupt]
	if !ok || p.Stream != "demo" || p.Segment != 1 || !strings.Contains(p.String(), "segment 1") {
		t.Fatalf("flipped segment byte: problems %v, want tier0-corrupt of demo segment 1", rep.Problems)
	}

	flipByte(t, manifest.ChunkPath(filepath.Join(root, "manifest", "demo"), 0), manifest.ChunkHeaderSize+50)
	rep, err = Check(ctx, CheckOptions{Root: root, RepairManifest: true})
	if err != nil {
		t.Fatal(err)
	}
	p, ok = kinds(rep)[string(manifest.ProblemIntegrity)]
	if !ok || p.Chunk == nil || *p.Chunk != 0 || p.Repaired {
		t.Fatalf("flipped chunk byte: problems %v, want an unrepaired integrity problem in chunk 0", rep.Problems)
	}
	if !strings.Contains(p.String(), "stream demo | chunk 0 | integrity") {
		t.Errorf("problem reads %q", p.String())
	}
}

func TestRepairTrimsATornManifestTail(t *testing.T) {
	root := buildDemoRoot(t)
	path := manifest.ChunkPath(filepath.Join(root, "manifest", "demo"), 0)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("half a record that never committed"))
	f.Close()
	ctx := testCtx(t)

	rep, err := Check(ctx, CheckOptions{Root: root})
	if err != nil || rep.Remaining() != 1 || rep.Problems[0].Kind != string(manifest.ProblemTornTail) {
		t.Fatalf("torn tail: %v, %v", rep.Problems, err)
	}
	rep, err = CheckOffline(ctx, tiers.Options{Root: root}, "", true)
	if err != nil || len(rep.Problems) != 1 || !rep.Problems[0].Repaired || rep.Remaining() != 0 {
		t.Fatalf("repair: %v, %v", rep.Problems, err)
	}
	rep, err = Check(ctx, CheckOptions{Root: root})
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("after repair: %v, %v", rep.Problems, err)
	}
}

// An offline command is refused a data root it was not given or that
// does not exist, with an error the caller can tell apart (aof2-admin
// exits 1 and 2), and it never creates the root.
func TestOfflineCommandsRefuseAMissingRoot(t *testing.T) {
	ctx := testCtx(t)
	if _, err := CheckOffline(ctx, tiers.Options{}, "", false); !errors.Is(err, ErrNoRoot) {
		t.Errorf("check without a root: %v, want ErrNoRoot", err)
	}
	missing := filepath.Join(t.TempDir(), "nosuch")
	if _, err := CheckOffline(ctx, tiers.Options{Root: missing}, "", true); !errors.Is(err, ErrRootMissing) || !strings.Contains(err.Error(), missing) {
		t.Errorf("check of a missing root: %v, want ErrRootMissing naming %s", err, missing)
	}
	if _, err := OpenOffline(ctx, tiers.Options{Root: missing}); !errors.Is(err, ErrRootMissing) {
		t.Errorf("open of a missing root: %v, want ErrRootMissing", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the missing root was created: %v", err)
	}
}
