package main

import (
	"regexp"
	"strings"
)

// A help text, as the commands print it for --help (cli.FlagSet, or the
// hand-written texts of `vscclient-go config`), is a sequence of
//
//   - sections: an unindented title ending in ':' ("Usage:", "Flags:",
//     "Cards (--card):", "Examples:"), then indented lines; "Usage: X" may
//     hold its one line on the title line;
//   - paragraphs: unindented lines between blank lines.
//
// A section is a list of items: a line at the section's indentation is a
// term ("--card card", "pcsc:NAME", "vscclient-go readers") and, after two
// or more spaces, the start of its description; lines indented deeper
// continue the description (cli.PrintFlags puts a tab before them). An
// Examples section is kept as lines instead.

// doc is a parsed help text.
type doc struct {
	usage  []item  // the "Usage:" section
	blocks []block // everything after it, in order
}

// block is a paragraph (title == "") or a section.
type block struct {
	title    string
	text     string    // a paragraph: its lines joined
	items    []item    // a list section
	examples []example // an Examples section
}

// isOptions reports whether b lists flags.
func (b block) isOptions() bool {
	if len(b.items) == 0 {
		return false
	}
	for _, it := range b.items {
		if !strings.HasPrefix(it.term, "-") {
			return false
		}
	}
	return true
}

// item is one entry of a list: a term and its description, whose lines
// are kept where a line starts a sub-entry ("xml: ...").
type item struct {
	term string
	desc []string
}

// example is a run of example lines: the comment lines that lead it
// ("# ..."), then the lines to type, kept as they are.
type example struct {
	comment string
	lines   []string
}

var subEntry = regexp.MustCompile(`^[a-z][a-z0-9-]*: `)

// parseHelp parses a help text.
func parseHelp(text string) doc {
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	var d doc
	var para []string
	flushPara := func() {
		if len(para) > 0 {
			d.blocks = append(d.blocks, block{text: strings.Join(para, " ")})
			para = nil
		}
	}
	for i := 0; i < len(lines); i++ {
		line := expandTabs(lines[i])
		if strings.TrimSpace(line) == "" {
			flushPara()
			continue
		}
		if indent(line) > 0 {
			// An indented line outside a section: keep it as a paragraph.
			para = append(para, strings.TrimSpace(line))
			continue
		}
		title, inline, isTitle := sectionTitle(line, lines[i+1:])
		if !isTitle {
			para = append(para, strings.TrimSpace(line))
			continue
		}
		flushPara()
		// The section's body: indented or blank lines up to the next
		// unindented one.
		j := i + 1
		for j < len(lines) && (strings.TrimSpace(lines[j]) == "" || indent(expandTabs(lines[j])) > 0) {
			j++
		}
		body := lines[i+1 : j]
		if inline != "" {
			body = append([]string{"  " + inline}, body...)
		}
		i = j - 1
		b := block{title: title}
		if strings.HasPrefix(title, "Example") {
			b.examples = parseExamples(body)
		} else {
			b.items = parseItems(body)
		}
		if title == "Usage" && d.usage == nil {
			d.usage = b.items
			continue
		}
		d.blocks = append(d.blocks, b)
	}
	flushPara()
	return d
}

// sectionTitle reports whether line (unindented) opens a section: it ends
// in ':' and the next non-blank line is indented, or it is "Usage: X".
func sectionTitle(line string, rest []string) (title, inline string, ok bool) {
	if u, found := strings.CutPrefix(line, "Usage: "); found {
		return "Usage", strings.TrimSpace(u), true
	}
	t, found := strings.CutSuffix(strings.TrimSpace(line), ":")
	if !found {
		return "", "", false
	}
	for _, next := range rest {
		if strings.TrimSpace(next) == "" {
			continue
		}
		return t, "", indent(expandTabs(next)) > 0
	}
	return "", "", false
}

func parseItems(body []string) []item {
	base := -1
	for _, l := range body {
		l = expandTabs(l)
		if strings.TrimSpace(l) != "" && (base < 0 || indent(l) < base) {
			base = indent(l)
		}
	}
	var items []item
	descIndent := -1 // the indentation of the current item's first continuation
	for _, l := range body {
		l = expandTabs(l)
		s := strings.TrimSpace(l)
		if s == "" {
			continue
		}
		if indent(l) == base || len(items) == 0 {
			term, desc := splitTerm(s)
			it := item{term: term}
			if desc != "" {
				it.desc = []string{desc}
			}
			items = append(items, it)
			descIndent = -1
			continue
		}
		it := &items[len(items)-1]
		switch {
		case len(it.desc) == 0:
			it.desc = []string{s}
			descIndent = indent(l)
		case subEntry.MatchString(s) && (descIndent < 0 || indent(l) <= descIndent):
			it.desc = append(it.desc, s)
		default:
			it.desc[len(it.desc)-1] += " " + s
		}
		if descIndent < 0 {
			descIndent = indent(l)
		}
	}
	return items
}

