package docs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// A shown command is one line of a fenced block tagged sh, console, bash or
// shell in docs/*.md or README.md that invokes aof2-admin or aof-gateway.
type shownCommand struct {
	file string
	line int
	text string   // the command as written (continuations joined)
	bin  string   // "aof2-admin" or "aof-gateway"
	args []string // arguments after the binary, up to a pipe or redirection
}

var binaries = map[string]string{
	"aof2-admin": "aof2-admin", "bin/aof2-admin": "aof2-admin", "./bin/aof2-admin": "aof2-admin",
	"aof-gateway": "aof-gateway", "bin/aof-gateway": "aof-gateway", "./bin/aof-gateway": "aof-gateway",
}

var envAssign = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`)

// shownCommands extracts the commands of one markdown file.
func shownCommands(t *testing.T, path string) []shownCommand {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []shownCommand
	inBlock, shell, console := false, false, false
	pending, start := "", 0
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") {
			if !inBlock {
				lang := strings.TrimSpace(strings.TrimPrefix(trimmed, "```"))
				inBlock = true
				shell = lang == "sh" || lang == "bash" || lang == "shell" || lang == "console"
				console = lang == "console"
			} else {
				inBlock, shell = false, false
			}
			continue
		}
		if !inBlock || !shell {
			continue
		}
		if console {
			if !strings.HasPrefix(trimmed, "$ ") && pending == "" {
				continue // output, not a command
			}
			trimmed = strings.TrimPrefix(trimmed, "$ ")
		}
		if pending == "" {
			start = n
		}
		if strings.HasSuffix(trimmed, `\`) {
			pending += strings.TrimSuffix(trimmed, `\`) + " "
			continue
		}
		text := pending + trimmed
		pending = ""
		if c, ok := parseCommand(text); ok {
			c.file, c.line = filepath.Base(path), start
			out = append(out, c)
		}
	}
	return out
}

// parseCommand splits a shell line into words (single and double quotes
// respected), drops leading VAR=value assignments and everything from the
// first pipe, list operator, redirection or comment on.
func parseCommand(text string) (shownCommand, bool) {
	words := shellWords(text)
	for len(words) > 0 && envAssign.MatchString(words[0]) {
		words = words[1:]
	}
	if len(words) == 0 {
		return shownCommand{}, false
	}
	bin, ok := binaries[words[0]]
	if !ok {
		return shownCommand{}, false
	}
	var args []string
	for _, w := range words[1:] {
		if w == "|" || w == "||" || w == "&&" || w == ";" || w == "&" || strings.HasPrefix(w, ">") ||
			strings.HasPrefix(w, "2>") || strings.HasPrefix(w, "#") {
			break
		}
		args = append(args, w)
	}
	return shownCommand{text: text, bin: bin, args: args}, true
}

func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// builtBinaries builds aof2-admin and aof-gateway once per test binary.
func builtBinaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "aof-docs-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+string(filepath.Separator), "./cmd/aof2-admin", "./cmd/aof-gateway")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = errors.New("go build: " + err.Error() + "\n" + string(out))
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func documentFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("../README.md"); err == nil {
		files = append(files, "../README.md")
	}
	return files
}

// Every aof2-admin and aof-gateway command shown in the docs exists: its
// subcommand path names a real command and each flag it passes exists and
// parses with the value shown. The binary is run with the shown arguments
// plus --help, so cobra parses every flag (an unknown flag or a bad value is
// an error) and then prints the help of the command it resolved, whose
// usage line must be the shown path (a misspelt subcommand resolves to its
// parent and fails here).
func TestShownCommandsExist(t *testing.T) {
	dir := builtBinaries(t)
	var all []shownCommand
	for _, f := range documentFiles(t) {
		all = append(all, shownCommands(t, f)...)
	}
	if len(all) < 20 {
		t.Fatalf("found only %d shown commands in the docs; the extractor is broken", len(all))
	}
	for _, c := range all {
		var path []string
		for _, a := range c.args {
			if strings.HasPrefix(a, "-") {
				break
			}
			path = append(path, a)
		}
		args := append(append([]string(nil), c.args...), "--help")
		cmd := exec.Command(filepath.Join(dir, c.bin), args...)
		cmd.Env = append(os.Environ(), "AOF2_CONFIG=/nonexistent-docs-test/config.toml")
		out, err := cmd.CombinedOutput()
		where := fmt.Sprintf("%s:%d: %s", c.file, c.line, c.text)
		if err != nil {
			t.Errorf("%s\n  %s %s: %v\n%s", where, c.bin, strings.Join(args, " "), err, out)
			continue
		}
		want := strings.TrimSpace(c.bin + " " + strings.Join(path, " "))
		if usage := usageLine(string(out)); usage != want && !strings.HasPrefix(usage, want+" ") {
			t.Errorf("%s\n  resolves to %q, not %q: no such command", where, usage, want)
		}
	}
}

// usageLine is the first line after "Usage:" in cobra help output.
func usageLine(help string) string {
	_, rest, ok := strings.Cut(help, "Usage:\n")
	if !ok {
		return ""
	}
	line, _, _ := strings.Cut(rest, "\n")
	return strings.TrimSpace(line)
}

// The extractor itself: continuation lines join, environment assignments
// and pipes are dropped, console output lines are ignored, and a misspelt
// command or flag is caught (the check can fail).
func TestShownCommandsExtractorAndCheckCanFail(t *testing.T) {
	md := "```console\n$ AOF2_X=1 aof2-admin dump \\\n  --stream demo | jq .\nTier 0 | stream demo\n```\n```text\naof2-admin nope\n```\n"
	p := filepath.Join(t.TempDir(), "x.md")
	if err := os.WriteFile(p, []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
	got := shownCommands(t, p)
	if len(got) != 1 || strings.Join(got[0].args, " ") != "dump --stream demo" || got[0].line != 2 {
		t.Fatalf("extracted %+v", got)
	}
	dir := builtBinaries(t)
	for _, args := range [][]string{{"dump", "--no-such-flag", "--help"}, {"read", "--from", "N", "--help"}} {
		if err := exec.Command(filepath.Join(dir, "aof2-admin"), args...).Run(); err == nil {
			t.Errorf("aof2-admin %v succeeded; the check would not catch it", args)
		}
	}
	out, _ := exec.Command(filepath.Join(dir, "aof2-admin"), "segments", "lst", "--help").CombinedOutput()
	if u := usageLine(string(out)); u == "aof2-admin segments lst" || strings.HasPrefix(u, "aof2-admin segments lst ") {
		t.Errorf("misspelt subcommand resolved to %q", u)
	}
}
