//go:build !linux

package sdnotify

// monotonicUsec has no CLOCK_MONOTONIC to read outside Linux (nor a
// systemd to send it to).
func monotonicUsec() (int64, bool) { return 0, false }
