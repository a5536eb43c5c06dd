//go:build !cgo && !windows

package reader

import "context"

// A build for Linux or macOS without cgo has no PC/SC: pcsc-lite and
// PCSC.framework are C libraries, and github.com/ebfe/scard needs cgo
// outside Windows. The package still compiles, and every entry point fails
// with errNoPCSC, which matches ErrUnsupported.

// noPCSCError is the error of every PC/SC entry point in a build without
// cgo.
type noPCSCError struct{}

func (noPCSCError) Error() string {
	return "reader: this build has no PC/SC support (built without cgo)"
}

// Is matches ErrUnsupported.
func (noPCSCError) Is(target error) bool { return target == ErrUnsupported }

var errNoPCSC error = noPCSCError{}

func establishStatus() (statusContext, error) { return nil, errNoPCSC }

// Card is a connection to the card in a reader. In this build (no cgo)
// there is none: Connect always fails.
type Card struct{ _ struct{} }

// Connect fails: this build has no PC/SC support. The error matches
// ErrUnsupported.
func Connect(ctx context.Context, reader string, opts *ConnectOptions) (*Card, error) {
	return nil, errNoPCSC
}

// Reader returns "" (no card can be connected in this build).
func (c *Card) Reader() string { return "" }

// ATR returns nil (no card can be connected in this build).
func (c *Card) ATR() []byte { return nil }

// Protocol returns 0 (no card can be connected in this build).
func (c *Card) Protocol() Protocol { return 0 }

// Transmit fails with an error matching ErrUnsupported.
func (c *Card) Transmit(ctx context.Context, cmd []byte) ([]byte, error) { return nil, errNoPCSC }

// Reconnect fails with an error matching ErrUnsupported.
func (c *Card) Reconnect(ctx context.Context, reset bool) error { return errNoPCSC }

// Close does nothing.
func (c *Card) Close() error { return nil }
