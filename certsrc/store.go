package certsrc

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"log/slog"
	"slices"
	"sync"
)

// DefaultPINRetries is the nominal number of PIN tries a Store reports when
// Config.PINRetries is zero. PKCS#11 has no attribute for it; 3 is what
// PIV cards ship with (the YubiKey default, and the usual issuer policy).
const DefaultPINRetries = 3

// Config configures a Store. The zero value maps every slot by default and
// reports DefaultPINRetries.
type Config struct {
	// Slots places certificates in slots explicitly (see ParseSlotMapping);
	// slots it does not name are filled by the default mapping, and a
	// Selector with None leaves its slot empty. Nil: default mapping only.
	Slots map[Slot]Selector

	// PINRetries is the nominal number of PIN tries of the token (see the
	// package documentation). Zero means DefaultPINRetries; a negative
	// value makes the Store report -1 (unknown) unless the token's flags
	// say more.
	PINRetries int

	// Logger receives debug and info messages (never a PIN or key
	// material). Nil: no logging.
	Logger *slog.Logger
}

// TokenInfo identifies the token a Store uses (the fields of CK_TOKEN_INFO
// with their padding removed).
type TokenInfo struct {
	Label        string
	Manufacturer string
	Model        string
	Serial       string
}

// String describes the token for messages.
func (t TokenInfo) String() string {
	return fmt.Sprintf("token %q (%s %s, serial %s)", t.Label, t.Manufacturer, t.Model, t.Serial)
}

// LeftOut is a certificate of the token that the Store presents in no slot.
type LeftOut struct {
	ID          []byte // CKA_ID
	Label       string // CKA_LABEL
	Certificate *x509.Certificate
	// Reason says why: a CA certificate, no CKA_ID, a key PIV cannot
	// hold, a key usage no slot takes, or slots taken by others.
	Reason string
	// Slot is where Config.Slots could place it instead (a free slot, 9A
	// when all are taken), unless its key cannot go in any (then 0).
	Slot Slot
}

// SlotInfo describes what a Store presents in a slot.
type SlotInfo struct {
	Slot        Slot
	ID          []byte            // CKA_ID of the certificate and its private key
	Label       string            // CKA_LABEL of the certificate
	Certificate *x509.Certificate // parsed certificate
	Reason      string            // "explicit id:01" or "default from key usage"
}

// PINStatus is the state of the token's user PIN.
type PINStatus struct {
	LoggedIn bool // Login succeeded and no Logout since (in this application)
	Retries  int  // tries left, as the package documentation describes; -1 when unknown
	Blocked  bool // the PIN is locked: Login fails with ErrPINBlocked
}

// Store presents the certificates and private keys of one PKCS#11 token by
// PIV slot: a certificate per slot, and its private key as a
// crypto.Signer (an *RSAKey or an *ECKey) whose operations run in the
// token.
//
// A Store is safe for concurrent use (calls are serialised). Close it to
// log out and release the module.
type Store struct {
	log     *slog.Logger
	token   TokenInfo
	nominal int
	slots   map[Slot]*slotEntry
	leftOut []LeftOut

	mu     sync.Mutex
	closed bool
	p11state
}

// slotEntry is a filled slot.
type slotEntry struct {
	slot   Slot
	obj    *certObject
	reason string
	key    crypto.Signer // *RSAKey or *ECKey

	keyState // the private key's handle, valid within one login generation
}

var (
	_ crypto.Signer    = (*RSAKey)(nil)
	_ crypto.Decrypter = (*RSAKey)(nil)
	_ crypto.Signer    = (*ECKey)(nil)
)

// Open loads the module u names, finds the one initialised token u matches,
// reads its X.509 certificates and maps them to PIV slots. It does not log
// in: the PIN comes later, through Login.
//
// Errors wrap ErrNoModule, ErrTokenNotFound, ErrAmbiguousToken or
// ErrMapping, and the pkcs11.Error of a failed call. In a build without cgo
// Open always fails with ErrNoPKCS11Support.
func Open(ctx context.Context, u *URI, cfg Config) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("certsrc: open: %w", err)
	}
	if u == nil {
		return nil, fmt.Errorf("%w: nil URI", ErrBadURI)
	}
	return open(ctx, u, cfg)
}

// newStore returns a Store not yet bound to a token.
func newStore(cfg Config) *Store {
	s := &Store{log: cfg.Logger, nominal: cfg.PINRetries}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.nominal == 0 {
		s.nominal = DefaultPINRetries
	}
	return s
}

