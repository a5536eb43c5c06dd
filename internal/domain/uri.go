package domain

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// DefaultURI is the libvirt connection URI that an empty URI stands for: the
// system instance of the QEMU driver, as virsh run by root uses.
const DefaultURI = "qemu:///system"

// ErrInvalidURI: the connection URI cannot be parsed, or names a transport
// or an option this package does not support. The wrapping error says why.
var ErrInvalidURI = errors.New("invalid libvirt connection URI")

// The transports of a libvirt URI (the part of the scheme after '+').
const (
	transportUnix = "unix"
	transportTCP  = "tcp"
	transportTLS  = "tls"
	transportSSH  = "ssh"
)

// The ports libvirtd listens on for the tcp and tls transports.
const (
	defaultTCPPort = "16509"
	defaultTLSPort = "16514"
)

// connURI is a parsed libvirt connection URI: where to dial and what to ask
// the daemon for.
type connURI struct {
	raw       string // as given (DefaultURI for "")
	driver    string // qemu
	transport string // one of the transport constants
	host      string // the server's name or address; "" for unix
	port      string // "" means the transport's default
	user      string // ssh: the remote user; "" means ssh's default
	path      string // /system or /session
	// name is the URI the daemon is asked to open (ConnectOpen): the
	// scheme without transport, the path, and the options this package
	// does not consume, as libvirt's remote driver sends it.
	name string

	socket string // unix: the local socket; ssh: the remote socket ("" means the default)
	mode   string // auto, legacy or direct: which daemon's socket
	// tls
	pkiPath  string
	noVerify bool
	// ssh
	command string // the ssh program ("" means ssh)
	netcat  string // the remote netcat ("" means nc)
	keyfile string
	noTTY   bool
	proxy   string // auto, netcat or native
}

// parseURI parses a libvirt connection URI the way libvirt's remote driver
// reads it (https://libvirt.org/uri.html, https://libvirt.org/remote.html).
func parseURI(raw string) (*connURI, error) {
	if raw == "" {
		raw = DefaultURI
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("domain: %w: %v", ErrInvalidURI, err)
	}
	if u.Scheme == "" || u.Opaque != "" {
		return nil, fmt.Errorf("domain: %w: %q is not of the form driver[+transport]://[host]/path", ErrInvalidURI, raw)
	}
	c := &connURI{raw: raw, host: u.Hostname(), port: u.Port(), path: u.Path, mode: "auto", proxy: "auto"}
	c.driver, c.transport, _ = strings.Cut(strings.ToLower(u.Scheme), "+")
	if c.transport == "" {
		// libvirt: a host without a transport means tls.
		c.transport = transportUnix
		if c.host != "" {
			c.transport = transportTLS
		}
	}
	switch c.transport {
	case transportUnix:
		if c.host != "" {
			return nil, fmt.Errorf("domain: %w: %q: the unix transport takes no host", ErrInvalidURI, raw)
		}
	case transportTCP, transportTLS, transportSSH:
		if c.host == "" {
			return nil, fmt.Errorf("domain: %w: %q: the %s transport needs a host", ErrInvalidURI, raw, c.transport)
		}
	case "libssh", "libssh2":
		return nil, fmt.Errorf("domain: %w: %q: transport %s is not supported; use qemu+ssh://, which runs the system ssh", ErrInvalidURI, raw, c.transport)
	default:
		return nil, fmt.Errorf("domain: %w: %q: transport %q is not supported (want unix, tcp, tls or ssh)", ErrInvalidURI, raw, c.transport)
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			return nil, fmt.Errorf("domain: %w: %q: a password in the URI is not supported (ssh asks for it, or use a key)", ErrInvalidURI, raw)
		}
		c.user = u.User.Username()
	}
	if c.port != "" {
		if n, err := strconv.Atoi(c.port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("domain: %w: %q: port %q", ErrInvalidURI, raw, c.port)
		}
	}

	rest := url.Values{}
	for key, vals := range u.Query() {
		v := vals[len(vals)-1]
		switch strings.ToLower(key) {
		case "socket":
			c.socket = v
		case "mode":
			c.mode = strings.ToLower(v)
			if c.mode != "auto" && c.mode != "legacy" && c.mode != "direct" {
				return nil, fmt.Errorf("domain: %w: %q: mode=%q (want auto, legacy or direct)", ErrInvalidURI, raw, v)
			}
		case "name":
			c.name = v
		case "pkipath":
			c.pkiPath = v
		case "no_verify":
			c.noVerify = v != "" && v != "0"
		case "command":
			c.command = v
		case "netcat":
			c.netcat = v
		case "keyfile":
			c.keyfile = v
		case "no_tty":
			c.noTTY = v != "" && v != "0"
		case "proxy":
			c.proxy = strings.ToLower(v)
			if c.proxy != "auto" && c.proxy != "netcat" && c.proxy != "native" {
				return nil, fmt.Errorf("domain: %w: %q: proxy=%q (want auto, netcat or native)", ErrInvalidURI, raw, v)
			}
		default:
			rest[key] = vals
		}
	}
	if c.name == "" {
		c.name = c.driver + "://" + (&url.URL{Path: c.path}).EscapedPath()
		if len(rest) > 0 {
			c.name += "?" + rest.Encode()
		}
	}
	return c, nil
}

// remote reports whether the daemon runs on another machine: the URI names
// a host that is not a loopback name or address. A chardev QEMU binds to
// loopback, or a unix socket, is then out of the client's reach.
func (c *connURI) remote() bool {
	return c.host != "" && !isLoopback(c.host)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// unixSocket returns the local socket the unix transport dials, chosen as
// libvirt's remote driver chooses it (src/remote/remote_sockets.c): the
// socket option; else, for a session URI of a user other than root, the
// user's runtime directory; else /var/run/libvirt. In mode auto the modular
// daemon's socket (virtqemud-sock) is taken when it exists, libvirtd's
// (libvirt-sock) otherwise.
func (c *connURI) unixSocket() string {
	if c.socket != "" {
		return c.socket
	}
	dir := "/var/run/libvirt"
	suffix := "-sock"
	if c.path == "/session" && os.Geteuid() != 0 && runtime.GOOS != "windows" {
		dir = userRuntimeDir()
	}
	direct := filepath.Join(dir, "virt"+c.driver+"d"+suffix)
	legacy := filepath.Join(dir, "libvirt"+suffix)
	switch c.mode {
	case "direct":
		return direct
	case "legacy":
		return legacy
	}
	if _, err := os.Stat(direct); err == nil {
		return direct
	}
	return legacy
}

// userRuntimeDir is libvirt's virGetUserRuntimeDirectory:
// $XDG_RUNTIME_DIR/libvirt, else the user's cache directory's libvirt.
func userRuntimeDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "libvirt")
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "libvirt")
	}
	return filepath.Join(os.TempDir(), "libvirt")
}

// addr returns host:port for the tcp and tls transports.
func (c *connURI) addr() string {
	port := c.port
	if port == "" {
		port = defaultTCPPort
		if c.transport == transportTLS {
			port = defaultTLSPort
		}
	}
	return net.JoinHostPort(c.host, port)
}
