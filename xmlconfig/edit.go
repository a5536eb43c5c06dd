package xmlconfig

import (
	"fmt"
	"strings"

	"libvirt.org/go/libvirtxml"
)

// Edit is the result of editing a domain document.
type Edit struct {
	// Domain is the edited document. Outside the inserted devices (or
	// the replaced draft smartcard) it is byte for byte the input.
	Domain []byte
	// Config is the smartcard now in the domain, defaults filled in: the
	// one to derive the QEMU argv and the client command from.
	Config Config
	// Notices say what the edit did besides inserting the smartcard:
	// a draft translated, a controller the domain already had kept.
	Notices []string
}

// tailDevices are the children of <devices> that libvirt writes after all
// the others; a new smartcard goes before the first of them.
var tailDevices = map[string]bool{
	"watchdog": true, "memballoon": true, "nvram": true,
	"panic": true, "iommu": true, "vsock": true,
}

// AddSmartcard inserts c's smartcard (and its explicit controller, if any)
// into the domain XML doc, before the devices libvirt lists last
// (watchdog, memballoon...) or at the end of <devices>, indented like the
// other devices. The rest of the document is left byte for byte as it was.
//
// It refuses, with an error wrapping ErrSecondSmartcard, a domain that has a
// smartcard already (libvirt and QEMU allow one), with ErrIncompatibleDomain
// a domain whose USB is disabled or, for spicevmc, that has no SPICE
// graphics, and with ErrNotDomain a document that is not a domain.
func AddSmartcard(doc []byte, c Config) (*Edit, error) {
	n, err := c.normalized()
	if err != nil {
		return nil, err
	}
	s, err := scanDomain(doc)
	if err != nil {
		return nil, err
	}
	if sc := s.smartcards(); len(sc) > 0 {
		form := ""
		if s.isDraft(&sc[0]) {
			form = " in the early draft form (edit the domain without new smartcard settings to translate it)"
		}
		return nil, fmt.Errorf("xmlconfig: %w: <smartcard mode='%s'> at line %d%s", ErrSecondSmartcard, sc[0].attr("mode"), sc[0].line, form)
	}
	if err := s.compatible(n); err != nil {
		return nil, err
	}
	e := &Edit{Config: n}
	render := n
	if n.Controller != nil {
		if ctl := s.ccidController(); ctl != nil {
			render.Controller = nil
			e.Notices = append(e.Notices, fmt.Sprintf(
				"kept the domain's own <controller type='ccid' index='%s'> (line %d) instead of adding another", ctl.attr("index"), ctl.line))
		}
	}
	edits, err := s.insertDevices(render)
	if err != nil {
		return nil, err
	}
	e.Domain = apply(doc, edits)
	if err := checkEdited(e.Domain, n); err != nil {
		return nil, err
	}
	return e, nil
}

// smartcards returns the <smartcard> children of <devices>.
func (s *domainScan) smartcards() []element {
	var out []element
	for _, k := range s.devKids {
		if k.name == "smartcard" {
			out = append(out, k)
		}
	}
	return out
}

// ccidController returns the domain's <controller type='ccid'>, or nil.
func (s *domainScan) ccidController() *element {
	for i, k := range s.devKids {
		if k.name == "controller" && k.attr("type") == "ccid" {
			return &s.devKids[i]
		}
	}
	return nil
}

// compatible checks that the domain can take n's smartcard.
func (s *domainScan) compatible(n Config) error {
	for _, k := range s.devKids {
		if k.name == "controller" && k.attr("type") == "usb" && k.attr("model") == "none" {
			return fmt.Errorf("xmlconfig: %w: its USB is disabled (<controller type='usb' model='none'> at line %d) and the smartcard reader, QEMU's usb-ccid, is a USB device", ErrIncompatibleDomain, k.line)
		}
	}
	if n.Mode == Passthrough && n.Transport == SpiceVMC {
		for _, k := range s.devKids {
			if k.name == "graphics" && k.attr("type") == "spice" {
				return nil
			}
		}
		return fmt.Errorf("xmlconfig: %w: transport spicevmc needs SPICE graphics (<graphics type='spice'>), and the domain has none", ErrIncompatibleDomain)
	}
	return nil
}

// insertDevices returns the splices that add n's devices to the document.
func (s *domainScan) insertDevices(n Config) ([]splice, error) {
	if s.domain.selfClosing {
		return nil, fmt.Errorf("xmlconfig: %w: the <domain> element is empty", ErrNotDomain)
	}
	if s.devices == nil {
		return s.insertDevicesElement(n)
	}
	dev := s.devices
	var kidStarts []int
	for _, k := range s.devKids {
		kidStarts = append(kidStarts, k.start)
	}
	indent, unit, lined := s.childIndent(dev, kidStarts)

	if dev.selfClosing {
		tag := strings.TrimSuffix(string(s.doc[dev.start:dev.startTagEnd]), "/>")
		if !lined {
			block, err := s.render(n, "", "")
			if err != nil {
				return nil, err
			}
			return []splice{{at: dev.start, del: dev.end - dev.start, text: tag + ">" + block + "</devices>"}}, nil
		}
		own, _ := s.lineIndent(dev.start)
		block, err := s.render(n, own+unit, unit)
		if err != nil {
			return nil, err
		}
		return []splice{{at: dev.start, del: dev.end - dev.start, text: tag + ">" + s.nl + block + own + "</devices>"}}, nil
	}

	anchor := dev.endTagStart
	for _, k := range s.devKids {
		if tailDevices[k.name] {
			anchor = k.start
			break
		}
	}
	var edits []splice
	// An explicit controller goes after the domain's last controller,
	// when there is one.
	if n.Controller != nil {
		var last *element
		for i, k := range s.devKids {
			if k.name == "controller" {
				last = &s.devKids[i]
			}
		}
		if last != nil {
			block, err := s.renderAt(n, controllerOnly, last.end, indent, unit, lined, true)
			if err != nil {
				return nil, err
			}
			edits = append(edits, splice{at: last.end, text: block})
			n.Controller = nil
		}
	}
	block, err := s.renderAt(n, allDevices, anchor, indent, unit, lined, false)
	if err != nil {
		return nil, err
	}
	at := anchor
	if _, own := s.lineIndent(anchor); own && lined {
		at = s.lineStart(anchor)
	}
	return append(edits, splice{at: at, text: block}), nil
}

