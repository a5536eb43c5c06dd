package piv

import (
	"crypto"
	"crypto/ecdh"
	"errors"
	"fmt"
)

// Slot is a PIV key reference (NIST SP 800-73-4 part 1, table 4b).
type Slot byte

// The four key slots the applet presents.
const (
	SlotAuthentication     Slot = 0x9A // PIV Authentication
	SlotSignature          Slot = 0x9C // Digital Signature
	SlotKeyManagement      Slot = 0x9D // Key Management
	SlotCardAuthentication Slot = 0x9E // Card Authentication
)

// Slots lists the key slots in the order the applet presents them.
var Slots = []Slot{SlotAuthentication, SlotSignature, SlotKeyManagement, SlotCardAuthentication}

func (s Slot) String() string { return fmt.Sprintf("%02X", byte(s)) }

// Store is what the applet knows of the token that holds its certificates and
// keys: a PKCS#11 token (certsrc, through internal/tokenstore) or the
// software store. The applet never sees key material, only operations.
//
// Implementations must be safe for use by one goroutine at a time; the applet
// serialises its calls.
type Store interface {
	// Serial returns bytes that identify the token and stay the same across
	// restarts (for example the PKCS#11 token serial and label). The applet
	// derives the CHUID's GUID and FASC-N from them.
	Serial() []byte

	// Certificate returns the DER X.509 certificate in slot, or an error
	// wrapping ErrNotFound when the slot is empty.
	Certificate(slot Slot) ([]byte, error)

	// PrivateKey returns the private key in slot (an RSAKey or an ECKey), or
	// an error wrapping ErrNotFound.
	PrivateKey(slot Slot) (PrivateKey, error)

	// Login verifies pin against the token. A wrong PIN returns a *PINError
	// with the tries left; a blocked PIN returns an error wrapping
	// ErrPINBlocked. The store must not keep pin after Login returns.
	Login(pin []byte) error

	// Logout ends the logged-in state (card reset or removed).
	Logout() error

	// PINStatus reports the PIN's state without trying a PIN.
	PINStatus() (PINStatus, error)
}

// PINStatus is the state of the PIN as the token reports it.
type PINStatus struct {
	LoggedIn bool // Login succeeded and no Logout since.
	Retries  int  // Tries left, or -1 when the token does not say.
	Blocked  bool // No tries left: VERIFY answers 6983.
}

// PrivateKey is a private key held by a Store.
type PrivateKey interface {
	Public() crypto.PublicKey
}

// RSAKey is an RSA private key. PIV clients send the whole padded block (PKCS
// #1 v1.5 or PSS for signing, the ciphertext for key management), so the one
// operation is the raw private-key function.
type RSAKey interface {
	PrivateKey
	// RSARaw computes block^d mod n. block and the result are as long as the
	// modulus.
	RSARaw(block []byte) ([]byte, error)
}

// ECKey is an EC private key on P-256 or P-384.
type ECKey interface {
	PrivateKey
	// Sign signs digest (already hashed and, as PIV does, truncated or left
	// padded to the curve size) with ECDSA and returns the ASN.1 DER
	// signature, as crypto.Signer does.
	crypto.Signer
	// ECDH returns the shared secret (the x coordinate) with peer.
	ECDH(peer *ecdh.PublicKey) ([]byte, error)
}

// ErrNotFound is wrapped by Store errors for an empty slot.
var ErrNotFound = errors.New("piv: not found")

// ErrPINBlocked is wrapped by Store errors when the PIN is blocked.
var ErrPINBlocked = errors.New("piv: PIN blocked")

// PINError is a wrong PIN: verification failed and Retries tries are left
// (-1 when unknown).
type PINError struct {
	Retries int
}

func (e *PINError) Error() string {
	if e.Retries < 0 {
		return "piv: wrong PIN"
	}
	return fmt.Sprintf("piv: wrong PIN, %d tries left", e.Retries)
}
