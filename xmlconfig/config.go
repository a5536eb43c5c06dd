package xmlconfig

import (
	"errors"
	"fmt"
	"net"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// Mode is how QEMU gets the guest's card: the mode attribute of libvirt's
// <smartcard>.
type Mode string

// The smartcard modes libvirt knows.
const (
	// Passthrough: QEMU's ccid-card-passthru forwards the guest's card
	// traffic over a chardev in the VSCard protocol to a client that is
	// the card (vscclient-go, or a SPICE client over spicevmc).
	Passthrough Mode = "passthrough"
	// Host: QEMU's ccid-card-emulated presents a card of the VM host's
	// NSS database (backend nss-emulated).
	Host Mode = "host"
	// HostCertificates: QEMU's ccid-card-emulated presents a card made of
	// three certificates of an NSS database (backend certificates).
	HostCertificates Mode = "host-certificates"
)

// Transport is the chardev a passthrough smartcard uses: the type attribute
// of libvirt's <smartcard mode='passthrough'>.
type Transport string

// The transports xmlconfig generates.
const (
	// TCP: QEMU listens on a TCP address (optionally with TLS) and the
	// client connects to it.
	TCP Transport = "tcp"
	// Unix: QEMU listens on a Unix socket on the VM host.
	Unix Transport = "unix"
	// SpiceVMC: the card travels inside the SPICE connection; the SPICE
	// client (remote-viewer) is the card. The domain needs SPICE graphics.
	SpiceVMC Transport = "spicevmc"
)

// Defaults that a zero Config field stands for.
const (
	// DefaultHost is the address QEMU listens on: loopback, so that only
	// the VM host (or an SSH tunnel to it) reaches the card's socket.
	DefaultHost = "127.0.0.1"
	// DefaultTLSDir is the directory of QEMU's TLS credentials for the
	// chardev (ca-cert.pem, server-cert.pem, server-key.pem), the one
	// libvirt's qemu.conf suggests for chardev_tls_x509_cert_dir.
	DefaultTLSDir = "/etc/pki/libvirt-chardev"
	// DefaultDatabase is the NSS database QEMU's ccid-card-emulated reads
	// when none is given; libvirt passes it explicitly.
	DefaultDatabase = "/etc/pki/nssdb"
)

// Errors that callers can match with errors.Is.
var (
	// ErrInvalidConfig: the Config cannot describe a smartcard libvirt
	// and QEMU accept. The wrapping error says which field and why.
	ErrInvalidConfig = errors.New("invalid smartcard configuration")
	// ErrSecondSmartcard: the domain already has a smartcard; libvirt's
	// QEMU driver and QEMU allow one per domain.
	ErrSecondSmartcard = errors.New("the domain already has a smartcard, and libvirt and QEMU allow one smartcard per domain")
	// ErrNotDomain: the document is not well-formed XML with a <domain>
	// root.
	ErrNotDomain = errors.New("not a libvirt domain XML document")
	// ErrIncompatibleDomain: the domain cannot take the smartcard as it
	// is (USB disabled, spicevmc without SPICE graphics).
	ErrIncompatibleDomain = errors.New("the domain cannot take this smartcard")
	// ErrNoDraft: the domain has no smartcard in the early draft form.
	ErrNoDraft = errors.New("the domain has no smartcard in the early draft form")
	// ErrNoClient: the configuration has no vscclient-go client (host
	// modes, spicevmc).
	ErrNoClient = errors.New("no vscclient-go client for this configuration")
	// ErrNoClientHost: QEMU listens on every address, so the address the
	// client dials must be given (Config.ClientHost).
	ErrNoClientHost = errors.New("the client's address is unknown when QEMU listens on every address")
)

// Config describes one smartcard. The zero value, with a Port, is a
// passthrough smartcard on TCP 127.0.0.1:Port without TLS.
type Config struct {
	// Mode is the smartcard mode. Zero means Passthrough.
	Mode Mode

	// Transport is the chardev of a passthrough smartcard. Zero means TCP.
	Transport Transport
	// Host is the address QEMU listens on (TCP). Zero means DefaultHost.
	// An IPv6 address may be written in brackets, as in a URL ("[::1]").
	// An address that is not loopback without TLS is allowed, with a
	// warning (see Warnings).
	Host string
	// Port is the TCP port QEMU listens on; required for TCP.
	Port int
	// Path is the Unix socket QEMU creates (Unix); absolute, at most 107
	// bytes.
	Path string
	// TLS puts TLS on the TCP chardev (libvirt: tls='yes'; QEMU: a
	// tls-creds-x509 object with endpoint=server and verify-peer=on, so the
	// client needs a certificate of the same CA). Without it the source
	// says tls='no', whatever qemu.conf's chardev_tls, so the client command
	// printed for it stays right.
	TLS bool
	// TLSDir is the directory on the VM host with QEMU's credentials
	// (ca-cert.pem, server-cert.pem, server-key.pem). libvirt takes it from
	// qemu.conf (see QEMUConf); the QEMU argv names it. Zero means
	// DefaultTLSDir.
	TLSDir string
	// ClientTLSDir is the directory on the client's machine with
	// ca-cert.pem, client-cert.pem and client-key.pem. Zero means TLSDir.
	ClientTLSDir string
	// ClientHost is the name or address the client dials (an IPv6 address
	// in brackets or not, as Host). Zero means Host,
	// which must then be a specific address (not 0.0.0.0 or ::). With
	// TLS it must be a name the server certificate holds.
	ClientHost string
	// LibvirtChardev makes QEMUArgs write a TCP chardev exactly as
	// libvirt 9 writes it, without nodelay=on: the chardev every libvirt
	// user gets, on which QEMU's two writes per message meet Nagle's
	// algorithm unless the client copes (see package vscard). Set it to
	// reproduce a libvirt VM with plain QEMU, as vscardkit's end-to-end
	// tests do; leave it false when running QEMU without libvirt. With
	// Controller.USBPort set as well, QEMUArgs' usb-ccid, chardev and
	// ccid-card-passthru options are libvirt's, key for key. The XML forms
	// ignore it: libvirt's <smartcard> has no nodelay setting.
	LibvirtChardev bool

	// Certificates are the three NSS certificate nicknames of a
	// HostCertificates smartcard.
	Certificates []string
	// Database is the NSS database directory of a HostCertificates
	// smartcard (absolute). Zero means the libvirt/QEMU default
	// (DefaultDatabase); the XML then has no <database>.
	Database string

	// Address, when set, adds <address type='ccid' controller= slot=/>.
	// libvirt's QEMU driver supports controller 0, slot 0 only.
	Address *CCIDAddress
	// Controller, when set, adds an explicit <controller type='ccid'
	// index='0'/> (libvirt adds one by itself otherwise).
	Controller *CCIDController
}

// CCIDAddress is a smartcard's place on a CCID controller.
type CCIDAddress struct {
	// Controller is the index of the <controller type='ccid'>.
	Controller uint
	// Slot is the card's slot on that controller.
	Slot uint
}

// CCIDController is the CCID controller (QEMU's usb-ccid) the smartcard
// sits on.
type CCIDController struct {
	// USBPort is the controller's port on USB bus 0, such as "1" or "1.2"
	// (behind a hub). Zero means libvirt picks one (and QEMU, in the argv
	// form, any free port of any USB bus).
	USBPort string
}

// normalized returns c with defaults filled in, or an error wrapping
// ErrInvalidConfig.
func (c Config) normalized() (Config, error) {
	if c.Mode == "" {
		c.Mode = Passthrough
	}
	switch c.Mode {
	case Passthrough:
		if c.Transport == "" {
			c.Transport = TCP
		}
		if len(c.Certificates) > 0 || c.Database != "" {
			return c, invalid("certificates and a database belong to mode %s, not %s", HostCertificates, c.Mode)
		}
		if err := c.normalizeTransport(); err != nil {
			return c, err
		}
	case Host, HostCertificates:
		if c.Transport != "" || c.Host != "" || c.Port != 0 || c.Path != "" || c.TLS || c.ClientHost != "" {
			return c, invalid("mode %s has no chardev: a transport, host, port, socket or TLS belong to mode %s", c.Mode, Passthrough)
		}
		if c.Mode == Host && (len(c.Certificates) > 0 || c.Database != "") {
			return c, invalid("certificates and a database belong to mode %s, not %s", HostCertificates, Host)
		}
		if c.Mode == HostCertificates {
			if len(c.Certificates) != 3 {
				return c, invalid("mode %s takes exactly three certificates (NSS nicknames), got %d", c.Mode, len(c.Certificates))
			}
			for i, n := range c.Certificates {
				if strings.TrimSpace(n) == "" || strings.ContainsAny(n, "\x00\n\r") {
					return c, invalid("certificate %d: %q is not an NSS nickname", i+1, n)
				}
			}
			if c.Database != "" {
				if err := checkPath("database", c.Database, 0); err != nil {
					return c, err
				}
			}
		}
	default:
		return c, invalid("unknown mode %q (want %s, %s or %s)", c.Mode, Passthrough, Host, HostCertificates)
	}
	if a := c.Address; a != nil && (a.Controller != 0 || a.Slot != 0) {
		return c, invalid("ccid address controller %d slot %d: libvirt's QEMU driver and QEMU support one smartcard, at controller 0 slot 0", a.Controller, a.Slot)
	}
	if ctl := c.Controller; ctl != nil && ctl.USBPort != "" {
		if err := checkUSBPort(ctl.USBPort); err != nil {
			return c, err
		}
	}
	return c, nil
}

func (c *Config) normalizeTransport() error {
	if c.Transport != TCP && (c.TLS || c.TLSDir != "" || c.ClientTLSDir != "") {
		return invalid("TLS needs transport %s, not %s", TCP, c.Transport)
	}
	switch c.Transport {
	case TCP:
		if c.Path != "" {
			return invalid("a socket path belongs to transport %s, not %s", Unix, TCP)
		}
		if c.Host == "" {
			c.Host = DefaultHost
		}
		c.Host, c.ClientHost = unbracket(c.Host), unbracket(c.ClientHost)
		if err := checkHost("host", c.Host); err != nil {
			return err
		}
		if c.Port < 1 || c.Port > 65535 {
			return invalid("port %d: want a TCP port from 1 to 65535", c.Port)
		}
		if c.ClientHost != "" {
			if err := checkHost("client host", c.ClientHost); err != nil {
				return err
			}
		}
		if !c.TLS && (c.TLSDir != "" || c.ClientTLSDir != "") {
			return invalid("a TLS directory without TLS")
		}
		if c.TLS {
			if c.TLSDir == "" {
				c.TLSDir = DefaultTLSDir
			}
			if err := checkPath("TLS directory", c.TLSDir, 0); err != nil {
				return err
			}
			if strings.Contains(c.TLSDir, `"`) {
				// qemu.conf strings have no escapes.
				return invalid("TLS directory %q: a double quote cannot be written in qemu.conf", c.TLSDir)
			}
			if c.ClientTLSDir == "" {
				c.ClientTLSDir = c.TLSDir
			} else if err := checkClientPath("client TLS directory", c.ClientTLSDir); err != nil {
				return err
			}
		}
	case Unix:
		if c.Host != "" || c.Port != 0 || c.ClientHost != "" {
			return invalid("a host and port belong to transport %s, not %s", TCP, Unix)
		}
		if c.Path == "" {
			return invalid("transport %s needs a socket path", Unix)
		}
		// sun_path holds 108 bytes with the terminating NUL.
		if err := checkPath("socket path", c.Path, 107); err != nil {
			return err
		}
	case SpiceVMC:
		if c.Host != "" || c.Port != 0 || c.Path != "" || c.ClientHost != "" {
			return invalid("transport %s has no host, port or socket path: the card travels in the SPICE connection", SpiceVMC)
		}
	default:
		return invalid("unknown transport %q (want %s, %s or %s)", c.Transport, TCP, Unix, SpiceVMC)
	}
	return nil
}

// Validate reports whether c describes a smartcard libvirt and QEMU accept.
// The error wraps ErrInvalidConfig.
func (c Config) Validate() error {
	_, err := c.normalized()
	return err
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("xmlconfig: %w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// unbracket returns an IPv6 address written in brackets, as in a URL
// ("[::1]"), without them, and anything else as it is.
func unbracket(h string) string {
	if inner, ok := strings.CutPrefix(h, "["); ok && strings.HasSuffix(inner, "]") {
		if ip := net.ParseIP(strings.TrimSuffix(inner, "]")); ip != nil && ip.To4() == nil {
			return strings.TrimSuffix(inner, "]")
		}
	}
	return h
}

// checkHost accepts an IP address or a DNS name. Commas and spaces are
// refused: QEMU's option syntax and libvirt's attributes have no use for
// them in a host.
func checkHost(what, h string) error {
	if net.ParseIP(h) != nil {
		return nil
	}
	if len(h) > 253 || h == "" {
		return invalid("%s %q is not an IP address or a host name", what, h)
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return invalid("%s %q is not an IP address or a host name", what, h)
		}
		for _, r := range label {
			ok := r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
			if !ok {
				return invalid("%s %q is not an IP address or a host name", what, h)
			}
		}
	}
	return nil
}

// checkPath accepts a clean-enough absolute path without NUL or newline, of
// at most max bytes when max > 0.
func checkPath(what, p string, max int) error {
	if !filepath.IsAbs(p) {
		return invalid("%s %q must be an absolute path", what, p)
	}
	if strings.ContainsAny(p, "\x00\n\r") {
		return invalid("%s %q contains a NUL or newline", what, p)
	}
	if max > 0 && len(p) > max {
		return invalid("%s %q is %d bytes; a Unix socket path holds at most %d", what, p, len(p), max)
	}
	return nil
}

// checkClientPath accepts an absolute path on the client's machine, which
// may run another OS than the VM host (a Windows desk): /a/b, C:\a\b, C:/a/b
// or \\server\share\a, without NUL or newline.
func checkClientPath(what, p string) error {
	if !strings.HasPrefix(p, "/") && !isWindowsAbs(p) {
		return invalid("%s %q must be an absolute path (/dir on Linux and macOS, C:\\dir on Windows)", what, p)
	}
	if strings.ContainsAny(p, "\x00\n\r") {
		return invalid("%s %q contains a NUL or newline", what, p)
	}
	return nil
}

// isWindowsAbs reports whether p is an absolute Windows path: a drive
// letter, a colon and a separator, or a UNC path.
func isWindowsAbs(p string) bool {
	if strings.HasPrefix(p, `\\`) {
		return len(p) > 2
	}
	if len(p) < 3 || p[1] != ':' || (p[2] != '\\' && p[2] != '/') {
		return false
	}
	d := p[0] | 0x20
	return d >= 'a' && d <= 'z'
}

// clientJoin joins a client directory and a file name with the separator
// the directory is written with: a backslash for a Windows path written
// with backslashes, a slash otherwise.
func clientJoin(dir, file string) string {
	if isWindowsAbs(dir) && strings.Contains(dir, `\`) {
		return strings.TrimRight(dir, `\`) + `\` + file
	}
	return path.Join(dir, file)
}

// checkUSBPort accepts libvirt's USB port syntax: up to five dot-separated
// numbers from 1 to 255 (a port, then ports of hubs behind it).
func checkUSBPort(p string) error {
	parts := strings.Split(p, ".")
	if len(parts) > 5 {
		return invalid("USB port %q: at most 5 levels", p)
	}
	for _, s := range parts {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 255 {
			return invalid("USB port %q: want numbers from 1 to 255 separated by dots, such as 1 or 1.2", p)
		}
	}
	return nil
}

// isLoopback reports whether host names only the VM host itself.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// isUnspecified reports whether host is 0.0.0.0 or :: (every address).
func isUnspecified(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// Warnings returns what a user must know before using c: today, a loud
// warning when QEMU listens on an address other machines can reach without
// TLS, since whoever connects first is the guest's card and receives every
// command the guest sends it, PIN verifications included. An invalid c has
// no warnings (Validate says what is wrong).
func (c Config) Warnings() []string {
	n, err := c.normalized()
	if err != nil || n.Mode != Passthrough || n.Transport != TCP || n.TLS || isLoopback(n.Host) {
		return nil
	}
	where := net.JoinHostPort(n.Host, strconv.Itoa(n.Port))
	return []string{fmt.Sprintf(
		"WARNING: QEMU will listen on %s without TLS. Anyone who can connect to it can act as the guest's smart card "+
			"and receives every command the guest sends the card, PINs included. Listen on 127.0.0.1 and reach it "+
			"through an SSH tunnel, or turn TLS on.", where)}
}
