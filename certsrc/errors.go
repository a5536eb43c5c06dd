package certsrc

import (
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
	"github.com/vscardkit/vscardkit/internal/piv"
)

// Sentinel errors. Errors from the token also wrap the pkcs11.Error that
// carries the CKR_ code (match it with errors.As); wrong-PIN and blocked-PIN
// errors wrap *piv.PINError and piv.ErrPINBlocked, an empty slot
// piv.ErrNotFound, and ErrNotLoggedIn and ErrPINFormat match the piv
// sentinels of the same name.
var (
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

	// ErrNotLoggedIn: the operation needs the user to be logged in
	// (CKR_USER_NOT_LOGGED_IN, or the private key is invisible before
	// login). It also matches piv.ErrNotLoggedIn, so the applet answers
	// 6982.
	ErrNotLoggedIn error = &sentinel{"certsrc: not logged in", piv.ErrNotLoggedIn}

	// ErrMapping: a slot mapping is malformed, or names objects the token
	// does not have (or has more than one of).
	ErrMapping = errors.New("certsrc: bad slot mapping")

	// ErrKeyMismatch: the private key found by CKA_ID does not belong to
	// the certificate (different modulus or curve point).
	ErrKeyMismatch = errors.New("certsrc: private key does not match the certificate")

	// ErrUnsupportedKey: the key cannot be used by a PIV card (type or
	// size), or needs what certsrc does not do (CKA_ALWAYS_AUTHENTICATE).
	ErrUnsupportedKey = errors.New("certsrc: unsupported key")

	// ErrPINFormat: the token refused a new PIN's length or characters.
	// It also matches piv.ErrPINFormat.
	ErrPINFormat error = &sentinel{"certsrc: PIN format not accepted", piv.ErrPINFormat}

	// ErrBadInput: an operation's input has the wrong size or value.
	ErrBadInput = errors.New("certsrc: bad input")

	// ErrClosed: the Store was closed.
	ErrClosed = errors.New("certsrc: store closed")
)

// sentinel is a certsrc sentinel that also matches the piv sentinel for the
// same condition, without repeating its text.
type sentinel struct {
	msg string
	piv error
}

func (e *sentinel) Error() string { return e.msg }
func (e *sentinel) Unwrap() error { return e.piv }

// ckr returns the CKR_ code err carries, if any.
func ckr(err error) (uint, bool) {
	var e pkcs11.Error
	if errors.As(err, &e) {
		return uint(e), true
	}
	return 0, false
}

// removedCode reports whether code says that the session or the token is
// gone, so that the session must be re-opened.
func removedCode(code uint) bool {
	switch code {
	case pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED,
		pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_TOKEN_NOT_PRESENT,
		pkcs11.CKR_TOKEN_NOT_RECOGNIZED, pkcs11.CKR_SLOT_ID_INVALID,
		pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED:
		return true
	}
	return false
}

// suspectCode reports whether code may mean that the token went away
// without saying so: softhsm2 answers CKR_GENERAL_ERROR and
// CKR_OBJECT_HANDLE_INVALID once its token directory is gone, while the
// session stays valid. The Store then checks whether the token is still
// there.
func suspectCode(code uint) bool {
	switch code {
	case pkcs11.CKR_GENERAL_ERROR, pkcs11.CKR_DEVICE_ERROR, pkcs11.CKR_FUNCTION_FAILED,
		pkcs11.CKR_OBJECT_HANDLE_INVALID, pkcs11.CKR_KEY_HANDLE_INVALID:
		return true
	}
	return false
}

// opError wraps a PKCS#11 failure of op.
func opError(op string, err error) error {
	return fmt.Errorf("certsrc: %s: %w", op, err)
}
