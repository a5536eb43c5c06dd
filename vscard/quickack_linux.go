package vscard

import "syscall"

const quickAckSupported = true

func setQuickAck(rc interface{ Control(func(fd uintptr)) error }) {
	rc.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
