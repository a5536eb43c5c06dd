package xmlconfig

import (
	"encoding/xml"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"libvirt.org/go/libvirtxml"
)

// Smartcard returns c as libvirt's <smartcard> device.
func (c Config) Smartcard() (*libvirtxml.DomainSmartcard, error) {
	n, err := c.normalized()
	if err != nil {
		return nil, err
	}
	sc := &libvirtxml.DomainSmartcard{}
	switch n.Mode {
	case Host:
		sc.Host = &libvirtxml.DomainSmartcardHost{}
	case HostCertificates:
		for _, cert := range n.Certificates {
			sc.HostCerts = append(sc.HostCerts, libvirtxml.DomainSmartcardHostCert{File: cert})
		}
		sc.Database = n.Database
	case Passthrough:
		src := &libvirtxml.DomainChardevSource{}
		switch n.Transport {
		case TCP:
			tls := "no"
			if n.TLS {
				tls = "yes"
			}
			src.TCP = &libvirtxml.DomainChardevSourceTCP{
				Mode:    "bind",
				Host:    n.Host,
				Service: strconv.Itoa(n.Port),
				TLS:     tls,
			}
			sc.Protocol = &libvirtxml.DomainChardevProtocol{Type: "raw"}
		case Unix:
			src.UNIX = &libvirtxml.DomainChardevSourceUNIX{Mode: "bind", Path: n.Path}
		case SpiceVMC:
			src.SpiceVMC = &libvirtxml.DomainChardevSourceSpiceVMC{}
		}
		sc.Passthrough = src
	}
	if a := n.Address; a != nil {
		ctl, slot := a.Controller, a.Slot
		sc.Address = &libvirtxml.DomainAddress{CCID: &libvirtxml.DomainAddressCCID{Controller: &ctl, Slot: &slot}}
	}
	return sc, nil
}

// ControllerDevice returns the explicit <controller type='ccid'> of c, or nil
// when c has none (libvirt then adds one by itself).
func (c Config) ControllerDevice() (*libvirtxml.DomainController, error) {
	n, err := c.normalized()
	if err != nil || n.Controller == nil {
		return nil, err
	}
	idx := uint(0)
	ctl := &libvirtxml.DomainController{Type: "ccid", Index: &idx}
	if p := n.Controller.USBPort; p != "" {
		bus := uint(0)
		ctl.Address = &libvirtxml.DomainAddress{USB: &libvirtxml.DomainAddressUSB{Bus: &bus, Port: p}}
	}
	return ctl, nil
}

// DevicesXML returns the devices c adds to a domain's <devices>: the
// explicit controller, if any, then the smartcard, each indented by two
// spaces a level and ending in a newline, in the form libvirt writes
// (empty elements closed with />).
func (c Config) DevicesXML() ([]byte, error) {
	var b strings.Builder
	if err := c.writeDevices(&b, "", "  ", "\n"); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

// writeDevices writes the controller (if any) and the smartcard, each line
// starting with prefix, nested levels indented by indent, lines ended by nl.
func (c Config) writeDevices(b *strings.Builder, prefix, indent, nl string) error {
	ctl, err := c.ControllerDevice()
	if err != nil {
		return err
	}
	if ctl != nil {
		s, err := marshalDevice(ctl, prefix, indent, nl)
		if err != nil {
			return err
		}
		b.WriteString(s)
		b.WriteString(nl)
	}
	sc, err := c.Smartcard()
	if err != nil {
		return err
	}
	s, err := marshalDevice(sc, prefix, indent, nl)
	if err != nil {
		return err
	}
	b.WriteString(s)
	b.WriteString(nl)
	return nil
}

// emptyElement matches an element with no content, as encoding/xml writes
// it (<x a="1"></x>). Attribute values cannot hold < or > (the encoder
// escapes them), so the match cannot cross elements.
var emptyElement = regexp.MustCompile(`<([A-Za-z][\w.:-]*)([^<>]*)></([A-Za-z][\w.:-]*)>`)

// marshalDevice marshals v with libvirtxml's types, then writes empty
// elements the short way, as libvirt does.
func marshalDevice(v any, prefix, indent, nl string) (string, error) {
	b, err := xml.MarshalIndent(v, prefix, indent)
	if err != nil {
		return "", fmt.Errorf("xmlconfig: marshalling: %w", err)
	}
	s := emptyElement.ReplaceAllStringFunc(string(b), func(m string) string {
		sub := emptyElement.FindStringSubmatch(m)
		if sub[1] != sub[3] {
			return m
		}
		return "<" + sub[1] + sub[2] + "/>"
	})
	if nl != "\n" {
		s = strings.ReplaceAll(s, "\n", nl)
	}
	return s, nil
}

// FromSmartcard returns the Config of a <smartcard> that xmlconfig can
// describe: the inverse of Config.Smartcard. Passthrough smartcards must
// have QEMU listen (source mode='bind'), since vscclient-go connects to it.
func FromSmartcard(sc *libvirtxml.DomainSmartcard) (Config, error) {
	var c Config
	switch {
	case sc.Host != nil:
		c.Mode = Host
	case len(sc.HostCerts) > 0:
		c.Mode = HostCertificates
		for _, hc := range sc.HostCerts {
			c.Certificates = append(c.Certificates, hc.File)
		}
		c.Database = sc.Database
	case sc.Passthrough != nil:
		c.Mode = Passthrough
		switch src := sc.Passthrough; {
		case src.TCP != nil:
			c.Transport = TCP
			if src.TCP.Mode != "bind" {
				return c, invalid("tcp source mode %q: QEMU must listen (mode='bind') for the client to connect", src.TCP.Mode)
			}
			if sc.Protocol != nil && sc.Protocol.Type != "" && sc.Protocol.Type != "raw" {
				return c, invalid("tcp protocol %q: the VSCard stream needs protocol raw", sc.Protocol.Type)
			}
			c.Host = src.TCP.Host
			port, err := strconv.Atoi(src.TCP.Service)
			if err != nil {
				return c, invalid("tcp service %q is not a port number", src.TCP.Service)
			}
			c.Port = port
			switch src.TCP.TLS {
			case "yes":
				c.TLS = true
			case "", "no":
			default:
				return c, invalid("tls=%q: want yes or no", src.TCP.TLS)
			}
		case src.UNIX != nil:
			c.Transport = Unix
			if src.UNIX.Mode != "bind" {
				return c, invalid("unix source mode %q: QEMU must listen (mode='bind') for the client to connect", src.UNIX.Mode)
			}
			c.Path = src.UNIX.Path
		case src.SpiceVMC != nil:
			c.Transport = SpiceVMC
		default:
			return c, invalid("passthrough smartcard with a chardev type xmlconfig does not generate (want tcp, unix or spicevmc)")
		}
	default:
		return c, invalid("smartcard without a mode")
	}
	if a := sc.Address; a != nil {
		if a.CCID == nil {
			return c, invalid("smartcard address is not of type ccid")
		}
		var addr CCIDAddress
		if a.CCID.Controller != nil {
			addr.Controller = *a.CCID.Controller
		}
		if a.CCID.Slot != nil {
			addr.Slot = *a.CCID.Slot
		}
		c.Address = &addr
	}
	return c, c.Validate()
}
