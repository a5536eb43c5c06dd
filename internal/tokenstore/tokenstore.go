// Package tokenstore presents a PKCS#11 token, opened with package certsrc,
// to the PIV applet: a Store is a piv.Store and a piv.PINChanger over a
// *certsrc.Store.
//
// certsrc is public and names none of the applet's types; this adapter is
// the one place that knows both. It maps
//
//   - slots: a piv.Slot and a certsrc.Slot are the same key reference
//     (NIST SP 800-73-4 part 1, table 4b), converted byte for byte;
//   - certificates: the DER of the certificate certsrc parsed at Open;
//   - keys: a *certsrc.RSAKey becomes a piv.RSAKey whose RSARaw is the
//     key's Raw (the client pads, the token computes block^d mod n), a
//     *certsrc.ECKey a piv.ECKey (Sign and ECDH);
//   - the PIN: Login, Logout, PINStatus and ChangePIN, field for field;
//   - errors: an error from certsrc keeps its message and its certsrc
//     chain, and also matches the applet's error for the same condition,
//     so that the applet answers the status word it always has:
//     certsrc.ErrNotFound is piv.ErrNotFound (6A82 for a certificate,
//     6A88 for a key), certsrc.ErrNotLoggedIn
//     piv.ErrNotLoggedIn (6982), certsrc.ErrPINBlocked piv.ErrPINBlocked
//     (6983), certsrc.ErrPINFormat piv.ErrPINFormat (6A80) and a
//     *certsrc.PINError a *piv.PINError with the same Retries (63Cx).
//     errors.ErrUnsupported (6A81) passes through as it is.
//
// Serial is the token's manufacturer, model, serial number and label, each
// preceded by its length in one byte: what the applet derives the CHUID's
// GUID and FASC-N from, so a token presents the same card across restarts.
package tokenstore

import (
	"crypto"
	"crypto/ecdh"
	"errors"
	"io"

	"github.com/vscardkit/vscardkit/certsrc"
	"github.com/vscardkit/vscardkit/internal/piv"
)

// Store is a *certsrc.Store as the applet's piv.Store and piv.PINChanger.
// It is safe for concurrent use, as the certsrc.Store is. It does not own
// the certsrc.Store: close that when done.
type Store struct {
	s      *certsrc.Store
	serial []byte
	keys   map[piv.Slot]piv.PrivateKey
}

var (
	_ piv.Store      = (*Store)(nil)
	_ piv.PINChanger = (*Store)(nil)
	_ piv.RSAKey     = rsaKey{}
	_ piv.ECKey      = ecKey{}
)

// New returns the applet's view of s.
func New(s *certsrc.Store) *Store {
	t := &Store{s: s, serial: serial(s.Token()), keys: make(map[piv.Slot]piv.PrivateKey)}
	for _, in := range s.Slots() {
		k, err := s.PrivateKey(in.Slot)
		if err != nil {
			continue // Slots lists filled slots only
		}
		switch k := k.(type) {
		case *certsrc.RSAKey:
			t.keys[pivSlot(in.Slot)] = rsaKey{k}
		case *certsrc.ECKey:
			t.keys[pivSlot(in.Slot)] = ecKey{k}
		}
	}
	return t
}

// pivSlot and tokenSlot convert a key reference between the two packages.
func pivSlot(s certsrc.Slot) piv.Slot   { return piv.Slot(s) }
func tokenSlot(s piv.Slot) certsrc.Slot { return certsrc.Slot(s) }

// serial is what Serial returns for the token t: manufacturer, model,
// serial number and label, each preceded by its length in one byte (a
// field is cut at 255 bytes).
func serial(t certsrc.TokenInfo) []byte {
	var b []byte
	for _, f := range []string{t.Manufacturer, t.Model, t.Serial, t.Label} {
		if len(f) > 255 {
			f = f[:255]
		}
		b = append(b, byte(len(f)))
		b = append(b, f...)
	}
	return b
}

// Serial implements piv.Store (see the package documentation). It does
// not change while the token exists.
func (t *Store) Serial() []byte { return append([]byte(nil), t.serial...) }

// Certificate implements piv.Store: the DER of the certificate in slot.
func (t *Store) Certificate(slot piv.Slot) ([]byte, error) {
	c, err := t.s.Certificate(tokenSlot(slot))
	if err != nil {
		return nil, translate(err)
	}
	return append([]byte(nil), c.Raw...), nil
}

// PrivateKey implements piv.Store: a piv.RSAKey or a piv.ECKey whose
// operations run in the token.
func (t *Store) PrivateKey(slot piv.Slot) (piv.PrivateKey, error) {
	if k := t.keys[slot]; k != nil {
		return k, nil
	}
	_, err := t.s.PrivateKey(tokenSlot(slot))
	if err == nil { // a key type New did not know: certsrc makes only the two
		err = certsrc.ErrUnsupportedKey
	}
	return nil, translate(err)
}

// Login implements piv.Store with certsrc's Login.
func (t *Store) Login(pin []byte) error { return translate(t.s.Login(pin)) }

// Logout implements piv.Store.
func (t *Store) Logout() error { return translate(t.s.Logout()) }

// PINStatus implements piv.Store.
func (t *Store) PINStatus() (piv.PINStatus, error) {
	st, err := t.s.PINStatus()
	if err != nil {
		return piv.PINStatus{}, translate(err)
	}
	return piv.PINStatus{LoggedIn: st.LoggedIn, Retries: st.Retries, Blocked: st.Blocked}, nil
}

// ChangePIN implements piv.PINChanger with certsrc's ChangePIN.
func (t *Store) ChangePIN(oldPIN, newPIN []byte) error {
	return translate(t.s.ChangePIN(oldPIN, newPIN))
}

// rsaKey is a certsrc RSA key as a piv.RSAKey.
type rsaKey struct{ k *certsrc.RSAKey }

func (k rsaKey) Public() crypto.PublicKey { return k.k.Public() }

// RSARaw is the key's Raw: the client padded block, to the power d.
func (k rsaKey) RSARaw(block []byte) ([]byte, error) {
	out, err := k.k.Raw(block)
	return out, translate(err)
}

// ecKey is a certsrc EC key as a piv.ECKey.
type ecKey struct{ k *certsrc.ECKey }

func (k ecKey) Public() crypto.PublicKey { return k.k.Public() }

func (k ecKey) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	sig, err := k.k.Sign(rand, digest, opts)
	return sig, translate(err)
}

func (k ecKey) ECDH(peer *ecdh.PublicKey) ([]byte, error) {
	z, err := k.k.ECDH(peer)
	return z, translate(err)
}

// translate makes a certsrc error also match the applet's error for the
// same condition (see the package documentation). nil stays nil; an error
// with no applet counterpart is returned as it is.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var pe *certsrc.PINError
	switch {
	case errors.As(err, &pe):
		return &bothError{err: err, piv: &piv.PINError{Retries: pe.Retries}}
	case errors.Is(err, certsrc.ErrPINBlocked):
		return &bothError{err: err, piv: piv.ErrPINBlocked}
	case errors.Is(err, certsrc.ErrPINFormat):
		return &bothError{err: err, piv: piv.ErrPINFormat}
	case errors.Is(err, certsrc.ErrNotLoggedIn):
		return &bothError{err: err, piv: piv.ErrNotLoggedIn}
	case errors.Is(err, certsrc.ErrNotFound):
		return &bothError{err: err, piv: piv.ErrNotFound}
	}
	return err
}

// bothError is a certsrc error that also matches piv's: its message is
// certsrc's, and errors.Is and errors.As find either chain.
type bothError struct {
	err error // certsrc's
	piv error // the applet's sentinel or *piv.PINError
}

func (e *bothError) Error() string   { return e.err.Error() }
func (e *bothError) Unwrap() []error { return []error{e.piv, e.err} }
