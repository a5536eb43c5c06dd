//go:build !cgo || windows || darwin

package reader

import "fmt"

// establishStatus refuses: listing and watching use pcsc-lite through cgo
// (see sys_pcsclite.go for why not ebfe/scard's GetStatusChange).
func establishStatus() (statusContext, error) {
	return nil, fmt.Errorf("%w: reader status needs pcsc-lite and cgo", ErrUnsupported)
}