// renderAt renders n's devices for insertion at pos: before pos's line when
// the document is lined and pos starts its line (after is false), after
// the element ending at pos (after is true), or inline otherwise.
func (s *domainScan) renderAt(n Config, what part, pos int, indent, unit string, lined, after bool) (string, error) {
	_, own := s.lineIndent(pos)
	if after {
		own = lined && s.endsLine(pos)
	}
	if !lined || !own {
		return s.renderPart(n, what, "", "")
	}
	block, err := s.renderPart(n, what, indent, unit)
	if err != nil {
		return "", err
	}
	if after {
		return s.nl + strings.TrimSuffix(block, s.nl), nil
	}
	return block, nil
}

// endsLine reports whether only whitespace follows pos on its line.
func (s *domainScan) endsLine(pos int) bool {
	for i := pos; i < len(s.doc); i++ {
		switch s.doc[i] {
		case ' ', '\t', '\r':
		case '\n':
			return true
		default:
			return false
		}
	}
	return true
}

// insertDevicesElement adds a whole <devices> element to a domain that has
// none, before </domain>.
func (s *domainScan) insertDevicesElement(n Config) ([]splice, error) {
	var kidStarts []int
	for _, k := range s.domKids {
		kidStarts = append(kidStarts, k.start)
	}
	indent, unit, lined := s.childIndent(&s.domain, kidStarts)
	end := s.domain.endTagStart
	if _, own := s.lineIndent(end); !lined || !own {
		block, err := s.render(n, "", "")
		if err != nil {
			return nil, err
		}
		return []splice{{at: end, text: "<devices>" + block + "</devices>"}}, nil
	}
	block, err := s.render(n, indent+unit, unit)
	if err != nil {
		return nil, err
	}
	text := indent + "<devices>" + s.nl + block + indent + "</devices>" + s.nl
	return []splice{{at: s.lineStart(end), text: text}}, nil
}

// part selects what of a Config's devices to render.
type part int

const (
	allDevices     part = iota // the explicit controller, if any, then the smartcard
	controllerOnly             // the explicit controller
)

// render renders all of n's devices; see renderPart.
func (s *domainScan) render(n Config, prefix, unit string) (string, error) {
	return s.renderPart(n, allDevices, prefix, unit)
}

// renderPart returns n's devices, each line starting with prefix and ending
// in the document's line ending, nested levels indented by unit; with an
// empty unit, on one line with no line ending (for documents without line
// structure).
func (s *domainScan) renderPart(n Config, what part, prefix, unit string) (string, error) {
	var b strings.Builder
	nl := s.nl
	if unit == "" {
		prefix, nl = "", ""
	}
	if what == controllerOnly {
		ctl, err := n.ControllerDevice()
		if err != nil {
			return "", err
		}
		text, err := marshalDevice(ctl, prefix, unit, nl)
		if err != nil {
			return "", err
		}
		return text + nl, nil
	}
	if err := n.writeDevices(&b, prefix, unit, nl); err != nil {
		return "", err
	}
	return b.String(), nil
}

// checkEdited parses the edited document with libvirtxml and checks that it
// holds exactly the smartcard n describes: a guard against a splice that
// went wrong.
func checkEdited(doc []byte, n Config) error {
	var d libvirtxml.Domain
	if err := d.Unmarshal(string(doc)); err != nil {
		return fmt.Errorf("xmlconfig: internal error: the edited domain does not parse: %w", err)
	}
	if d.Devices == nil || len(d.Devices.Smartcards) != 1 {
		return fmt.Errorf("xmlconfig: internal error: the edited domain does not hold one smartcard")
	}
	got, err := FromSmartcard(&d.Devices.Smartcards[0])
	if err != nil {
		return fmt.Errorf("xmlconfig: internal error: the edited domain's smartcard: %w", err)
	}
	want, err := n.Smartcard()
	if err != nil {
		return err
	}
	wantC, err := FromSmartcard(want)
	if err != nil {
		return err
	}
	g, _ := got.Smartcard()
	w, _ := wantC.Smartcard()
	gs, _ := g.Marshal()
	ws, _ := w.Marshal()
	if gs != ws {
		return fmt.Errorf("xmlconfig: internal error: the edited domain holds\n%s\nnot\n%s", gs, ws)
	}
	return nil
}
