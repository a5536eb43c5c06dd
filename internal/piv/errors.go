package piv

import "errors"

// ErrNotLoggedIn may be wrapped by a key operation's error when the token
// refuses it because no user is logged in; the applet answers 6982 (security
// status not satisfied).
var ErrNotLoggedIn = errors.New("piv: not logged in")

// ErrPINFormat may be wrapped by PINChanger.ChangePIN's error when the token
// does not accept the new PIN's length or characters; the applet answers
// 6A80.
var ErrPINFormat = errors.New("piv: PIN format not accepted")

// PINChanger is implemented by stores that can change the PIN. The applet
// uses it, when the store has it, for CHANGE REFERENCE DATA; otherwise that
// command answers 6A81 (function not supported).
type PINChanger interface {
	// ChangePIN verifies oldPIN and, if it is right, replaces it with
	// newPIN. A wrong oldPIN counts as a wrong PIN: it returns a *PINError,
	// or an error wrapping ErrPINBlocked. An error wrapping
	// errors.ErrUnsupported means the store cannot change PINs after all.
	// The store must not keep either PIN after the call.
	ChangePIN(oldPIN, newPIN []byte) error
}