// splitTerm splits a list line at its first run of two or more spaces.
func splitTerm(s string) (term, desc string) {
	if i := strings.Index(s, "  "); i >= 0 {
		return s[:i], strings.TrimSpace(s[i:])
	}
	return s, ""
}

func parseExamples(body []string) []example {
	var out []example
	var cur *example
	for _, l := range body {
		l = expandTabs(l)
		s := strings.TrimSpace(l)
		if s == "" {
			cur = nil
			continue
		}
		if cur == nil {
			out = append(out, example{})
			cur = &out[len(out)-1]
		}
		if c, ok := strings.CutPrefix(s, "# "); ok && len(cur.lines) == 0 && !strings.HasPrefix(c, " ") {
			if cur.comment != "" {
				cur.comment += " "
			}
			cur.comment += c
			continue
		}
		cur.lines = append(cur.lines, l)
	}
	// Keep the lines' indentation relative to the block's.
	base := -1
	for _, e := range out {
		for _, l := range e.lines {
			if base < 0 || indent(l) < base {
				base = indent(l)
			}
		}
	}
	for i := range out {
		for j, l := range out[i].lines {
			out[i].lines[j] = l[base:]
		}
	}
	return out
}

func indent(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }

// expandTabs replaces tabs with spaces up to the next multiple of 8.
func expandTabs(s string) string {
	if !strings.Contains(s, "\t") {
		return s
	}
	var b strings.Builder
	col := 0
	for _, r := range s {
		if r == '\t' {
			n := 8 - col%8
			b.WriteString(strings.Repeat(" ", n))
			col += n
			continue
		}
		b.WriteRune(r)
		col++
	}
	return b.String()
}

// flag is a flag of a list item: its names and the name of its argument
// ("" for a boolean flag).
type flag struct {
	names []string // "--card", or "-h" and "--help"
	arg   string
}

// flags returns the flags d lists.
func (d doc) flags() []flag {
	var out []flag
	for _, b := range d.blocks {
		if !b.isOptions() {
			continue
		}
		for _, it := range b.items {
			var f flag
			for _, tok := range strings.Fields(it.term) {
				tok = strings.TrimSuffix(tok, ",")
				if strings.HasPrefix(tok, "-") {
					f.names = append(f.names, tok)
				} else if f.arg == "" {
					f.arg = tok
				}
			}
			out = append(out, f)
		}
	}
	return out
}

// long returns f's --name (or its only name).
func (f flag) long() string {
	for _, n := range f.names {
		if strings.HasPrefix(n, "--") {
			return n
		}
	}
	return f.names[0]
}

var (
	word    = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	argWord = regexp.MustCompile(`^[A-Z]+$`)
)

// subcommands returns the subcommands d's usage lines show after path (the
// program and the subcommands before): "vscclient-go readers" under
// "vscclient-go" gives readers. A usage line that goes on with a flag,
// [flags] or an ARGUMENT names none.
func (d doc) subcommands(path []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, u := range d.usage {
		f := strings.Fields(u.term)
		if len(f) <= len(path) || strings.Join(f[:len(path)], " ") != strings.Join(path, " ") {
			continue
		}
		if w := f[len(path)]; word.MatchString(w) && !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

// positional returns the ARGUMENTS (upper-case words) the usage lines of
// exactly path take, such as DIR for `config tls-certs [flags] DIR`.
func (d doc) positional(path []string) []string {
	var out []string
	for _, u := range d.usage {
		f := strings.Fields(u.term)
		if len(f) <= len(path) || strings.Join(f[:len(path)], " ") != strings.Join(path, " ") {
			continue
		}
		rest := f[len(path):]
		if len(rest) > 0 && word.MatchString(rest[0]) {
			continue // a subcommand's line
		}
		for i, w := range rest {
			if i > 0 && strings.HasPrefix(strings.TrimLeft(rest[i-1], "["), "-") {
				continue // a flag's argument: --domain FILE
			}
			if argWord.MatchString(w) {
				out = append(out, w)
			}
		}
	}
	return out
}
