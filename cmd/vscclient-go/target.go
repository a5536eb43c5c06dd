package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/vscardkit/vscardkit/internal/cli"
)

// portHint is the hint for a port the client cannot dial.
const portHint = "give the port of the VM's chardev, from 1 to 65535 (vscclient-go config prints it; QEMU's usual one is 2001)"

// checkPort checks a TCP port to dial: a number from 1 to 65535, or a
// service name that resolves.
func checkPort(port string) error {
	if port == "" {
		return errors.New("no port")
	}
	if n, err := strconv.Atoi(port); err == nil {
		if n < 1 || n > 65535 {
			return fmt.Errorf("port %d is out of range (1 to 65535)", n)
		}
		return nil
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("port %q is neither a number nor a known service name", port)
	}
	return nil
}

// checkHostPort checks the HOST:PORT of a tcp:// or tls:// target (or of
// one without a scheme); what it returns is a usage error for --connect s,
// with a hint.
func checkHostPort(s, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		if strings.Count(addr, ":") > 1 && !strings.HasPrefix(addr, "[") {
			i := strings.LastIndex(addr, ":")
			fixed := strings.Replace(s, addr, "["+addr[:i]+"]:"+addr[i+1:], 1)
			return cli.WithHint(cli.Usagef("--connect %q: an IPv6 address takes brackets before the port", s), "write --connect "+fixed)
		}
		return cli.WithHint(cli.Usagef("--connect %q: want HOST:PORT", s), connectHint)
	}
	if host == "" {
		return cli.WithHint(cli.Usagef("--connect %q: no host", s), connectHint)
	}
	if err := checkPort(port); err != nil {
		return cli.WithHint(cli.Usagef("--connect %q: %v", s, err), portHint)
	}
	return nil
}

const connectHint = "write HOST:PORT, tcp://HOST:PORT, tcp://[::1]:PORT, unix:/path/to/socket or tls://HOST:PORT"
