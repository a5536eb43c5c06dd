package vscard

import (
	"errors"
	"syscall"
)

// isReset reports whether err is the peer's reset of the connection. On
// Windows it is Winsock's WSAECONNRESET, which syscall.ECONNRESET (an
// errno Go invents there) does not match.
func isReset(err error) bool {
	return errors.Is(err, syscall.WSAECONNRESET) || errors.Is(err, syscall.ECONNRESET)
}
