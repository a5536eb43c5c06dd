package certsrc

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/asn1"
	"fmt"
	"io"
	"math/big"

	"github.com/miekg/pkcs11"
	"github.com/vscardkit/vscardkit/internal/piv"
)

// newKey returns the piv key for a slot's certificate (its public key was
// checked by mapSlots).
func newKey(s *Store, e *slotEntry) piv.PrivateKey {
	switch pub := e.obj.cert.PublicKey.(type) {
	case *rsa.PublicKey:
		return &rsaKey{s: s, e: e, pub: pub}
	case *ecdsa.PublicKey:
		return &ecKey{s: s, e: e, pub: pub}
	}
	panic("certsrc: unchecked key type") // mapSlots admits only the two
}

// curveOIDs are the namedCurve OIDs of CKA_EC_PARAMS.
var curveOIDs = map[elliptic.Curve]asn1.ObjectIdentifier{
	elliptic.P256(): {1, 2, 840, 10045, 3, 1, 7},
	elliptic.P384(): {1, 3, 132, 0, 34},
}

// curveNames are the PrintableString forms PKCS#11 3.0 also allows.
var curveNames = map[elliptic.Curve][]string{
	elliptic.P256(): {"prime256v1", "secp256r1", "P-256"},
	elliptic.P384(): {"secp384r1", "P-384"},
}

func sameCurve(params []byte, c elliptic.Curve) bool {
	var oid asn1.ObjectIdentifier
	if rest, err := asn1.Unmarshal(params, &oid); err == nil && len(rest) == 0 {
		return oid.Equal(curveOIDs[c])
	}
	var name string
	if rest, err := asn1.UnmarshalWithParams(params, &name, "printable"); err == nil && len(rest) == 0 {
		for _, n := range curveNames[c] {
			if n == name {
				return true
			}
		}
	}
	return false
}

// readBool reads one CK_BBOOL attribute; def when the token will not say.
// Called with mu held.
func (s *Store) readBool(h pkcs11.ObjectHandle, typ uint, def bool) bool {
	a, err := s.ctx.GetAttributeValue(s.session, h, []*pkcs11.Attribute{pkcs11.NewAttribute(typ, nil)})
	if err != nil || len(a) != 1 || len(a[0].Value) != 1 {
		return def
	}
	return a[0].Value[0] != 0
}

// keyHandle finds the private key of e's certificate: the private key
// object with the certificate's CKA_ID whose public half matches it (RSA:
// the modulus; EC: the curve). Handles are cached for one login
// generation. Called with mu held.
func (s *Store) keyHandle(e *slotEntry) (pkcs11.ObjectHandle, error) {
	if e.gen == s.gen && e.handle != 0 {
		return e.handle, nil
	}
	var kt uint = pkcs11.CKK_RSA
	var want pkcs11.Attribute
	switch e.key.(type) {
	case *ecKey:
		kt = pkcs11.CKK_EC
		want.Type = pkcs11.CKA_EC_PARAMS
	default:
		want.Type = pkcs11.CKA_MODULUS
	}
	hs, err := s.findObjects([]*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, kt),
		pkcs11.NewAttribute(pkcs11.CKA_ID, e.obj.id),
	}, 16)
	if err != nil {
		return 0, s.fail("C_FindObjects", err)
	}
	if len(hs) == 0 {
		if !s.loggedIn {
			return 0, fmt.Errorf("%w: slot %s: no private key with CKA_ID %x is visible before login", ErrNotLoggedIn, e.slot, e.obj.id)
		}
		return 0, fmt.Errorf("certsrc: slot %s: no private key with CKA_ID %x: %w", e.slot, e.obj.id, piv.ErrNotFound)
	}
	for _, h := range hs {
		a, err := s.ctx.GetAttributeValue(s.session, h, []*pkcs11.Attribute{pkcs11.NewAttribute(want.Type, nil)})
		if err != nil {
			if code, _ := ckr(err); removedCode(code) || suspectCode(code) {
				return 0, s.fail("C_GetAttributeValue", err)
			}
			continue
		}
		v := a[0].Value
		match := false
		switch k := e.key.(type) {
		case *rsaKey:
			match = new(big.Int).SetBytes(v).Cmp(k.pub.N) == 0
		case *ecKey:
			match = sameCurve(v, k.pub.Curve)
		}
		if !match {
			continue
		}
		if s.readBool(h, pkcs11.CKA_ALWAYS_AUTHENTICATE, false) {
			return 0, fmt.Errorf("%w: slot %s: the key with CKA_ID %x has CKA_ALWAYS_AUTHENTICATE, which needs the PIN at every use", ErrUnsupportedKey, e.slot, e.obj.id)
		}
		e.handle, e.gen = h, s.gen
		e.sign = s.readBool(h, pkcs11.CKA_SIGN, true)
		e.decrypt = s.readBool(h, pkcs11.CKA_DECRYPT, true)
		e.derive = s.readBool(h, pkcs11.CKA_DERIVE, true)
		return h, nil
	}
	return 0, fmt.Errorf("%w: slot %s: no private key with CKA_ID %x matches %s", ErrKeyMismatch, e.slot, e.obj.id, e.obj)
}

