// Package procnet reads the kernel's socket tables.
package procnet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
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
	inodes, err := ListeningInodes(port)
	return len(inodes) > 0, err
}

// ListeningInodes returns the inodes of the TCP sockets (IPv4 and IPv6)
// listening on port, from /proc/net/tcp and /proc/net/tcp6; a process's
// /proc/PID/fd links name the same inodes ("socket:[INODE]").
func ListeningInodes(port int) ([]string, error) {
	want := fmt.Sprintf(":%04X", port)
	var inodes []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			if len(fields) > 9 && strings.HasSuffix(fields[1], want) && fields[3] == "0A" {
				inodes = append(inodes, fields[9])
			}
		}
		fh.Close()
	}
	return inodes, nil
}

// ErrExited is returned by WaitListening when the process that should
// listen exits first.
var ErrExited = errors.New("procnet: the process exited before listening")

// WaitListening waits until a TCP socket listens on addr, without
// connecting to it (see Listening), checking every 10 ms. It fails with
// ErrExited when exited (may be nil) is closed first, and with ctx's error
// when ctx ends first.
func WaitListening(ctx context.Context, addr string, exited <-chan struct{}) error {
	for {
		ok, err := Listening(addr)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%w (%s)", ErrExited, addr)
		case <-ctx.Done():
			return fmt.Errorf("procnet: nothing listens on %s: %w", addr, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
