package certsrc

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors from the token also wrap the pkcs11.Error that
// carries the CKR_ code (match it with errors.As); a wrong PIN is a
// *PINError.
var (
	// ErrNoPKCS11Support: this program was built without cgo, which the
	// PKCS#11 binding needs, so Open cannot load a module. Everything else
	// (ParseURI, ParseSlotMapping, URI.ModuleFile) works.
	ErrNoPKCS11Support = errors.New("certsrc: this build has no PKCS#11 support (built without cgo)")

	// ErrNoModule: the URI names no module, or the module cannot be found
	// or loaded.
	ErrNoModule = errors.New("certsrc: no PKCS#11 module")

	// ErrTokenNotFound: no initialised token matches the URI.
	ErrTokenNotFound = errors.New("certsrc: no token matches the URI")

	// ErrAmbiguousToken: more than one token matches the URI; add serial=
	// or token= to it.
	ErrAmbiguousToken = errors.New("certsrc: more than one token matches the URI")

	// ErrTokenRemoved: the token went away (removed, its session
	// invalidated, its store deleted). The Store tries to open a new
	// session at its next call; until the token is back, calls fail with
	// this error.
	ErrTokenRemoved = errors.New("certsrc: token not present")

	// ErrNotFound: the slot is empty, or its certificate's private key is
	// not on the token (after Login), or a selector matches no certificate.
	ErrNotFound = errors.New("certsrc: not found")

	// ErrNotLoggedIn: the operation needs the user to be logged in
	// (CKR_USER_NOT_LOGGED_IN, or the private key is invisible before
	// login).
	ErrNotLoggedIn = errors.New("certsrc: not logged in")

	// ErrPINBlocked: the token's PIN is locked (CKF_USER_PIN_LOCKED or
	// CKR_PIN_LOCKED); no PIN is tried.
	ErrPINBlocked = errors.New("certsrc: PIN blocked")

	// ErrPINFormat: the token refused a new PIN's length or characters.
	ErrPINFormat = errors.New("certsrc: PIN format not accepted")

	// ErrMapping: a slot mapping is malformed, or names objects the token
	// does not have (or has more than one of).
	ErrMapping = errors.New("certsrc: bad slot mapping")

	// ErrKeyMismatch: the private key found by CKA_ID does not belong to
	// the certificate (different modulus or curve point).
	ErrKeyMismatch = errors.New("certsrc: private key does not match the certificate")

	// ErrUnsupportedKey: the key cannot be used by a PIV card (type or
	// size), needs what certsrc does not do (CKA_ALWAYS_AUTHENTICATE), or
	// the token does not offer the operation asked of it (a mechanism it
	// does not list or refuses for the key, a usage the key does not
	// permit).
	ErrUnsupportedKey = errors.New("certsrc: unsupported key")

	// ErrBadInput: an operation's input has the wrong size or value, or
	// its options are not ones the operation takes.
	ErrBadInput = errors.New("certsrc: bad input")

	// ErrClosed: the Store was closed.
	ErrClosed = errors.New("certsrc: store closed")
)

// PINError is a wrong PIN: the token refused it and Retries tries are left
// (-1 when unknown; see the package documentation for how the count is
// modelled). Match it with errors.As.
type PINError struct {
	Retries int
}

func (e *PINError) Error() string {
	if e.Retries < 0 {
		return "certsrc: wrong PIN"
	}
	return fmt.Sprintf("certsrc: wrong PIN, %d tries left", e.Retries)
}

// noMechError is returned by a backend operation when the token does not
// offer the mechanism (it is not in the token's list, or C_*Init answers
// CKR_MECHANISM_INVALID), so that the caller may try another way. It
// matches ErrUnsupportedKey.
type noMechError struct {
	mech string // "CKM_RSA_PKCS_PSS"
	slot Slot
}

func (e *noMechError) Error() string {
	return fmt.Sprintf("%v: slot %s: the token does not offer %s", ErrUnsupportedKey, e.slot, e.mech)
}

func (e *noMechError) Unwrap() error { return ErrUnsupportedKey }