// do runs op on e's private key in the token. A stale key handle (the
// token still there) is looked up again once. Called without mu.
func (s *Store) do(e *slotEntry, op string, fn func(h pkcs11.ObjectHandle) ([]byte, error)) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if err := s.ensureSession(); err != nil {
			return nil, err
		}
		h, err := s.keyHandle(e)
		if err != nil {
			return nil, err
		}
		out, err := fn(h)
		if err == nil {
			return out, nil
		}
		code, _ := ckr(err)
		err = s.fail(op, err)
		if attempt == 0 && s.hasSession && (code == pkcs11.CKR_OBJECT_HANDLE_INVALID || code == pkcs11.CKR_KEY_HANDLE_INVALID) {
			e.gen = 0
			continue
		}
		return nil, err
	}
}

// call names the PKCS#11 function that returned err.
func call(name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", name, err)
}

// rsaKey is an RSA private key in the token.
type rsaKey struct {
	s   *Store
	e   *slotEntry
	pub *rsa.PublicKey
}

// Public returns the certificate's public key.
func (k *rsaKey) Public() crypto.PublicKey { return k.pub }

// RSARaw computes block^d mod n in the token with CKM_RSA_X_509: C_Decrypt
// for the Key Management slot and for keys that may decrypt but not sign,
// C_Sign otherwise. block must be as long as the modulus and less than it.
func (k *rsaKey) RSARaw(block []byte) ([]byte, error) {
	size := (k.pub.N.BitLen() + 7) / 8
	if len(block) != size {
		return nil, fmt.Errorf("%w: RSA block of %d bytes for a %d-byte modulus", ErrBadInput, len(block), size)
	}
	if new(big.Int).SetBytes(block).Cmp(k.pub.N) >= 0 {
		return nil, fmt.Errorf("%w: RSA block is not less than the modulus", ErrBadInput)
	}
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_X_509, nil)}
	ctx, e := k.s.ctx, k.e
	out, err := k.s.do(e, "RSA private-key operation", func(h pkcs11.ObjectHandle) ([]byte, error) {
		sh := k.s.session
		if !k.s.rawRSA {
			return k.s.signPKCS1(e, h, block)
		}
		if e.decrypt && (e.slot == SlotKeyManagement || !e.sign) {
			if err := ctx.DecryptInit(sh, mech, h); err != nil {
				return nil, call("C_DecryptInit(CKM_RSA_X_509)", err)
			}
			out, err := ctx.Decrypt(sh, block)
			return out, call("C_Decrypt(CKM_RSA_X_509)", err)
		}
		if err := ctx.SignInit(sh, mech, h); err != nil {
			if code, _ := ckr(err); code == pkcs11.CKR_MECHANISM_INVALID {
				return k.s.signPKCS1(e, h, block)
			}
			return nil, call("C_SignInit(CKM_RSA_X_509)", err)
		}
		out, err := ctx.Sign(sh, block)
		return out, call("C_Sign(CKM_RSA_X_509)", err)
	})
	if err != nil {
		return nil, err
	}
	if len(out) > size {
		return nil, fmt.Errorf("certsrc: the token's RSA operation returned %d bytes for a %d-byte modulus", len(out), size)
	}
	// Some modules drop leading zero bytes; the result is a modulus-sized
	// integer.
	if len(out) < size {
		out = append(make([]byte, size-len(out)), out...)
	}
	return out, nil
}

// signPKCS1 computes block^d for a token without CKM_RSA_X_509 when block
// is an EMSA-PKCS1-v1_5 signature block (00 01 FF...FF 00 T): CKM_RSA_PKCS
// over T pads T the same, deterministic way, so the result is the same.
// Other blocks (PSS, decryption) cannot be computed. Called with mu held.
func (s *Store) signPKCS1(e *slotEntry, h pkcs11.ObjectHandle, block []byte) ([]byte, error) {
	t, ok := pkcs1SignaturePayload(block)
	if !ok {
		return nil, fmt.Errorf("%w: slot %s: the token has no raw RSA (CKM_RSA_X_509), so only PKCS#1 v1.5 signature blocks can be computed", ErrUnsupportedKey, e.slot)
	}
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)}
	if err := s.ctx.SignInit(s.session, mech, h); err != nil {
		return nil, call("C_SignInit(CKM_RSA_PKCS)", err)
	}
	out, err := s.ctx.Sign(s.session, t)
	return out, call("C_Sign(CKM_RSA_PKCS)", err)
}

