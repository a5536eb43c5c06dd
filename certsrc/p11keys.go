//go:build cgo

package certsrc

import (
	"bytes"
	"crypto"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"github.com/miekg/pkcs11"
)

// keyState is a private key's handle and flags, valid while gen ==
// Store.gen.
type keyState struct {
	gen                   uint64
	handle                pkcs11.ObjectHandle
	sign, decrypt, derive bool
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
	case *ECKey:
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
		return 0, fmt.Errorf("certsrc: slot %s: no private key with CKA_ID %x: %w", e.slot, e.obj.id, ErrNotFound)
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
		case *RSAKey:
			match = new(big.Int).SetBytes(v).Cmp(k.pub.N) == 0
		case *ECKey:
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
// token still there) is looked up again once. A noMechError in fn's error
// is returned bare. Called without mu.
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
		var nm *noMechError
		if errors.As(err, &nm) {
			return nil, nm // for the caller's fallback, which names the mechanism
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

// initOp calls C_SignInit or C_DecryptInit (init) for mechanism ckm,
// turning a mechanism the token does not list or rejects as invalid into
// a noMechError naming what (the mechanism and its parameters). A token
// that rejects the parameters of a mechanism that has some
// (CKR_MECHANISM_PARAM_INVALID, or CKR_ARGUMENTS_BAD, which softhsm2
// answers to OAEP with another hash than SHA-1) does not offer it either.
// Called with mu held.
func (s *Store) initOp(e *slotEntry, what string, ckm uint, param bool, init func() error) error {
	if !s.hasMech(ckm) {
		return &noMechError{mech: what, slot: e.slot}
	}
	if err := init(); err != nil {
		switch code, _ := ckr(err); {
		case code == pkcs11.CKR_MECHANISM_INVALID,
			param && (code == pkcs11.CKR_MECHANISM_PARAM_INVALID || code == pkcs11.CKR_ARGUMENTS_BAD):
			return &noMechError{mech: what, slot: e.slot}
		}
		return err
	}
	return nil
}

// rsaRaw computes block^d mod n with CKM_RSA_X_509 (see rawMode).
func (s *Store) rsaRaw(e *slotEntry, block []byte, mode rawMode) ([]byte, error) {
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_X_509, nil)}
	return s.do(e, "RSA private-key operation", func(h pkcs11.ObjectHandle) ([]byte, error) {
		ctx, sh := s.ctx, s.session
		if mode == rawAuto && e.decrypt && (e.slot == SlotKeyManagement || !e.sign) && s.hasMech(pkcs11.CKM_RSA_X_509) {
			if err := ctx.DecryptInit(sh, mech, h); err != nil {
				return nil, call("C_DecryptInit(CKM_RSA_X_509)", err)
			}
			out, err := ctx.Decrypt(sh, block)
			return out, call("C_Decrypt(CKM_RSA_X_509)", err)
		}
		err := s.initOp(e, "CKM_RSA_X_509", pkcs11.CKM_RSA_X_509, false, func() error { return ctx.SignInit(sh, mech, h) })
		var nm *noMechError
		if errors.As(err, &nm) && mode == rawAuto {
			return s.signPKCS1(e, h, block)
		}
		if err != nil {
			return nil, call("C_SignInit(CKM_RSA_X_509)", err)
		}
		out, err := ctx.Sign(sh, block)
		return out, call("C_Sign(CKM_RSA_X_509)", err)
	})
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

// pkcs11Hashes are the CKM_ and CKG_MGF1_ values of the hashes PKCS#11
// 2.40 names for PSS and OAEP.
var pkcs11Hashes = map[crypto.Hash][2]uint{
	crypto.SHA1:   {pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1},
	crypto.SHA224: {pkcs11.CKM_SHA224, pkcs11.CKG_MGF1_SHA224},
	crypto.SHA256: {pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256},
	crypto.SHA384: {pkcs11.CKM_SHA384, pkcs11.CKG_MGF1_SHA384},
	crypto.SHA512: {pkcs11.CKM_SHA512, pkcs11.CKG_MGF1_SHA512},
}

// rsaSign signs data (a DigestInfo or bare digest for CKM_RSA_PKCS, a
// digest for CKM_RSA_PKCS_PSS) in the token. A mechanism the token does not
// offer, with a PSS hash PKCS#11 has no name for or parameters the token
// refuses, is a noMechError.
func (s *Store) rsaSign(e *slotEntry, m rsaMech, data []byte) ([]byte, error) {
	name, ckm, what := "CKM_RSA_PKCS", uint(pkcs11.CKM_RSA_PKCS), "CKM_RSA_PKCS"
	var param any
	if m.kind == mechPSS {
		name, ckm = "CKM_RSA_PKCS_PSS", pkcs11.CKM_RSA_PKCS_PSS
		what = fmt.Sprintf("%s with %v and a %d-byte salt", name, m.hash, m.salt)
		hm, ok := pkcs11Hashes[m.hash]
		if !ok {
			return nil, &noMechError{mech: what, slot: e.slot}
		}
		param = pkcs11.NewPSSParams(hm[0], hm[1], uint(m.salt))
	}
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(ckm, param)}
	return s.do(e, "RSA signature", func(h pkcs11.ObjectHandle) ([]byte, error) {
		if err := s.initOp(e, what, ckm, param != nil, func() error { return s.ctx.SignInit(s.session, mech, h) }); err != nil {
			return nil, call("C_SignInit("+name+")", err)
		}
		out, err := s.ctx.Sign(s.session, data)
		return out, call("C_Sign("+name+")", err)
	})
}

