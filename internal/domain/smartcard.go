package domain

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/vscardkit/vscardkit/xmlconfig"
	"libvirt.org/go/libvirtxml"
)

// Target is where vscclient-go connects to a running domain's
// ccid-card-passthru chardev. The zero Target means none. Targets compare
// with ==.
type Target struct {
	// Network is "tcp" or "unix".
	Network string
	// Address is what the client dials: host:port for tcp (the host is
	// the listen address, or, when QEMU listens on every address, the
	// loopback for a local libvirt and the URI's host for a remote one),
	// the socket path for unix.
	Address string
	// TLS is set when the chardev has tls='yes': the client must speak
	// TLS with a certificate QEMU's CA signed. A chardev without a tls
	// attribute follows qemu.conf's chardev_tls, which libvirt does not
	// tell its clients; it is reported without TLS.
	TLS bool
	// Listen is the address QEMU listens on (tcp), as the domain XML
	// says it ("" when the XML gives none).
	Listen string
}

// String returns the target as vscclient-go's --connect takes it:
// tcp://HOST:PORT, tls://HOST:PORT or unix:PATH; "" for the zero Target.
func (t Target) String() string {
	switch {
	case t.Network == "unix":
		return "unix:" + t.Address
	case t.Network == "tcp" && t.TLS:
		return "tls://" + t.Address
	case t.Network == "tcp":
		return "tcp://" + t.Address
	}
	return ""
}

// Errors a SmartcardError wraps, to match with errors.Is.
var (
	// ErrNoPassthrough: the domain has no <smartcard mode='passthrough'>
	// (none at all, or only QEMU-emulated ones: host, host-certificates).
	ErrNoPassthrough = errors.New("no passthrough smartcard")
	// ErrSpiceVMC: the passthrough smartcard's chardev is spicevmc: the
	// card comes from the SPICE client (remote-viewer), not from
	// vscclient-go.
	ErrSpiceVMC = errors.New("the passthrough smartcard travels over SPICE (spicevmc): the SPICE client is the card, not vscclient-go")
	// ErrUnsupportedChardev: the passthrough smartcard's chardev is one
	// vscclient-go cannot connect to (pty, file, a tcp or unix chardev on
	// which QEMU connects rather than listens...).
	ErrUnsupportedChardev = errors.New("unsupported smartcard chardev")
	// ErrLocalOnly: QEMU listens where only the VM host reaches it (a
	// loopback address, a unix socket) and libvirt is on another
	// machine. Bind the chardev to an address the client reaches (with
	// TLS), or tunnel the port (ssh -L).
	ErrLocalOnly = errors.New("the smartcard chardev is reachable only on the VM host")
)

// SmartcardError says why a domain's smartcard gives vscclient-go no
// Target. Err is one of ErrNoPassthrough, ErrSpiceVMC, ErrUnsupportedChardev
// and ErrLocalOnly.
type SmartcardError struct {
	Domain string
	// Modes are the modes of the domain's smartcards (passthrough, host,
	// host-certificates), in document order; empty when it has none.
	Modes []string
	// Chardev is the passthrough chardev's type (tcp, unix, spicevmc,
	// pty...), when there is one.
	Chardev string
	// Listen is where QEMU listens (host:port or a socket path), for
	// ErrLocalOnly.
	Listen string
	// Host is libvirt's host, for ErrLocalOnly.
	Host string
	// Detail is a further explanation, if any.
	Detail string
	Err    error
}