// pkcs1SignaturePayload returns T of an EMSA-PKCS1-v1_5 block
// 00 01 PS 00 T, PS being at least 8 bytes of FF (RFC 8017 section 9.2).
func pkcs1SignaturePayload(block []byte) ([]byte, bool) {
	if len(block) < 11 || block[0] != 0 || block[1] != 1 {
		return nil, false
	}
	i := 2
	for i < len(block) && block[i] == 0xff {
		i++
	}
	if i-2 < 8 || i >= len(block)-1 || block[i] != 0 {
		return nil, false
	}
	return block[i+1:], true
}

// ecKey is an EC private key in the token.
type ecKey struct {
	s   *Store
	e   *slotEntry
	pub *ecdsa.PublicKey
}

// Public returns the certificate's public key.
func (k *ecKey) Public() crypto.PublicKey { return k.pub }

func (k *ecKey) size() int { return (k.pub.Curve.Params().BitSize + 7) / 8 }

// Sign signs digest with CKM_ECDSA in the token and returns the ASN.1 DER
// signature. rand and opts are not used (the token hashes nothing and
// draws its own nonce).
func (k *ecKey) Sign(_ io.Reader, digest []byte, _ crypto.SignerOpts) ([]byte, error) {
	if len(digest) == 0 || len(digest) > 64 {
		return nil, fmt.Errorf("%w: ECDSA digest of %d bytes (want 1 to 64)", ErrBadInput, len(digest))
	}
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)}
	ctx := k.s.ctx
	rs, err := k.s.do(k.e, "ECDSA signature", func(h pkcs11.ObjectHandle) ([]byte, error) {
		if err := ctx.SignInit(k.s.session, mech, h); err != nil {
			return nil, call("C_SignInit(CKM_ECDSA)", err)
		}
		rs, err := ctx.Sign(k.s.session, digest)
		return rs, call("C_Sign(CKM_ECDSA)", err)
	})
	if err != nil {
		return nil, err
	}
	n := k.size()
	if len(rs) != 2*n {
		return nil, fmt.Errorf("certsrc: C_Sign(CKM_ECDSA) returned %d bytes, want r||s of 2x%d", len(rs), n)
	}
	// PKCS#11 gives r||s; crypto.Signer (and PIV) want
	// SEQUENCE { r INTEGER, s INTEGER }.
	return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(rs[:n]), new(big.Int).SetBytes(rs[n:])})
}

// ECDH derives the shared secret with peer in the token (CKM_ECDH1_DERIVE,
// no KDF) and returns its x coordinate. The derived secret is a session
// object, read and destroyed at once.
func (k *ecKey) ECDH(peer *ecdh.PublicKey) ([]byte, error) {
	var want ecdh.Curve
	switch k.pub.Curve {
	case elliptic.P256():
		want = ecdh.P256()
	case elliptic.P384():
		want = ecdh.P384()
	}
	if peer == nil || peer.Curve() != want {
		return nil, fmt.Errorf("%w: ECDH peer key is not on %s", ErrBadInput, k.pub.Curve.Params().Name)
	}
	n := k.size()
	point := peer.Bytes() // uncompressed 04||X||Y
	ctx, e := k.s.ctx, k.e
	return k.s.do(e, "ECDH", func(h pkcs11.ObjectHandle) ([]byte, error) {
		if !e.derive {
			return nil, fmt.Errorf("%w: slot %s: the key with CKA_ID %x has CKA_DERIVE false", ErrUnsupportedKey, e.slot, e.obj.id)
		}
		sh := k.s.session
		mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDH1_DERIVE,
			pkcs11.NewECDH1DeriveParams(pkcs11.CKD_NULL, nil, point))}
		dk, err := ctx.DeriveKey(sh, mech, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, n),
		})
		if err != nil {
			return nil, call("C_DeriveKey(CKM_ECDH1_DERIVE)", err)
		}
		defer ctx.DestroyObject(sh, dk)
		a, err := ctx.GetAttributeValue(sh, dk, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
		if err != nil {
			return nil, call("C_GetAttributeValue(CKA_VALUE)", err)
		}
		v := a[0].Value
		if len(v) != n {
			return nil, fmt.Errorf("certsrc: C_DeriveKey(CKM_ECDH1_DERIVE) gave a %d-byte secret, want %d", len(v), n)
		}
		return bytes.Clone(v), nil
	})
}
