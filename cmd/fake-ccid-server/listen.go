package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/vscardkit/vscardkit/internal/cli"
)

// listenAddr is a parsed --listen.
type listenAddr struct {
	network string // "tcp" or "unix"
	address string // HOST:PORT, or the socket's path ("@name": abstract)
	tls     bool   // tls://: the TLS flags are required
}

const listenForms = "write HOST:PORT (127.0.0.1:2001), [IPv6]:PORT ([::1]:2001) or unix:PATH (unix:/run/vscardkit/vm.sock)"

// parseListen parses --listen: HOST:PORT, [IPv6]:PORT, unix:PATH, and the
// forms vscclient-go's --connect takes (tcp://HOST:PORT, tls://HOST:PORT,
// unix://PATH), so that one address can be pasted into both. It refuses
// what would listen somewhere the user cannot know: an empty address (every
// interface, a random port) or an empty socket path (a random abstract
// socket).
func parseListen(s string) (listenAddr, error) {
	bad := func(format string, args ...any) error {
		return cli.WithHint(cli.Usagef("--listen %q: %s", s, fmt.Sprintf(format, args...)), listenForms)
	}
	if s == "" {
		return listenAddr{}, bad("no address")
	}
	if path, ok := strings.CutPrefix(s, "unix:"); ok {
		path = strings.TrimPrefix(path, "//")
		switch {
		case path == "":
			return listenAddr{}, bad("no socket path")
		case path == "@":
			return listenAddr{}, bad("no name after @ (an abstract socket)")
		}
		return listenAddr{network: "unix", address: path}, nil
	}
	a := listenAddr{network: "tcp", address: s}
	if rest, ok := strings.CutPrefix(s, "tcp://"); ok {
		a.address = rest
	} else if rest, ok := strings.CutPrefix(s, "tls://"); ok {
		a.address, a.tls = rest, true
	} else if scheme, _, ok := strings.Cut(s, "://"); ok {
		return listenAddr{}, bad("unknown scheme %s://", scheme)
	}
	_, port, err := net.SplitHostPort(a.address)
	if err != nil {
		if strings.Count(a.address, ":") > 1 && !strings.HasPrefix(a.address, "[") {
			i := strings.LastIndex(a.address, ":")
			return listenAddr{}, cli.WithHint(cli.Usagef("--listen %q: an IPv6 address takes brackets before the port", s),
				fmt.Sprintf("write [%s]:%s", a.address[:i], a.address[i+1:]))
		}
		return listenAddr{}, bad("want HOST:PORT")
	}
	if _, err := checkPort(port); err != nil {
		return listenAddr{}, cli.WithHint(cli.Usagef("--listen %q: %v", s, err), listenForms)
	}
	return a, nil
}

// checkPort checks a TCP port: a number from 0 (any free port, which the
// "listening" line then names) to 65535, or a service name that resolves.
func checkPort(port string) (int, error) {
	if port == "" {
		return 0, errors.New("no port")
	}
	if n, err := strconv.Atoi(port); err == nil {
		if n < 0 || n > 65535 {
			return 0, fmt.Errorf("port %d is out of range (1 to 65535)", n)
		}
		return n, nil
	}
	n, err := net.LookupPort("tcp", port)
	if err != nil {
		return 0, fmt.Errorf("port %q is neither a number nor a known service name", port)
	}
	return n, nil
}

// listen opens a. A unix socket left by an earlier run is replaced, but
// only when it is a socket and nothing answers on it.
func listen(a listenAddr) (net.Listener, error) {
	if a.network == "unix" && !strings.HasPrefix(a.address, "@") {
		if err := removeStaleSocket(a.address); err != nil {
			return nil, err
		}
	}
	l, err := net.Listen(a.network, a.address)
	if err != nil {
		return nil, cli.WithHint(fmt.Errorf("listening on %s: %w", a.address, err), listenHint(a, err))
	}
	return l, nil
}

// listenHint says what to do about a failed listen, by cause.
func listenHint(a listenAddr, err error) string {
	host, port, _ := net.SplitHostPort(a.address)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return "another fake-ccid-server or a QEMU listens there already (see ss -ltnp, or ss -lxp for a socket); stop it or choose another --listen address"
	case errors.Is(err, syscall.EACCES) && a.network == "unix":
		return fmt.Sprintf("this user may not create a socket in %s; choose a directory it can write", filepath.Dir(a.address))
	case errors.Is(err, syscall.EACCES):
		return fmt.Sprintf("port %s needs root or CAP_NET_BIND_SERVICE; choose a port above 1023", port)
	case errors.Is(err, syscall.ENOENT) && a.network == "unix":
		return fmt.Sprintf("the directory %s does not exist; create it (mkdir -p) or choose another path", filepath.Dir(a.address))
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Sprintf("%s is not an address of this machine (see ip addr); use 127.0.0.1, [::1] or one of its addresses", host)
	case errors.Is(err, syscall.ENAMETOOLONG), errors.Is(err, syscall.EINVAL) && a.network == "unix":
		return "a socket path has at most 107 bytes; choose a shorter one"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return fmt.Sprintf("%s does not resolve; use an IP address such as 127.0.0.1 or [::1]", host)
	}
	return listenForms
}

// removeStaleSocket removes the socket at path when nothing answers on it.
// Anything else there is an error: a live socket (another server), or a
// file that is no socket (never removed).
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listening on %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return cli.WithHint(fmt.Errorf("listening on %s: the path exists and is not a socket", path),
			"choose another path: fake-ccid-server replaces only a socket left by an earlier run")
	}
	if unixListening(path) {
		return cli.WithHint(fmt.Errorf("listening on %s: %w", path, syscall.EADDRINUSE),
			"another fake-ccid-server or a QEMU listens there already (see ss -lxp); stop it or choose another --listen path")
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("listening on %s: removing the old socket: %w", path, err)
	}
	return nil
}

// unixListening reports whether a socket listens at path, from
// /proc/net/unix (connecting to it would look like a client to the server
// there); where that cannot be read, it connects after all.
func unixListening(path string) bool {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	b, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		c, err := net.Dial("unix", path)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	// Num RefCount Protocol Flags Type St Inode Path; flag 0x10000 is
	// __SO_ACCEPTCON, a listening socket.
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 8 || f[7] != abs {
			continue
		}
		if flags, err := strconv.ParseUint(f[3], 16, 32); err == nil && flags&0x10000 != 0 {
			return true
		}
	}
	return false
}