// Error says which domain and why.
func (e *SmartcardError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "domain: %s: %v", e.Domain, e.Err)
	switch {
	case errors.Is(e.Err, ErrNoPassthrough) && len(e.Modes) == 0:
		b.WriteString(" (it has no <smartcard> at all)")
	case errors.Is(e.Err, ErrNoPassthrough):
		fmt.Fprintf(&b, " (its smartcard mode is %s: QEMU emulates that card itself)", strings.Join(e.Modes, ", "))
	case errors.Is(e.Err, ErrLocalOnly):
		fmt.Fprintf(&b, ": QEMU listens on %s and libvirt runs on %s; bind the chardev to an address this machine reaches (with tls='yes'), or tunnel it (ssh -L)", e.Listen, e.Host)
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// Unwrap returns the condition.
func (e *SmartcardError) Unwrap() error { return e.Err }

// smartcardTarget finds the passthrough smartcard of d and where the client
// reaches it, for a daemon at u.
func smartcardTarget(d *libvirtxml.Domain, u *connURI) (Target, error) {
	var modes []string
	var pass *libvirtxml.DomainSmartcard
	if d.Devices != nil {
		for i := range d.Devices.Smartcards {
			sc := &d.Devices.Smartcards[i]
			switch {
			case sc.Passthrough != nil:
				modes = append(modes, string(xmlconfig.Passthrough))
				if pass == nil {
					pass = sc
				}
			case sc.Host != nil:
				modes = append(modes, string(xmlconfig.Host))
			case len(sc.HostCerts) > 0:
				modes = append(modes, string(xmlconfig.HostCertificates))
			}
		}
	}
	scErr := func(err error) *SmartcardError { return &SmartcardError{Domain: d.Name, Modes: modes, Err: err} }
	if pass == nil {
		return Target{}, scErr(ErrNoPassthrough)
	}
	src := pass.Passthrough
	kind := chardevType(src)
	if src.SpiceVMC != nil {
		e := scErr(ErrSpiceVMC)
		e.Chardev = kind
		return Target{}, e
	}
	if src.TCP == nil && src.UNIX == nil {
		e := scErr(ErrUnsupportedChardev)
		e.Chardev = kind
		e.Detail = "vscclient-go connects to a tcp or unix chardev on which QEMU listens (mode='bind')"
		return Target{}, e
	}
	// xmlconfig checks what it can describe: QEMU listens, raw
	// protocol, a port number.
	c, err := xmlconfig.FromSmartcard(pass)
	if err != nil {
		e := scErr(ErrUnsupportedChardev)
		e.Chardev = kind
		e.Detail = strings.TrimPrefix(err.Error(), "xmlconfig: ")
		return Target{}, e
	}
	if c.Transport == xmlconfig.Unix {
		if u.remote() {
			e := scErr(ErrLocalOnly)
			e.Chardev, e.Listen, e.Host = kind, c.Path, u.host
			return Target{}, e
		}
		return Target{Network: "unix", Address: c.Path}, nil
	}
	listen := src.TCP.Host
	port := strconv.Itoa(c.Port)
	host := listen
	switch {
	case listen == "" || isUnspecifiedAddr(listen):
		host = "127.0.0.1"
		if strings.Contains(listen, ":") {
			host = "::1"
		}
		if u.remote() {
			host = u.host
		}
	case isLoopback(listen) && u.remote():
		e := scErr(ErrLocalOnly)
		e.Chardev, e.Listen, e.Host = kind, net.JoinHostPort(listen, port), u.host
		return Target{}, e
	}
	return Target{Network: "tcp", Address: net.JoinHostPort(host, port), TLS: c.TLS, Listen: listen}, nil
}

func isUnspecifiedAddr(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// chardevType returns the type attribute of a chardev source.
func chardevType(s *libvirtxml.DomainChardevSource) string {
	switch {
	case s == nil:
		return ""
	case s.TCP != nil:
		return "tcp"
	case s.UNIX != nil:
		return "unix"
	case s.SpiceVMC != nil:
		return "spicevmc"
	case s.Pty != nil:
		return "pty"
	case s.File != nil:
		return "file"
	case s.Dev != nil:
		return "dev"
	case s.Pipe != nil:
		return "pipe"
	case s.UDP != nil:
		return "udp"
	case s.StdIO != nil:
		return "stdio"
	case s.Null != nil:
		return "null"
	case s.VC != nil:
		return "vc"
	case s.SpicePort != nil:
		return "spiceport"
	case s.NMDM != nil:
		return "nmdm"
	case s.QEMUVDAgent != nil:
		return "qemu-vdagent"
	case s.DBus != nil:
		return "dbus"
	}
	return "unknown"
}

// Endpoint is a TCP port or unix socket a domain's QEMU listens on (or will
// listen on when started): a smartcard, serial, parallel, console or channel
// chardev in mode='bind', or VNC or SPICE graphics on a fixed port.
type Endpoint struct {
	Domain string
	// Device is smartcard, serial, parallel, console, channel or
	// graphics.
	Device string
	// Network is "tcp" or "unix".
	Network string
	// Host is the listen address (tcp; "" when the XML gives none).
	Host string
	// Port is the TCP port (tcp).
	Port int
	// Path is the socket (unix).
	Path string
	// Live is set when the endpoint is in the running domain's live XML;
	// otherwise it is in the domain's definition (what QEMU gets at the
	// next start).
	Live bool
}

// endpoints lists the listening endpoints of d.
func endpoints(d *libvirtxml.Domain, live bool) []Endpoint {
	if d.Devices == nil {
		return nil
	}
	var out []Endpoint
	add := func(device string, s *libvirtxml.DomainChardevSource) {
		switch {
		case s == nil:
		case s.TCP != nil && (s.TCP.Mode == "bind"):
			port, err := strconv.Atoi(s.TCP.Service)
			if err != nil {
				return
			}
			out = append(out, Endpoint{Domain: d.Name, Device: device, Network: "tcp", Host: s.TCP.Host, Port: port, Live: live})
		case s.UNIX != nil && (s.UNIX.Mode == "bind") && s.UNIX.Path != "":
			out = append(out, Endpoint{Domain: d.Name, Device: device, Network: "unix", Path: s.UNIX.Path, Live: live})
		}
	}
	dv := d.Devices
	for i := range dv.Smartcards {
		add("smartcard", dv.Smartcards[i].Passthrough)
	}
	for i := range dv.Serials {
		add("serial", dv.Serials[i].Source)
	}
	for i := range dv.Parallels {
		add("parallel", dv.Parallels[i].Source)
	}
	for i := range dv.Consoles {
		add("console", dv.Consoles[i].Source)
	}
	for i := range dv.Channels {
		add("channel", dv.Channels[i].Source)
	}
	for _, g := range dv.Graphics {
		tcp := func(listen string, port int) {
			if port > 0 {
				out = append(out, Endpoint{Domain: d.Name, Device: "graphics", Network: "tcp", Host: listen, Port: port, Live: live})
			}
		}
		switch {
		case g.VNC != nil:
			tcp(g.VNC.Listen, g.VNC.Port)
		case g.Spice != nil:
			tcp(g.Spice.Listen, g.Spice.Port)
			tcp(g.Spice.Listen, g.Spice.TLSPort)
		}
	}
	return out
}

// sortEndpoints orders endpoints by domain, then device, then address.
func sortEndpoints(eps []Endpoint) {
	sort.SliceStable(eps, func(i, j int) bool {
		a, b := eps[i], eps[j]
		if a.Domain != b.Domain {
			return a.Domain < b.Domain
		}
		if a.Network != b.Network {
			return a.Network < b.Network
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		return a.Path < b.Path
	})
}
