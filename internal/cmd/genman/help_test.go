package main

import (
	"reflect"
	"testing"
)

const sampleHelp = `Usage:
  tool [flags] HOST PORT
  tool serve --config FILE     serve many
  tool sub [flags] DIR         do a thing
                               to DIR

tool does things. It
goes on.

Kinds (--kind):
  a                the first
  b:NAME           the one named NAME,
                   or its index

Examples:
  # The simplest
  tool 127.0.0.1 2001

  # Two lines
  tool --kind a \
      --x 1
  #   not a comment: part of the example

The options:
  --mode MODE      one of:
                   alpha: the first;
                   beta: the second,
                     which goes on
  -h, --help       this help

Flags:
  --kind kind
    	the kind (default "a")
  --verbose
    	say more
`

func TestParseHelp(t *testing.T) {
	d := parseHelp(sampleHelp)
	wantUsage := []item{
		{term: "tool [flags] HOST PORT"},
		{term: "tool serve --config FILE", desc: []string{"serve many"}},
		{term: "tool sub [flags] DIR", desc: []string{"do a thing to DIR"}},
	}
	if !reflect.DeepEqual(d.usage, wantUsage) {
		t.Errorf("usage = %#v\nwant %#v", d.usage, wantUsage)
	}
	if len(d.blocks) != 5 {
		t.Fatalf("%d blocks, want 5: %#v", len(d.blocks), d.blocks)
	}
	if got := d.blocks[0].text; got != "tool does things. It goes on." {
		t.Errorf("paragraph = %q", got)
	}
	kinds := d.blocks[1]
	if kinds.title != "Kinds (--kind)" || kinds.isOptions() || len(kinds.items) != 2 ||
		kinds.items[1].term != "b:NAME" || kinds.items[1].desc[0] != "the one named NAME, or its index" {
		t.Errorf("kinds = %#v", kinds)
	}
	ex := d.blocks[2].examples
	wantEx := []example{
		{comment: "The simplest", lines: []string{"tool 127.0.0.1 2001"}},
		{comment: "Two lines", lines: []string{"tool --kind a \\", "    --x 1", "#   not a comment: part of the example"}},
	}
	if !reflect.DeepEqual(ex, wantEx) {
		t.Errorf("examples = %#v\nwant %#v", ex, wantEx)
	}
	mode := d.blocks[3].items[0]
	wantMode := item{term: "--mode MODE", desc: []string{"one of:", "alpha: the first;", "beta: the second, which goes on"}}
	if !reflect.DeepEqual(mode, wantMode) || !d.blocks[3].isOptions() {
		t.Errorf("--mode = %#v\nwant %#v", mode, wantMode)
	}
	var names []string
	for _, f := range d.flags() {
		names = append(names, f.long()+"="+f.arg)
	}
	wantNames := []string{"--mode=MODE", "--help=", "--kind=kind", "--verbose="}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("flags = %q, want %q", names, wantNames)
	}
	if got := d.subcommands([]string{"tool"}); !reflect.DeepEqual(got, []string{"serve", "sub"}) {
		t.Errorf("subcommands = %q, want serve and sub", got)
	}
	if got := d.positional([]string{"tool", "sub"}); !reflect.DeepEqual(got, []string{"DIR"}) {
		t.Errorf("positional(sub) = %q, want DIR", got)
	}
	if got := d.positional([]string{"tool", "serve"}); got != nil {
		t.Errorf("positional(serve) = %q, want none (FILE is --config's)", got)
	}
}

func TestParseHelpInlineUsage(t *testing.T) {
	d := parseHelp("Usage: tool list [--json]\n\nLists.\n\nFlags:\n  --json\n    \tJSON\n")
	if len(d.usage) != 1 || d.usage[0].term != "tool list [--json]" {
		t.Errorf("usage = %#v", d.usage)
	}
	if f := d.flags(); len(f) != 1 || f[0].long() != "--json" {
		t.Errorf("flags = %#v", f)
	}
}

func TestEsc(t *testing.T) {
	for in, want := range map[string]string{
		"--card":        `\-\-card`,
		`a\b`:           `a\eb`,
		".hidden start": `\&.hidden start`,
		"'quoted":       `\&'quoted`,
	} {
		if got := esc(in); got != want {
			t.Errorf("esc(%q) = %q, want %q", in, got, want)
		}
	}
}
