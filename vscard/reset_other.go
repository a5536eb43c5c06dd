//go:build !windows

package vscard

import (
	"errors"
	"syscall"
)

// isReset reports whether err is the peer's reset of the connection.
func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }
