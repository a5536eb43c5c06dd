package xmlconfig

import (
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"

	"libvirt.org/go/libvirtxml"
)

// The early draft of libvirt's smartcard XML.
//
// Before libvirt settled the schema, a draft put a passthrough smartcard's
// chardev in a nested <serial> element and named the device:
//
//	<smartcard mode='passthrough' name='ccid'>
//	  <serial type='tcp'>
//	    <source host='127.0.0.1' port='2001'/>
//	    <protocol type='tcp'/>
//	  </serial>
//	</smartcard>
//
//	<smartcard mode='passthrough' name='ccid'>
//	  <serial type='spicevmc'/>
//	</smartcard>
//
// Its examples sometimes leave out mode='passthrough', which the <serial>
// child implies; the translation adds it.
//
// libvirt's schema rejects both. The current form puts the chardev type on
// <smartcard> itself, names the TCP port service=, says that QEMU listens
// with mode='bind' (a tcp source without a mode connects out), and takes
// protocol 'raw' (there is no protocol 'tcp'). The name is gone: the device
// is always the domain's only smartcard.
//
// These struct types model only that draft, which libvirtxml does not.

type draftSmartcard struct {
	Mode   string       `xml:"mode,attr"`
	Name   string       `xml:"name,attr"`
	Serial *draftSerial `xml:"serial"`
}

type draftSerial struct {
	Type     string       `xml:"type,attr"`
	Source   *draftSource `xml:"source"`
	Protocol *struct {
		Type string `xml:"type,attr"`
	} `xml:"protocol"`
}

type draftSource struct {
	XMLName xml.Name `xml:"source"`
	Mode    string   `xml:"mode,attr"`
	Host    string   `xml:"host,attr"`
	Port    string   `xml:"port,attr"`
	Service string   `xml:"service,attr"`
	Path    string   `xml:"path,attr"`
}

// isDraft reports whether the smartcard element el is in the draft form: it
// has a name attribute or a <serial> child.
func (s *domainScan) isDraft(el *element) bool {
	if el.attr("name") != "" {
		return true
	}
	for _, c := range el.children {
		if c == "serial" {
			return true
		}
	}
	return false
}

// UpgradeDraft translates the domain's smartcard from the early draft form
// to libvirt's schema, replacing that element in doc and leaving the rest of
// the document byte for byte as it was. Edit.Notices says what changed. It
// returns an error wrapping ErrNoDraft when the domain has no draft
// smartcard, and ErrSecondSmartcard when it has more than one smartcard.
func UpgradeDraft(doc []byte) (*Edit, error) {
	s, err := scanDomain(doc)
	if err != nil {
		return nil, err
	}
	cards := s.smartcards()
	var draft *element
	for i := range cards {
		if s.isDraft(&cards[i]) {
			draft = &cards[i]
			break
		}
	}
	if draft == nil {
		return nil, fmt.Errorf("xmlconfig: %w", ErrNoDraft)
	}
	if len(cards) > 1 {
		return nil, fmt.Errorf("xmlconfig: %w: %d <smartcard> elements (lines %d and %d)", ErrSecondSmartcard, len(cards), cards[0].line, cards[1].line)
	}
	c, notes, err := translateDraft(s.doc[draft.start:draft.end])
	if err != nil {
		return nil, fmt.Errorf("xmlconfig: the draft smartcard at line %d: %w", draft.line, err)
	}
	n, err := c.normalized()
	if err != nil {
		return nil, fmt.Errorf("xmlconfig: the draft smartcard at line %d: %w", draft.line, err)
	}
	var text string
	if indent, own := s.lineIndent(draft.start); own {
		unit := "  "
		if s.devices != nil {
			if devIndent, ok := s.lineIndent(s.devices.start); ok && strings.HasPrefix(indent, devIndent) && len(indent) > len(devIndent) {
				unit = indent[len(devIndent):]
			}
		}
		sc, err := n.Smartcard()
		if err != nil {
			return nil, err
		}
		text, err = marshalDevice(sc, indent, unit, s.nl)
		if err != nil {
			return nil, err
		}
		text = strings.TrimPrefix(text, indent)
	} else {
		sc, err := n.Smartcard()
		if err != nil {
			return nil, err
		}
		if text, err = marshalDevice(sc, "", "", ""); err != nil {
			return nil, err
		}
	}
	e := &Edit{
		Domain: apply(doc, []splice{{at: draft.start, del: draft.end - draft.start, text: text}}),
		Config: n,
	}
	e.Notices = append(e.Notices, fmt.Sprintf(
		"translated the smartcard at line %d from the early draft form to libvirt's schema: %s", draft.line, strings.Join(notes, "; ")))
	if err := s.compatible(n); err != nil {
		e.Notices = append(e.Notices, "libvirt will still refuse the domain: "+err.Error())
	}
	if err := checkEdited(e.Domain, n); err != nil {
		return nil, err
	}
	return e, nil
}

