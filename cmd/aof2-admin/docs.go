package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bop-aof/aof/internal/vfs"
)

// The CLI reference (docs/cli-reference.md) is generated from the command
// tree that rootCommand builds, so it cannot drift from what the binary
// accepts: `make docs` rewrites it and TestCLIReferenceIsCurrent fails when
// the committed file differs from a fresh rendering.

// cliReferenceHeader opens the generated file; it says where the text comes
// from so nobody edits it by hand.
const cliReferenceHeader = `<!-- Code generated from the aof2-admin command tree (cmd/aof2-admin/docs.go). DO NOT EDIT. Run "make docs". -->

# aof2-admin command reference

Every command, its description, examples and flags, exactly as the binary
defines them. ` + "`aof2-admin <command> --help`" + ` prints the same text.
Operating procedures are in [the user manual](user-manual.md) and
[the runbook](runbook.md).

`

// cliReference renders the reference of a freshly built command tree.
func cliReference() ([]byte, error) {
	a := &app{stdout: io.Discard, stderr: io.Discard}
	var buf bytes.Buffer
	if err := writeCLIReference(&buf, a.rootCommand()); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeCLIReference writes the markdown reference of root and every
// available (non-hidden) command under it, depth first in cobra's sorted
// order: usage line, long description, examples, the command's own flags
// with their defaults, and, once under the root, the global flags.
// Deprecated flags are listed with their deprecation note, since old
// scripts still pass them. The help command is left out; completion is
// kept because it is a real command of the binary.
func writeCLIReference(w io.Writer, root *cobra.Command) error {
	root.InitDefaultCompletionCmd()
	var b strings.Builder
	b.WriteString(cliReferenceHeader)

	var all []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		all = append(all, c)
		for _, sub := range c.Commands() {
			if !sub.IsAvailableCommand() || sub.Name() == "help" {
				continue
			}
			walk(sub)
		}
	}
	walk(root)

	b.WriteString("## Commands\n\n")
	for _, c := range all[1:] {
		fmt.Fprintf(&b, "- [`%s`](#%s): %s\n", c.CommandPath(), anchor(c.CommandPath()), c.Short)
	}
	b.WriteString("\n")

	for _, c := range all {
		writeCommand(&b, c)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeCommand(b *strings.Builder, c *cobra.Command) {
	c.InitDefaultHelpFlag()
	fmt.Fprintf(b, "## %s\n\n", c.CommandPath())
	fmt.Fprintf(b, "%s\n\n", c.Short)
	usage := c.UseLine()
	if c.HasAvailableSubCommands() && !c.Runnable() {
		usage = c.CommandPath() + " [command]"
	}
	fmt.Fprintf(b, "```\n%s\n```\n\n", usage)
	if long := strings.TrimSpace(c.Long); long != "" {
		// Long texts are wrapped plain text, with indented lines meant as
		// literal examples; a fenced block keeps both as the terminal shows.
		fmt.Fprintf(b, "```text\n%s\n```\n\n", long)
	}
	if c.Example != "" {
		fmt.Fprintf(b, "Examples:\n\n```sh\n%s\n```\n\n", dedentExample(c.Example))
	}
	if subs := availableSubcommands(c); len(subs) > 0 {
		b.WriteString("Subcommands:\n\n")
		for _, s := range subs {
			fmt.Fprintf(b, "- [`%s`](#%s): %s\n", s.CommandPath(), anchor(s.CommandPath()), s.Short)
		}
		b.WriteString("\n")
	}
	if !c.HasParent() {
		b.WriteString("Global flags (accepted by every command):\n\n")
		writeFlags(b, c.PersistentFlags())
		return
	}
	local := c.LocalNonPersistentFlags()
	writeLocal := false
	local.VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" {
			writeLocal = true
		}
	})
	if writeLocal {
		b.WriteString("Flags:\n\n")
		writeFlags(b, local)
	}
	fmt.Fprintf(b, "Also accepts the [global flags](#%s).\n\n", anchor(c.Root().CommandPath()))
}

func availableSubcommands(c *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	for _, s := range c.Commands() {
		if s.IsAvailableCommand() && s.Name() != "help" {
			out = append(out, s)
		}
	}
	return out
}

// writeFlags writes one table row per flag, sorted by name, without -h.
func writeFlags(b *strings.Builder, fs *pflag.FlagSet) {
	b.WriteString("| flag | default | description |\n| --- | --- | --- |\n")
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" {
			return
		}
		typ, usage := pflag.UnquoteUsage(f)
		name := "--" + f.Name
		if f.Shorthand != "" {
			name = "-" + f.Shorthand + ", " + name
		}
		if typ != "" {
			name += " " + typ
		}
		if f.Deprecated != "" {
			usage += " (deprecated: " + f.Deprecated + ")"
		}
		fmt.Fprintf(b, "| `%s` | %s | %s |\n", name, flagDefault(f), escapeCell(usage))
	})
	b.WriteString("\n")
}

// flagDefault shows the default as the flag would be written; an empty
// string default is shown as none.
func flagDefault(f *pflag.Flag) string {
	switch {
	case f.DefValue == "" || f.DefValue == "[]":
		return "none"
	case f.Value.Type() == "string":
		return "`" + fmt.Sprintf("%q", f.DefValue) + "`"
	default:
		return "`" + f.DefValue + "`"
	}
}

// escapeCell makes s safe inside a markdown table cell: pipes would split
// the cell and <placeholders> would be taken for HTML tags.
func escapeCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;").Replace(s)
}

// anchor is the GitHub heading anchor of a "## <path>" heading.
func anchor(path string) string {
	return strings.ReplaceAll(strings.ToLower(path), " ", "-")
}

// dedentExample removes the two-space indentation cobra examples use, so
// the fenced block holds commands as an operator types them.
func dedentExample(ex string) string {
	lines := strings.Split(strings.TrimRight(ex, "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, "  ")
	}
	return strings.Join(lines, "\n")
}

// genDocsCommand is the hidden `aof2-admin gen-docs` command that writes
// the reference: to --out atomically, or to stdout without --out. It is
// hidden because it documents the binary rather than operating a gateway.
func (a *app) genDocsCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:     "gen-docs",
		Short:   "Write the markdown command reference (docs/cli-reference.md)",
		Example: "  aof2-admin gen-docs --out docs/cli-reference.md",
		Hidden:  true,
		Args:    cobra.NoArgs,
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			if out != "" {
				if err := writeCLIReferenceFile(out); err != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "wrote %s\n", out)
				return nil
			}
			doc, err := cliReference()
			if err != nil {
				return err
			}
			_, err = a.stdout.Write(doc)
			return err
		}),
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write (default: stdout)")
	return cmd
}

// writeCLIReferenceFile replaces path with the reference atomically.
func writeCLIReferenceFile(path string) error {
	doc, err := cliReference()
	if err != nil {
		return err
	}
	if err := vfs.WriteFileAtomic(vfs.Default, path, doc, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
