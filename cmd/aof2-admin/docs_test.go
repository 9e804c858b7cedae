package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite docs/cli-reference.md from the command tree (make docs)")

const cliReferencePath = "../../docs/cli-reference.md"

// The committed reference must be exactly what the command tree renders
// today; a new command or flag without `make docs` fails here.
func TestCLIReferenceIsCurrent(t *testing.T) {
	if *updateDocs {
		if err := writeCLIReferenceFile(cliReferencePath); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", cliReferencePath)
	}
	want, err := cliReference()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(cliReferencePath)
	if err != nil {
		t.Fatalf("read %s: %v (run `make docs`)", cliReferencePath, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("docs/cli-reference.md is stale: it differs from the aof2-admin command tree at line %d; run `make docs` and commit the result", firstDiffLine(got, want))
	}
}

func firstDiffLine(a, b []byte) int {
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range min(len(la), len(lb)) {
		if la[i] != lb[i] {
			return i + 1
		}
	}
	return min(len(la), len(lb)) + 1
}

// Every available command gets a section with its usage, and every flag of
// it (including deprecated ones and the global flags) appears with its
// default, so the reference is complete rather than a sample.
func TestCLIReferenceCoversEveryCommandAndFlag(t *testing.T) {
	doc, err := cliReference()
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	root := (&app{}).rootCommand()
	root.InitDefaultCompletionCmd()
	var visit func(c *cobra.Command)
	visit = func(c *cobra.Command) {
		section := sectionOf(t, text, c.CommandPath())
		if !strings.Contains(section, c.Short) {
			t.Errorf("%s: short description %q missing", c.CommandPath(), c.Short)
		}
		fs := c.LocalNonPersistentFlags()
		if !c.HasParent() {
			fs = c.PersistentFlags()
		}
		fs.VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" {
				return
			}
			if !strings.Contains(section, "`--"+f.Name) && !strings.Contains(section, ", --"+f.Name) {
				t.Errorf("%s: flag --%s missing", c.CommandPath(), f.Name)
			}
		})
		for _, s := range c.Commands() {
			if s.IsAvailableCommand() && s.Name() != "help" {
				visit(s)
			}
		}
	}
	visit(root)
	if strings.Contains(text, "## aof2-admin help") || strings.Contains(text, "gen-docs") {
		t.Error("the help command and hidden commands must not be documented")
	}
	// Defaults are those of the flag definitions.
	for _, want := range []string{"| `--timeout duration` | `30s` |", "| `--max-retries int` | `3` |", "| `--recent int` | `10` |"} {
		if !strings.Contains(text, want) {
			t.Errorf("reference lacks the row %q", want)
		}
	}
}

// sectionOf returns the text of the "## path" section up to the next one.
func sectionOf(t *testing.T, doc, path string) string {
	t.Helper()
	head := "\n## " + path + "\n"
	i := strings.Index(doc, head)
	if i < 0 {
		t.Fatalf("no section %q", strings.TrimSpace(head))
	}
	rest := doc[i+len(head):]
	if j := strings.Index(rest, "\n## "); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// The hidden gen-docs command writes the same bytes as the generator.
func TestGenDocsCommandWritesReference(t *testing.T) {
	out := filepath.Join(t.TempDir(), "cli.md")
	a := &app{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	cmd := a.genDocsCommand()
	cmd.SetArgs([]string{"--out", out})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := cliReference()
	if !bytes.Equal(got, want) {
		t.Fatal("gen-docs output differs from cliReference")
	}
}
