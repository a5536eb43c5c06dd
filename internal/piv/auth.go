package piv

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"math/big"

	"github.com/vscardkit/vscardkit/internal/apdu"
)

// Dynamic authentication template tags (SP 800-73-4 part 2, table 7).
const (
	tagDynAuth   = 0x7C
	tagWitness   = 0x80
	tagChallenge = 0x81
	tagResponse  = 0x82
	tagExponent  = 0x85
)

// keyRefCardManagement is the card management (administration) key, 9B.
const keyRefCardManagement = 0x9B

// dynAuth is a parsed dynamic authentication template: which elements were
// present, and their values.
type dynAuth struct {
	has   [6]bool // indexed by tag - 0x80
	value [6][]byte
}

func (d *dynAuth) present(tag byte) bool { return d.has[tag-0x80] }
func (d *dynAuth) get(tag byte) []byte   { return d.value[tag-0x80] }

func parseDynAuth(data []byte) (dynAuth, error) {
	var d dynAuth
	outer, err := readOnlyTLV(data)
	if err != nil || outer.tag != tagDynAuth {
		return d, errTLV
	}
	rest := outer.value
	for len(rest) > 0 {
		var t tlv
		t, rest, err = readTLV(rest)
		if err != nil {
			return d, err
		}
		if t.tag < tagWitness || t.tag > tagExponent || t.tag == 0x83 || t.tag == 0x84 {
			return d, errTLV
		}
		i := t.tag - 0x80
		if d.has[i] {
			return d, errTLV
		}
		d.has[i], d.value[i] = true, t.value
	}
	return d, nil
}

// generalAuthenticate is GENERAL AUTHENTICATE (SP 800-73-4 part 2, section
// 3.2.4; appendix A): P1 the algorithm, P2 the key, data a dynamic
// authentication template 7C.
//
//   - 82 (empty) and 81 (the block): RSA private-key operation on the
//     client's padded block (signing and key-management decryption alike),
//     or ECDSA over the client's digest. Answers 7C { 82 result }.
//   - 82 (empty) and 85 (an uncompressed point): ECDH. Answers 7C { 82 the
//     shared secret's x coordinate }.
//   - 9B with 81 or 80 empty: a challenge or witness request for the card
//     management key, answered with random bytes; no response to it ever
//     authenticates (the card has no usable 9B key).
//
// 9A and 9D need a verified PIN; 9C needs a VERIFY since its last use ("PIN
// Always") unless Options.SignaturePINOnce; 9E needs nothing.
func (a *Applet) generalAuthenticate(c apdu.Command) apdu.Response {
	var slot Slot
	switch c.P2 {
	case byte(SlotAuthentication), byte(SlotSignature), byte(SlotKeyManagement), byte(SlotCardAuthentication):
		slot = Slot(c.P2)
	case keyRefCardManagement:
		return a.cardManagement(c)
	default:
		return apdu.SWIncorrectP1P2.Bytes()
	}
	d, err := parseDynAuth(c.Data)
	if err != nil {
		return apdu.SWIncorrectData.Bytes()
	}
	var op byte
	switch {
	case d.present(tagResponse) && len(d.get(tagResponse)) == 0 && !d.present(tagWitness) &&
		d.present(tagChallenge) != d.present(tagExponent):
		if d.present(tagChallenge) {
			op = tagChallenge
		} else {
			op = tagExponent
		}
	default:
		return apdu.SWIncorrectData.Bytes()
	}
	input := d.get(op)
	if len(input) == 0 {
		return apdu.SWIncorrectData.Bytes()
	}

	key, err := a.store.PrivateKey(slot)
	switch {
	case errors.Is(err, ErrNotFound):
		return apdu.SWReferencedDataNotFound.Bytes()
	case err != nil:
		a.log.Debug("piv: reading a key failed", "slot", slot, "err", err)
		return apdu.SWUnknown.Bytes()
	}
	alg, ok := keyAlgorithm(key.Public())
	if !ok {
		a.log.Debug("piv: the store's key has an algorithm PIV cannot name", "slot", slot)
		return apdu.SWIncorrectP1P2.Bytes()
	}
	if c.P1 != alg {
		return apdu.SWIncorrectP1P2.Bytes()
	}
	if sw := a.checkAccess(slot); sw != apdu.SWOK {
		return sw.Bytes()
	}

	var out []byte
	switch k := key.(type) {
	case RSAKey:
		if op != tagChallenge {
			return apdu.SWIncorrectData.Bytes()
		}
		out, err = rsaOp(k, input)
	case ECKey:
		if op == tagChallenge {
			out, err = ecdsaOp(k, input)
		} else {
			out, err = ecdhOp(k, input)
		}
	default:
		return apdu.SWIncorrectP1P2.Bytes()
	}
	switch {
	case errors.Is(err, errBadInput):
		return apdu.SWIncorrectData.Bytes()
	case errors.Is(err, ErrNotLoggedIn):
		a.verified, a.sigFresh = false, false
		return apdu.SWSecurityNotSatisfied.Bytes()
	case err != nil:
		a.log.Debug("piv: key operation failed", "slot", slot, "err", err)
		return apdu.SWUnknown.Bytes()
	}
	return a.respond(appendTLV(nil, tagDynAuth, appendTLV(nil, tagResponse, out)), c.Ne)
}

