package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/vscardkit/vscardkit/internal/harness"
)

func TestMain(m *testing.M) {
	code := m.Run()
	harness.CleanupCommands()
	os.Exit(code)
}

// generated builds the commands, runs genman on them and returns the
// output directories and the command trees.
func generated(t *testing.T) (manDir, compDir string, trees map[string]*command) {
	t.Helper()
	bin := harness.Commands(t)
	out := t.TempDir()
	manDir, compDir = filepath.Join(out, "man1"), filepath.Join(out, "completions")
	var stderr bytes.Buffer
	if err := run(context.Background(), []string{"--bin", bin, "--man", manDir, "--completion", compDir, "--date", "2026-12-07"}, &stderr); err != nil {
		t.Fatalf("genman: %v\n%s", err, stderr.String())
	}
	trees = map[string]*command{}
	for _, p := range programs {
		c, err := load(context.Background(), bin, []string{p.name})
		if err != nil {
			t.Fatal(err)
		}
		trees[p.name] = c
	}
	return manDir, compDir, trees
}

// helpFlag finds a flag at the start of a --help line ("  --card card",
// "  -h, --help"), independently of the parser under test.
var helpFlag = regexp.MustCompile(`(?m)^[ \t]+(?:-[a-zA-Z], )?(--[a-z0-9][a-z0-9-]*)`)

// rawFlags returns the flags of c's raw --help text.
func rawFlags(c *command) []string {
	var out []string
	for _, m := range helpFlag.FindAllStringSubmatch(c.help, -1) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	sort.Strings(out)
	return out
}

func TestSubcommandsAreFound(t *testing.T) {
	_, _, trees := generated(t)
	var got []string
	for _, c := range trees["vscclient-go"].all() {
		got = append(got, c.name())
	}
	// Every subcommand vscclient-go has today; serve and rearm join when
	// their usage lines do.
	for _, want := range []string{"vscclient-go", "vscclient-go readers", "vscclient-go config", "vscclient-go config tls-certs"} {
		if !slices.Contains(got, want) {
			t.Errorf("commands found = %q, want %q among them", got, want)
		}
	}
	if n := len(trees["fake-ccid-server"].all()); n != 1 {
		t.Errorf("fake-ccid-server has %d commands, want 1 (no subcommands)", n)
	}
	// The parser sees every flag a --help line starts with.
	for _, tree := range trees {
		for _, c := range tree.all() {
			var parsed []string
			for _, f := range c.doc.flags() {
				parsed = append(parsed, f.names...)
			}
			for _, f := range rawFlags(c) {
				if !slices.Contains(parsed, f) {
					t.Errorf("%s: the parser missed %s", c.name(), f)
				}
			}
		}
	}
}

// TestManPages renders each page with man -l, as a user would, and checks
// that it renders without warnings and shows every flag of every --help
// and every subcommand.
func TestManPages(t *testing.T) {
	manPath := harness.LookPath(t, "man-db", "man")
	manDir, _, trees := generated(t)
	for _, p := range programs {
		t.Run(p.name, func(t *testing.T) {
			cmd := exec.Command(manPath, "--warnings", "-l", filepath.Join(manDir, p.name+".1"))
			cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat", "LANG=C.UTF-8")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("man -l: %v\n%s", err, stderr.String())
			}
			if stderr.Len() > 0 {
				t.Errorf("man -l warned:\n%s", stderr.String())
			}
			page := stdout.String()
			for _, heading := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXAMPLES", "EXIT STATUS", "SEE ALSO"} {
				if !regexp.MustCompile(`(?m)^` + heading + `$`).MatchString(page) {
					t.Errorf("no %s section", heading)
				}
			}
			for _, c := range trees[p.name].all() {
				if len(c.path) > 1 && !regexp.MustCompile(`(?m)^   `+regexp.QuoteMeta(c.name())+`$`).MatchString(page) {
					t.Errorf("no section for %s", c.name())
				}
				for _, f := range rawFlags(c) {
					if !regexp.MustCompile(`(?m)^\s+(-[a-z], )?` + regexp.QuoteMeta(f) + `\b`).MatchString(page) {
						t.Errorf("%s: flag %s is not in the page", c.name(), f)
					}
				}
			}
		})
	}
}

