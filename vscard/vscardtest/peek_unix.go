//go:build unix

package vscardtest

import "syscall"

// peerClosed reports, without consuming input, whether the peer of the
// socket fd closed it (or it failed). buf is a one-byte scratch buffer.
func peerClosed(fd uintptr, buf []byte) bool {
	n, _, err := syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return n == 0 && err == nil || err != nil && err != syscall.EAGAIN && err != syscall.EWOULDBLOCK
}