// rsaDecrypt decrypts ct with CKM_RSA_PKCS or CKM_RSA_PKCS_OAEP. A
// ciphertext the token cannot decrypt gives an error wrapping
// rsa.ErrDecryption: C_Decrypt answering CKR_ENCRYPTED_DATA_INVALID or
// CKR_ENCRYPTED_DATA_LEN_RANGE, as the specification has it, or
// CKR_GENERAL_ERROR or CKR_FUNCTION_FAILED with the token still there,
// which is what softhsm2 answers to a bad padding. A mechanism (or OAEP
// hash, or label) it does not offer gives a noMechError.
func (s *Store) rsaDecrypt(e *slotEntry, m rsaMech, ct []byte) ([]byte, error) {
	name, ckm, what := "CKM_RSA_PKCS", uint(pkcs11.CKM_RSA_PKCS), "CKM_RSA_PKCS"
	var param any
	if m.kind == mechOAEP {
		name, ckm = "CKM_RSA_PKCS_OAEP", pkcs11.CKM_RSA_PKCS_OAEP
		what = fmt.Sprintf("%s with %v and MGF1-%v", name, m.hash, m.mgf)
		if len(m.label) > 0 {
			what += " and a label"
		}
		hm, ok1 := pkcs11Hashes[m.hash]
		mg, ok2 := pkcs11Hashes[m.mgf]
		if !ok1 || !ok2 {
			return nil, &noMechError{mech: what, slot: e.slot}
		}
		param = pkcs11.NewOAEPParams(hm[0], mg[1], pkcs11.CKZ_DATA_SPECIFIED, m.label)
	}
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(ckm, param)}
	undecryptable := false
	out, err := s.do(e, "RSA decryption", func(h pkcs11.ObjectHandle) ([]byte, error) {
		undecryptable = false
		if err := s.initOp(e, what, ckm, param != nil, func() error { return s.ctx.DecryptInit(s.session, mech, h) }); err != nil {
			return nil, call("C_DecryptInit("+name+")", err)
		}
		out, err := s.ctx.Decrypt(s.session, ct)
		switch code, _ := ckr(err); code {
		case pkcs11.CKR_ENCRYPTED_DATA_INVALID, pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE,
			pkcs11.CKR_GENERAL_ERROR, pkcs11.CKR_FUNCTION_FAILED:
			undecryptable = err != nil
		}
		return out, call("C_Decrypt("+name+")", err)
	})
	if err != nil && undecryptable && !errors.Is(err, ErrTokenRemoved) {
		return nil, fmt.Errorf("%w: %w", err, rsa.ErrDecryption)
	}
	return out, err
}

// ecSign signs digest with CKM_ECDSA and returns the token's r||s.
func (s *Store) ecSign(e *slotEntry, digest []byte) ([]byte, error) {
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)}
	return s.do(e, "ECDSA signature", func(h pkcs11.ObjectHandle) ([]byte, error) {
		if err := s.initOp(e, "CKM_ECDSA", pkcs11.CKM_ECDSA, false, func() error { return s.ctx.SignInit(s.session, mech, h) }); err != nil {
			return nil, call("C_SignInit(CKM_ECDSA)", err)
		}
		rs, err := s.ctx.Sign(s.session, digest)
		return rs, call("C_Sign(CKM_ECDSA)", err)
	})
}

// ecDerive derives the shared secret with the uncompressed point (CKM_ECDH1_DERIVE,
// no KDF) and returns its n-byte x coordinate. The derived secret is a
// session object, read and destroyed at once.
func (s *Store) ecDerive(e *slotEntry, point []byte, n int) ([]byte, error) {
	return s.do(e, "ECDH", func(h pkcs11.ObjectHandle) ([]byte, error) {
		if !e.derive {
			return nil, fmt.Errorf("%w: slot %s: the key with CKA_ID %x has CKA_DERIVE false", ErrUnsupportedKey, e.slot, e.obj.id)
		}
		if !s.hasMech(pkcs11.CKM_ECDH1_DERIVE) {
			return nil, &noMechError{mech: "CKM_ECDH1_DERIVE", slot: e.slot}
		}
		ctx, sh := s.ctx, s.session
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
