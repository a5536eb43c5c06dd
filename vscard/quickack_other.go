//go:build !linux

package vscard

const quickAckSupported = false

func setQuickAck(rc interface{ Control(func(fd uintptr)) error }) {}
