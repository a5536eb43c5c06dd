//go:build !linux

package vscard

import "time"

const quickAckSupported = false

func setQuickAck(rc interface{ Control(func(fd uintptr)) error }) {}

func setUserTimeout(fd uintptr, d time.Duration) error { return nil }
