package manifest

import (
	"os"
	"testing"

	"github.com/bop-aof/aof/internal/vfs"
)

func TestCheckAndRepair(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, vfs.Default, dir, Options{ChunkCapacity: 300})
	for _, r := range sampleRecords() {
		appendCommit(t, l, r)
	}
	l.Close()
	rep, err := Check(vfs.Default, dir, "demo")
	if err != nil || !rep.OK() || rep.Records != uint64(len(sampleRecords())) || rep.Chunks < 3 {
		t.Fatalf("clean manifest: %+v, %v", rep, err)
	}

	// Damage: a torn tail on the last chunk, a temp file, a flipped byte in
	// chunk 1.
	last := ChunkPath(dir, uint64(rep.Chunks-1))
	f, _ := os.OpenFile(last, os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{1, 2, 3})
	f.Close()
	os.WriteFile(ChunkPath(dir, 99)+tmpExt, []byte("x"), 0o644)
	b, _ := os.ReadFile(ChunkPath(dir, 1))
	b[ChunkHeaderSize+RecordHeaderSize] ^= 1
	os.WriteFile(ChunkPath(dir, 1), b, 0o644)

	rep, err = Check(vfs.Default, dir, "demo")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[ProblemKind]Problem{}
	for _, p := range rep.Problems {
		kinds[p.Kind] = p
	}
	if len(rep.Problems) != 3 || rep.Repairable() {
		t.Fatalf("problems: %v", rep.Problems)
	}
	if p := kinds[ProblemTornTail]; p.Chunk != uint64(rep.Chunks-1) || p.Offset <= ChunkHeaderSize {
		t.Errorf("torn tail reported as %v", p)
	}
	if p := kinds[ProblemIntegrity]; p.Chunk != 1 || p.Offset != ChunkHeaderSize {
		t.Errorf("integrity problem reported as %v", p)
	}
	if _, ok := kinds[ProblemTempFile]; !ok {
		t.Error("temp file not reported")
	}

	rep, err = Repair(vfs.Default, dir, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 || rep.Problems[0].Kind != ProblemIntegrity {
		t.Fatalf("after repair: %v; only the integrity problem must remain", rep.Problems)
	}
}
