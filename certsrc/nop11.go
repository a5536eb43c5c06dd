//go:build !cgo

package certsrc

import "context"

// Without cgo there is no PKCS#11 binding: Open fails with
// ErrNoPKCS11Support, so no Store exists and the methods below, which
// complete the Store's type, are never reached.

// p11state and keyState are embedded in Store and slotEntry; only the
// cgo backend has fields for them.
//
//lint:ignore U1000 embedded in Store in every build, used by the cgo backend
type p11state struct{}

//lint:ignore U1000 embedded in slotEntry in every build, used by the cgo backend
type keyState struct{}

func open(context.Context, *URI, Config) (*Store, error) { return nil, ErrNoPKCS11Support }

func (s *Store) login([]byte) error                        { return ErrNoPKCS11Support }
func (s *Store) logout() error                             { return ErrNoPKCS11Support }
func (s *Store) pinStatus() (PINStatus, error)             { return PINStatus{}, ErrNoPKCS11Support }
func (s *Store) changePIN(_, _ []byte) error               { return ErrNoPKCS11Support }
func (s *Store) close() error                              { return nil }
func (s *Store) ecSign(*slotEntry, []byte) ([]byte, error) { return nil, ErrNoPKCS11Support }

func (s *Store) rsaRaw(*slotEntry, []byte, rawMode) ([]byte, error) {
	return nil, ErrNoPKCS11Support
}

func (s *Store) rsaSign(*slotEntry, rsaMech, []byte) ([]byte, error) {
	return nil, ErrNoPKCS11Support
}

func (s *Store) rsaDecrypt(*slotEntry, rsaMech, []byte) ([]byte, error) {
	return nil, ErrNoPKCS11Support
}

func (s *Store) ecDerive(*slotEntry, []byte, int) ([]byte, error) {
	return nil, ErrNoPKCS11Support
}