// fill maps certs to slots and makes their keys.
func (s *Store) fill(certs []*certObject, explicit map[Slot]Selector) error {
	as, err := mapSlots(certs, explicit)
	if err != nil {
		return err
	}
	s.slots = make(map[Slot]*slotEntry)
	for slot, a := range as {
		e := &slotEntry{slot: slot, obj: a.obj, reason: a.reason}
		switch pub := a.obj.cert.PublicKey.(type) {
		case *rsa.PublicKey:
			e.key = &RSAKey{s: s, e: e, pub: pub}
		case *ecdsa.PublicKey:
			e.key = &ECKey{s: s, e: e, pub: pub}
		default: // mapSlots admits only the two
			return fmt.Errorf("%w: slot %s: %T", ErrUnsupportedKey, slot, pub)
		}
		s.slots[slot] = e
		s.log.Debug("certsrc: slot mapped", "slot", slot.String(), "id", fmt.Sprintf("%x", a.obj.id),
			"label", a.obj.label, "subject", a.obj.cert.Subject.String(), "reason", a.reason)
	}
	s.leftOut = nil
	placed := map[*certObject]bool{}
	for _, a := range as {
		placed[a.obj] = true
	}
	for _, c := range certs {
		if placed[c] {
			continue
		}
		lo := LeftOut{ID: append([]byte(nil), c.id...), Label: c.label, Certificate: c.cert, Reason: leftOutReason(c)}
		if len(c.id) > 0 && checkKey(c.cert.PublicKey) == nil {
			lo.Slot = SlotAuthentication
			for _, slot := range slotOrder {
				if _, taken := as[slot]; !taken {
					lo.Slot = slot
					break
				}
			}
		}
		s.leftOut = append(s.leftOut, lo)
	}
	return nil
}

// LeftOut lists the certificates of the token that no slot presents, and
// why, in the token's order.
func (s *Store) LeftOut() []LeftOut { return slices.Clone(s.leftOut) }

// Token returns the identity of the token.
func (s *Store) Token() TokenInfo { return s.token }

// Slots describes the filled slots, in the order of the package's Slots.
func (s *Store) Slots() []SlotInfo {
	var out []SlotInfo
	for _, slot := range slotOrder {
		if e := s.slots[slot]; e != nil {
			out = append(out, SlotInfo{Slot: slot, ID: append([]byte(nil), e.obj.id...), Label: e.obj.label,
				Certificate: e.obj.cert, Reason: e.reason})
		}
	}
	return out
}

// Certificate returns the certificate in slot, or an error wrapping
// ErrNotFound when the slot is empty. Certificates are read at Open; this
// does not touch the token. The certificate is shared: do not modify it.
func (s *Store) Certificate(slot Slot) (*x509.Certificate, error) {
	e := s.slots[slot]
	if e == nil {
		return nil, fmt.Errorf("certsrc: slot %s: %w", slot, ErrNotFound)
	}
	return e.obj.cert, nil
}

// PrivateKey returns the private key of the certificate in slot: an
// *RSAKey (a crypto.Signer and crypto.Decrypter) or an *ECKey (a
// crypto.Signer with ECDH), whose operations run in the token after Login.
// An empty slot gives an error wrapping ErrNotFound. The private key object
// itself is looked up at the key's first use.
func (s *Store) PrivateKey(slot Slot) (crypto.Signer, error) {
	e := s.slots[slot]
	if e == nil {
		return nil, fmt.Errorf("certsrc: slot %s: %w", slot, ErrNotFound)
	}
	return e.key, nil
}

// Login verifies pin with C_Login(CKU_USER). pin is passed to the module
// and not kept. A wrong PIN returns an error wrapping a *PINError (tries
// left, as the package documentation describes) and the pkcs11.Error; a
// locked PIN one wrapping ErrPINBlocked. When the user is already logged
// in, Login logs out and verifies pin again, so a wrong PIN never passes.
func (s *Store) Login(pin []byte) error { return s.login(pin) }

// Logout logs the user out with C_Logout. Logging out of a token that went
// away succeeds: it is logged out.
func (s *Store) Logout() error { return s.logout() }

// PINStatus reports the PIN's state, from the token's flags and session
// state, without trying a PIN.
func (s *Store) PINStatus() (PINStatus, error) { return s.pinStatus() }

// ChangePIN verifies oldPIN and replaces it with newPIN (C_SetPIN, in a
// read-write session opened for the call). Neither PIN is kept. A wrong
// oldPIN counts as a wrong PIN, as in Login; a newPIN the token refuses
// (CKR_PIN_LEN_RANGE, CKR_PIN_INVALID) gives an error wrapping
// ErrPINFormat; a token that cannot change PINs (read-only,
// write-protected, or without C_SetPIN) one wrapping errors.ErrUnsupported.
func (s *Store) ChangePIN(oldPIN, newPIN []byte) error { return s.changePIN(oldPIN, newPIN) }

// Close logs out, closes the session and releases the module (the last
// Store using a module calls C_Finalize and unloads it). Keys of a closed
// Store fail with ErrClosed. Close is idempotent.
func (s *Store) Close() error { return s.close() }