// complete runs p's generated completion in bash with bash-completion, for
// the command line line (the cursor at its end), and returns COMPREPLY.
func complete(t *testing.T, compDir, line string) []string {
	t.Helper()
	bash := harness.LookPath(t, "bash", "bash")
	const lib = "/usr/share/bash-completion/bash_completion"
	harness.RequireFile(t, "bash-completion", lib)
	words := compWords(line)
	prog := words[0]
	fn := "_" + strings.NewReplacer("-", "_").Replace(prog)
	var quoted []string
	for _, w := range words {
		quoted = append(quoted, shellQuote(w))
	}
	script := strings.Join([]string{
		"source " + lib,
		"source " + shellQuote(filepath.Join(compDir, prog)),
		// compopt works only inside a completion readline started.
		"compopt() { :; }",
		"COMP_LINE=" + shellQuote(line),
		"COMP_POINT=${#COMP_LINE}",
		"COMP_WORDS=(" + strings.Join(quoted, " ") + ")",
		"COMP_CWORD=$((${#COMP_WORDS[@]} - 1))",
		"COMPREPLY=()",
		fn,
		`printf '%s\n' "${COMPREPLY[@]}"`,
	}, "\n")
	cmd := exec.Command(bash, "--norc", "--noprofile", "-c", script)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("completing %q: %v\n%s", line, err, stderr.String())
	}
	var out []string
	for _, l := range strings.Split(stdout.String(), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

// compWords splits line as readline does for bash with the default
// COMP_WORDBREAKS: blanks separate words, and each run of the other break
// characters (= and : among them) is a word of its own.
func compWords(line string) []string {
	const breaks = "\"'><=;|&(:"
	var words []string
	cur, inBreak := "", false
	flush := func() {
		if cur != "" {
			words = append(words, cur)
		}
		cur = ""
	}
	for _, r := range line {
		switch {
		case r == ' ' || r == '\t':
			flush()
			inBreak = false
		case strings.ContainsRune(breaks, r):
			if !inBreak {
				flush()
			}
			cur += string(r)
			inBreak = true
		default:
			if inBreak {
				flush()
			}
			cur += string(r)
			inBreak = false
		}
	}
	flush()
	if strings.HasSuffix(line, " ") || line == "" {
		words = append(words, "")
	}
	return words
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func TestCompletion(t *testing.T) {
	_, compDir, trees := generated(t)

	// Every flag of every --help is offered after a dash.
	for _, tree := range trees {
		for _, c := range tree.all() {
			got := complete(t, compDir, c.name()+" --")
			for _, f := range rawFlags(c) {
				if !slices.Contains(got, f) {
					t.Errorf("%s --<TAB> = %q, missing %s", c.name(), got, f)
				}
			}
		}
	}

	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "card"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pin.txt"), []byte("123456\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		line string
		want []string
	}{
		{"vscclient-go ", []string{"config", "readers", "rearm", "serve", "status"}},
		{"vscclient-go re", []string{"readers", "rearm"}},
		{"vscclient-go config ", []string{"tls-certs"}},
		// A subcommand only right after the program: here "readers" is
		// --connect's value.
		{"vscclient-go --connect readers ", nil},
		{"vscclient-go --card ", []string{"pcsc", "pcsc:", "pkcs11:", "soft", "soft:"}},
		{"vscclient-go --card=so", []string{"soft", "soft:"}},
		{"vscclient-go --card p", []string{"pcsc", "pcsc:", "pkcs11:"}},
		// After soft: the directories (readline replaces what follows the
		// colon, so the kind is trimmed from the answers).
		{"vscclient-go --card soft:" + dir + "/c", []string{dir + "/card/"}},
		{"vscclient-go --pin-file " + dir + "/p", []string{dir + "/pin.txt"}},
		{"vscclient-go --tls-ca " + dir + "/", []string{dir + "/card", dir + "/pin.txt"}},
		{"vscclient-go --log-level d", []string{"debug"}},
		{"vscclient-go config --format ", []string{"all", "argv", "client", "qemu-conf", "xml"}},
		{"vscclient-go config tls-certs " + dir + "/", []string{dir + "/card"}},
		{"fake-ccid-server --script " + dir + "/p", []string{dir + "/pin.txt"}},
		{"fake-ccid-server --log-level ", []string{"debug", "error", "info", "warn"}},
	}
	for _, c := range cases {
		if got := complete(t, compDir, c.line); !slices.Equal(got, c.want) {
			t.Errorf("%q<TAB> = %q, want %q", c.line, got, c.want)
		}
	}
}
