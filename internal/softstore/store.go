package softstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"

	"github.com/vscardkit/vscardkit/internal/piv"
)

// DefaultPIN is the PIN when Options.PIN is empty.
const DefaultPIN = "123456"

// DefaultMaxTries is how many wrong PINs in a row block the PIN when
// Options.MaxTries is zero.
const DefaultMaxTries = 3

// Options configures a Store. The zero value is ready to use.
type Options struct {
	// PIN is the PIN: 1 to 8 bytes, none of them FF (PIV pads PINs with
	// FF). Empty means DefaultPIN.
	PIN string

	// MaxTries is how many wrong PINs in a row block the PIN. Zero means
	// DefaultMaxTries.
	MaxTries int

	// Serial is what Store.Serial returns, from which the applet derives
	// the card's GUID. Nil means a hash of the certificates, so the same
	// files give the same card.
	Serial []byte
}

// KeyPair is one slot's certificate and private key.
type KeyPair struct {
	// Certificate is the DER X.509 certificate.
	Certificate []byte
	// Key is the private key: *rsa.PrivateKey or *ecdsa.PrivateKey (P-256
	// or P-384). Its public key must be the certificate's.
	Key crypto.Signer
}

// ErrBadKeyPair is wrapped by New and Load for a key pair they cannot use.
var ErrBadKeyPair = errors.New("softstore: unusable key pair")

// Store is a piv.Store (and piv.PINChanger) in memory. It is safe for
// concurrent use.
type Store struct {
	serial []byte
	certs  map[piv.Slot][]byte
	keys   map[piv.Slot]piv.PrivateKey

	mu  sync.Mutex
	pin pinState
}

// New returns a store holding slots. The map and the keys are not copied; the
// caller must not change them afterwards.
func New(slots map[piv.Slot]KeyPair, opts Options) (*Store, error) {
	if len(slots) == 0 {
		return nil, errors.New("softstore: no key pairs")
	}
	s := &Store{certs: map[piv.Slot][]byte{}, keys: map[piv.Slot]piv.PrivateKey{}}
	serial := sha256.New()
	for _, slot := range piv.Slots {
		kp, ok := slots[slot]
		if !ok {
			continue
		}
		key, err := s.wrapKey(slot, kp)
		if err != nil {
			return nil, err
		}
		s.certs[slot] = kp.Certificate
		s.keys[slot] = key
		serial.Write([]byte{byte(slot)})
		serial.Write(kp.Certificate)
	}
	if len(s.keys) != len(slots) {
		return nil, fmt.Errorf("%w: a key pair is in a slot other than 9A, 9C, 9D, 9E", ErrBadKeyPair)
	}
	s.serial = opts.Serial
	if s.serial == nil {
		s.serial = serial.Sum(nil)[:16]
	}
	if err := s.pin.init(opts); err != nil {
		return nil, err
	}
	return s, nil
}

// wrapKey checks a key pair and wraps its key as a piv.RSAKey or piv.ECKey.
func (s *Store) wrapKey(slot piv.Slot, kp KeyPair) (piv.PrivateKey, error) {
	cert, err := x509.ParseCertificate(kp.Certificate)
	if err != nil {
		return nil, fmt.Errorf("%w: slot %v: parsing the certificate: %w", ErrBadKeyPair, slot, err)
	}
	if kp.Key == nil {
		return nil, fmt.Errorf("%w: slot %v: no private key", ErrBadKeyPair, slot)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if pub, ok := kp.Key.Public().(equaler); !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%w: slot %v: the key is not the certificate's", ErrBadKeyPair, slot)
	}
	switch k := kp.Key.(type) {
	case *rsa.PrivateKey:
		switch k.N.BitLen() {
		case 1024, 2048, 3072, 4096:
		default:
			return nil, fmt.Errorf("%w: slot %v: RSA %d bits (PIV knows 1024, 2048, 3072, 4096)", ErrBadKeyPair, slot, k.N.BitLen())
		}
		if err := k.Validate(); err != nil {
			return nil, fmt.Errorf("%w: slot %v: %w", ErrBadKeyPair, slot, err)
		}
		if k.Precomputed.Dp == nil { // generated and parsed keys come precomputed
			k.Precompute()
		}
		return &rsaKey{s: s, slot: slot, priv: k}, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("%w: slot %v: curve %s (PIV knows P-256 and P-384)", ErrBadKeyPair, slot, k.Curve.Params().Name)
		}
		return &ecKey{s: s, slot: slot, priv: k}, nil
	}
	return nil, fmt.Errorf("%w: slot %v: key type %T (want RSA or ECDSA)", ErrBadKeyPair, slot, kp.Key)
}

// Serial returns Options.Serial, or 16 bytes of a hash of the certificates.
func (s *Store) Serial() []byte { return append([]byte(nil), s.serial...) }

// Certificate returns the DER certificate in slot.
func (s *Store) Certificate(slot piv.Slot) ([]byte, error) {
	der, ok := s.certs[slot]
	if !ok {
		return nil, fmt.Errorf("softstore: slot %v: no certificate: %w", slot, piv.ErrNotFound)
	}
	return append([]byte(nil), der...), nil
}

// PrivateKey returns the key in slot, a piv.RSAKey or a piv.ECKey.
func (s *Store) PrivateKey(slot piv.Slot) (piv.PrivateKey, error) {
	k, ok := s.keys[slot]
	if !ok {
		return nil, fmt.Errorf("softstore: slot %v: no key: %w", slot, piv.ErrNotFound)
	}
	return k, nil
}

// checkAccess is the key access rule: 9E is free, the others need the PIN.
func (s *Store) checkAccess(slot piv.Slot) error {
	if slot == piv.SlotCardAuthentication {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.pin.loggedIn {
		return fmt.Errorf("softstore: slot %v: %w", slot, piv.ErrNotLoggedIn)
	}
	return nil
}

// Login checks pin: nil and logged in when right, a *piv.PINError when
// wrong, an error wrapping piv.ErrPINBlocked when blocked.
func (s *Store) Login(pin []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pin.check(pin)
}

// Logout ends the logged-in state.
func (s *Store) Logout() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pin.loggedIn = false
	return nil
}

// PINStatus reports whether the PIN is logged in and the tries left.
func (s *Store) PINStatus() (piv.PINStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return piv.PINStatus{LoggedIn: s.pin.loggedIn, Retries: s.pin.left, Blocked: s.pin.left == 0}, nil
}

// ChangePIN replaces the PIN when oldPIN is right (a wrong one counts as a
// wrong PIN). newPIN must be 1 to 8 bytes without FF, or the error wraps
// piv.ErrPINFormat.
func (s *Store) ChangePIN(oldPIN, newPIN []byte) error {
	if err := checkPINFormat(newPIN); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.pin.check(oldPIN); err != nil {
		return err
	}
	s.pin.set(newPIN)
	return nil
}
