package docs

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// formatSources are the package docs that define byte formats; formats.md
// copies their layouts.
var formatSources = []string{
	"../tiers/segment/doc.go",
	"../manifest/doc.go",
	"../tiers/tier1/artifact.go",
	"../ingest/doc.go",
}

// docBlocks returns the indented (preformatted) blocks of a Go file's
// package doc comment, each without its comment markers and indentation.
func docBlocks(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []string
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			blocks = append(blocks, strings.Join(cur, "\n"))
			cur = nil
		}
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "package ") {
			break
		}
		text, ok := strings.CutPrefix(line, "//")
		if !ok {
			flush()
			continue
		}
		text = strings.TrimPrefix(text, " ")
		if strings.HasPrefix(text, "\t") {
			cur = append(cur, strings.TrimPrefix(text, "\t"))
			continue
		}
		flush()
	}
	flush()
	return blocks
}

// Every byte layout of the package docs appears verbatim in formats.md or
// architecture.md, so a format change in the code that is not carried into
// the operator docs fails here.
func TestFormatsMatchPackageDocs(t *testing.T) {
	var docs strings.Builder
	for _, p := range []string{"formats.md", "architecture.md"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		docs.Write(b)
	}
	text := docs.String()
	n := 0
	for _, src := range formatSources {
		for _, block := range docBlocks(t, src) {
			n++
			if !strings.Contains(text, block) {
				first, _, _ := strings.Cut(block, "\n")
				t.Errorf("%s: the block starting %q is not in docs/formats.md; copy the new layout from the package doc", src, first)
			}
		}
	}
	if n < 10 {
		t.Fatalf("found only %d layout blocks in the package docs; the extractor is broken", n)
	}
}
