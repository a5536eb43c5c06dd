package xmlconfig

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"sort"
)

// Editing a domain without touching the rest of it.
//
// Unmarshalling a domain into libvirtxml's types and marshalling it back
// would reorder attributes, drop comments, elements libvirtxml does not
// model and the document's own formatting. So an edit scans the document
// with encoding/xml only to learn the byte offsets of the elements that
// matter, and splices the new text in at those offsets: every byte outside
// the inserted (or, for a draft smartcard, replaced) text stays as it was.

// element is an element of the scanned document.
type element struct {
	name        string
	attrs       []xml.Attr
	start       int  // offset of '<' of the start tag
	startTagEnd int  // offset just after the start tag's '>'
	endTagStart int  // offset of the end tag's "</"; startTagEnd when self-closing
	end         int  // offset just after the element
	selfClosing bool // written <name .../>
	line        int  // 1-based line of the start tag
	children    []string
}

func (e *element) attr(name string) string {
	for _, a := range e.attrs {
		if a.Name.Space == "" && a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// domainScan is what an edit needs to know about a domain document.
type domainScan struct {
	doc     []byte
	nl      string    // the document's line ending
	domain  element   // the root
	domKids []element // the root's children
	devices *element  // nil when the domain has no <devices>
	devKids []element
}

// scanDomain checks that doc is well-formed XML with a <domain> root and
// records the root, <devices> and the direct children of <devices>.
func scanDomain(doc []byte) (*domainScan, error) {
	s := &domainScan{doc: doc, nl: "\n"}
	if bytes.Contains(doc, []byte("\r\n")) {
		s.nl = "\r\n"
	}
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = true
	var stack []*element
	var sawRoot bool
	line, counted := 1, 0 // line is the line number at offset counted
	for {
		before := int(d.InputOffset())
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("xmlconfig: %w: %v", ErrNotDomain, err)
		}
		after := int(d.InputOffset())
		switch t := tok.(type) {
		case xml.StartElement:
			depth := len(stack) + 1
			if depth == 1 {
				if sawRoot {
					return nil, fmt.Errorf("xmlconfig: %w: more than one root element", ErrNotDomain)
				}
				sawRoot = true
				if t.Name.Space != "" || t.Name.Local != "domain" {
					return nil, fmt.Errorf("xmlconfig: %w: the root element is <%s>, not <domain>", ErrNotDomain, t.Name.Local)
				}
			}
			line += bytes.Count(doc[counted:before], []byte("\n"))
			counted = before
			el := &element{
				name:        t.Name.Local,
				attrs:       append([]xml.Attr(nil), t.Attr...),
				start:       before,
				startTagEnd: after,
				line:        line,
			}
			if t.Name.Space != "" {
				// Namespaced elements (<qemu:commandline>) are
				// nobody's devices; record them under a name
				// that cannot match.
				el.name = t.Name.Space + " " + t.Name.Local
			}
			if len(stack) > 0 {
				parent := stack[len(stack)-1]
				parent.children = append(parent.children, el.name)
			}
			stack = append(stack, el)
		case xml.EndElement:
			el := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			el.endTagStart = before
			el.end = after
			el.selfClosing = before == el.startTagEnd && bytes.HasSuffix(doc[el.start:el.startTagEnd], []byte("/>"))
			switch len(stack) {
			case 0:
				s.domain = *el
			case 1:
				s.domKids = append(s.domKids, *el)
				if el.name == "devices" && s.devices == nil {
					dev := *el
					s.devices = &dev
				}
			case 2:
				if stack[1].name == "devices" && s.devices == nil {
					s.devKids = append(s.devKids, *el)
				}
			}
		}
	}
	if !sawRoot {
		return nil, fmt.Errorf("xmlconfig: %w: no root element", ErrNotDomain)
	}
	return s, nil
}

// lineIndent returns the whitespace between the start of pos's line and
// pos, and whether only whitespace precedes pos on its line.
func (s *domainScan) lineIndent(pos int) (string, bool) {
	i := pos
	for i > 0 && (s.doc[i-1] == ' ' || s.doc[i-1] == '\t') {
		i--
	}
	if i > 0 && s.doc[i-1] != '\n' {
		return "", false
	}
	return string(s.doc[i:pos]), true
}

// lineStart returns the offset of the start of pos's line.
func (s *domainScan) lineStart(pos int) int {
	return bytes.LastIndexByte(s.doc[:pos], '\n') + 1
}

// childIndent returns the indentation of the children of el, whose child
// elements start at kidStarts, and the indentation unit: that of the first
// child on a line of its own, or el's own plus two spaces. ok is false for a
// document without line structure there (everything on one line).
func (s *domainScan) childIndent(el *element, kidStarts []int) (indent, unit string, ok bool) {
	own, ownLine := s.lineIndent(el.start)
	for _, k := range kidStarts {
		if ind, on := s.lineIndent(k); on {
			unit = "  "
			if len(ind) > len(own) && ind[:len(own)] == own {
				unit = ind[len(own):]
			}
			return ind, unit, true
		}
	}
	if !ownLine {
		return "", "", false
	}
	return own + "  ", "  ", true
}

// splice is one edit: replace doc[at:at+del] with text.
type splice struct {
	at, del int
	text    string
}

// apply returns doc with the splices applied; they must not overlap. Splices
// at the same offset end up in the order they are listed.
func apply(doc []byte, edits []splice) []byte {
	// Apply from the end so earlier offsets stay valid; at equal offsets,
	// the last listed first, so that the first listed ends up first.
	order := make([]splice, len(edits))
	for i, e := range edits {
		order[len(edits)-1-i] = e
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].at > order[j].at })
	edits = order
	out := append([]byte(nil), doc...)
	for _, e := range edits {
		out = append(out[:e.at], append([]byte(e.text), out[e.at+e.del:]...)...)
	}
	return out
}
