// Package procnet reads the kernel's socket tables.
package procnet

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// Listening reports whether a TCP socket listens on addr's port (any local
// address), from /proc/net/tcp and /proc/net/tcp6. Unlike dialing, it does
// not connect, so a server that serves one client at a time (QEMU's chardev)
// does not see a client come and go.
func Listening(addr string) (bool, error) {
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return false, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return false, fmt.Errorf("procnet: bad port in %q", addr)
	}
	want := fmt.Sprintf(":%04X", port)
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			// sl local_address rem_address st ...; st 0A is LISTEN.
			if len(fields) > 3 && strings.HasSuffix(fields[1], want) && fields[3] == "0A" {
				fh.Close()
				return true, nil
			}
		}
		fh.Close()
	}
	return false, nil
}