// translateDraft returns the Config of a draft <smartcard> element and
// notes saying what the translation changed.
func translateDraft(elem []byte) (Config, []string, error) {
	var d draftSmartcard
	if err := xml.Unmarshal(elem, &d); err != nil {
		return Config{}, nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	var notes []string
	if d.Name != "" {
		notes = append(notes, fmt.Sprintf("dropped name='%s' (a domain has one smartcard; libvirt names it smartcard0)", d.Name))
	}
	if d.Serial == nil {
		// A draft that only added name= to an otherwise current
		// smartcard.
		var sc libvirtxml.DomainSmartcard
		if err := sc.Unmarshal(string(elem)); err != nil {
			return Config{}, nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
		}
		c, err := FromSmartcard(&sc)
		return c, notes, err
	}
	switch d.Mode {
	case string(Passthrough):
	case "":
		// The draft's own examples left the mode out: only a
		// passthrough smartcard has a chardev.
		notes = append(notes, "added mode='passthrough' (the draft's <serial> chardev implies it)")
	default:
		return Config{}, nil, invalid("a <serial> chardev in mode %q: only passthrough smartcards have a chardev", d.Mode)
	}
	c := Config{Mode: Passthrough}
	ser := d.Serial
	notes = append(notes, fmt.Sprintf("moved type='%s' from the nested <serial> to <smartcard>", ser.Type))
	switch ser.Type {
	case "tcp":
		c.Transport = TCP
		src := ser.Source
		if src == nil {
			return c, nil, invalid("a tcp chardev without <source>")
		}
		if err := draftBind(src.Mode, &notes); err != nil {
			return c, nil, err
		}
		c.Host = src.Host
		if c.Host == "" {
			c.Host = DefaultHost
			notes = append(notes, fmt.Sprintf("the draft named no host: QEMU listens on %s", DefaultHost))
		}
		port := src.Service
		if src.Port != "" {
			if src.Service != "" && src.Service != src.Port {
				return c, nil, invalid("port='%s' and service='%s' disagree", src.Port, src.Service)
			}
			port = src.Port
			notes = append(notes, fmt.Sprintf("port='%s' became service='%s'", src.Port, src.Port))
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return c, nil, invalid("tcp port %q is not a number", port)
		}
		c.Port = p
		proto := ""
		if ser.Protocol != nil {
			proto = ser.Protocol.Type
		}
		switch proto {
		case "tcp":
			notes = append(notes, "protocol type='tcp' became 'raw' (a plain byte stream; libvirt has no protocol 'tcp')")
		case "", "raw":
			notes = append(notes, "protocol type='raw' is explicit")
		default:
			return c, nil, invalid("protocol %q: the VSCard stream needs a raw byte stream", proto)
		}
	case "unix":
		c.Transport = Unix
		src := ser.Source
		if src == nil {
			return c, nil, invalid("a unix chardev without <source>")
		}
		if err := draftBind(src.Mode, &notes); err != nil {
			return c, nil, err
		}
		c.Path = src.Path
	case "spicevmc":
		c.Transport = SpiceVMC
	default:
		return c, nil, invalid("chardev type %q: want tcp, unix or spicevmc", ser.Type)
	}
	return c, notes, nil
}

// draftBind checks a draft source's mode: QEMU must listen for the client.
func draftBind(mode string, notes *[]string) error {
	switch mode {
	case "bind":
		return nil
	case "":
		*notes = append(*notes, "added source mode='bind' (QEMU listens and vscclient-go connects; without a mode the source would connect out)")
		return nil
	default:
		return invalid("source mode %q: QEMU must listen (mode='bind') for vscclient-go to connect", mode)
	}
}