// checkAccess applies the key's access rule (SP 800-73-4 part 1, table 4b)
// and, for 9C, uses up the fresh verification.
func (a *Applet) checkAccess(slot Slot) apdu.SW {
	switch slot {
	case SlotCardAuthentication:
		return apdu.SWOK
	case SlotSignature:
		if !a.verified || !(a.sigFresh || a.opts.SignaturePINOnce) {
			return apdu.SWSecurityNotSatisfied
		}
		a.sigFresh = false
		return apdu.SWOK
	default:
		if !a.verified {
			return apdu.SWSecurityNotSatisfied
		}
		return apdu.SWOK
	}
}

// keyAlgorithm names a public key's PIV algorithm (SP 800-78-5 table 6-2).
func keyAlgorithm(pub crypto.PublicKey) (byte, bool) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 1024:
			return algRSA1024, true
		case 2048:
			return algRSA2048, true
		case 3072:
			return algRSA3072, true
		case 4096:
			return algRSA4096, true
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return algECCP256, true
		case elliptic.P384():
			return algECCP384, true
		}
	}
	return 0, false
}

// errBadInput is a key operation's input that the client got wrong (6A80).
var errBadInput = errors.New("piv: bad key operation input")

// rsaOp is the raw RSA private-key operation on a block as long as the
// modulus and smaller than it.
func rsaOp(k RSAKey, block []byte) ([]byte, error) {
	pub, ok := k.Public().(*rsa.PublicKey)
	if !ok {
		return nil, errBadInput
	}
	size := pub.Size()
	if len(block) != size || new(big.Int).SetBytes(block).Cmp(pub.N) >= 0 {
		return nil, errBadInput
	}
	out, err := k.RSARaw(block)
	if err != nil {
		return nil, err
	}
	if len(out) > size {
		return nil, errors.New("piv: RSA result longer than the modulus")
	}
	if len(out) < size { // left-pad, as the client expects a full block
		out = append(make([]byte, size-len(out)), out...)
	}
	return out, nil
}

// ecdsaOp signs a digest of at most the curve's size (shorter digests are
// left-padded with zeros, which leaves their value, and so the signature,
// unchanged) and returns the DER signature.
func ecdsaOp(k ECKey, digest []byte) ([]byte, error) {
	pub, ok := k.Public().(*ecdsa.PublicKey)
	if !ok {
		return nil, errBadInput
	}
	size := (pub.Curve.Params().BitSize + 7) / 8
	if len(digest) > size {
		return nil, errBadInput
	}
	if len(digest) < size {
		digest = append(make([]byte, size-len(digest)), digest...)
	}
	sig, err := k.Sign(rand.Reader, digest, crypto.Hash(0))
	if err != nil {
		return nil, err
	}
	if !validECDSASignature(sig) {
		return nil, errors.New("piv: the store's ECDSA signature is not DER")
	}
	return sig, nil
}

// validECDSASignature reports whether sig is a DER SEQUENCE of two positive
// INTEGERs, as clients expect.
func validECDSASignature(sig []byte) bool {
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(sig, &rs)
	return err == nil && len(rest) == 0 && rs.R.Sign() > 0 && rs.S.Sign() > 0
}

// ecdhOp computes the shared secret with the client's uncompressed point.
func ecdhOp(k ECKey, point []byte) ([]byte, error) {
	pub, ok := k.Public().(*ecdsa.PublicKey)
	if !ok {
		return nil, errBadInput
	}
	var curve ecdh.Curve
	switch pub.Curve {
	case elliptic.P256():
		curve = ecdh.P256()
	case elliptic.P384():
		curve = ecdh.P384()
	default:
		return nil, errBadInput
	}
	if len(point) == 0 || point[0] != 0x04 { // only uncompressed points
		return nil, errBadInput
	}
	peer, err := curve.NewPublicKey(point)
	if err != nil {
		return nil, errBadInput
	}
	return k.ECDH(peer)
}

// cardManagement answers GENERAL AUTHENTICATE on 9B: challenge and witness
// requests get random bytes of the algorithm's block size; everything else
// fails as a wrong management key would (6982).
func (a *Applet) cardManagement(c apdu.Command) apdu.Response {
	var n int
	switch c.P1 {
	case alg3DESDefault, alg3DES:
		n = 8
	case algAES128, algAES192, algAES256:
		n = 16
	default:
		return apdu.SWIncorrectP1P2.Bytes()
	}
	d, err := parseDynAuth(c.Data)
	if err != nil {
		return apdu.SWIncorrectData.Bytes()
	}
	var tag byte
	switch {
	case d.present(tagChallenge) && len(d.get(tagChallenge)) == 0 && !d.present(tagWitness) && !d.present(tagResponse) && !d.present(tagExponent):
		tag = tagChallenge
	case d.present(tagWitness) && len(d.get(tagWitness)) == 0 && !d.present(tagChallenge) && !d.present(tagResponse) && !d.present(tagExponent):
		tag = tagWitness
	default:
		return apdu.SWSecurityNotSatisfied.Bytes()
	}
	b := make([]byte, n)
	rand.Read(b)
	return a.respond(appendTLV(nil, tagDynAuth, appendTLV(nil, uint32(tag), b)), c.Ne)
}
