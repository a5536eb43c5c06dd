package certsrc

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
)

// rsaMech is a token mechanism for an RSA operation, as the backends take
// it.
type rsaMech struct {
	kind  mechKind
	hash  crypto.Hash // PSS and OAEP: the message hash
	mgf   crypto.Hash // OAEP: the MGF1 hash (PSS uses hash)
	salt  int         // PSS: the salt length
	label []byte      // OAEP: the label
}

type mechKind int

const (
	mechPKCS1 mechKind = iota // CKM_RSA_PKCS
	mechPSS                   // CKM_RSA_PKCS_PSS
	mechOAEP                  // CKM_RSA_PKCS_OAEP
)

// rawMode says how a raw RSA operation (CKM_RSA_X_509) is called.
type rawMode int

const (
	// rawAuto is the PIV card's operation: C_Decrypt for the Key
	// Management slot and for keys that may decrypt but not sign, C_Sign
	// otherwise, and for a token without CKM_RSA_X_509 a PKCS#1 v1.5
	// signature block through CKM_RSA_PKCS.
	rawAuto rawMode = iota
	// rawSign is C_Sign, for a block Sign padded.
	rawSign
)

// RSAKey is the RSA private key of the certificate in one slot, held in the
// token. It is a crypto.Signer and a crypto.Decrypter; Raw is the bare
// private-key operation, for a caller (such as a PIV card) that pads
// itself. Its operations need Login first, unless the token's key object is
// not private.
type RSAKey struct {
	s   *Store
	e   *slotEntry
	pub *rsa.PublicKey
}

// Public returns the certificate's public key, an *rsa.PublicKey.
func (k *RSAKey) Public() crypto.PublicKey { return k.pub }

// Sign signs digest in the token, as crypto.Signer asks:
//
//   - with *rsa.PSSOptions, RSASSA-PSS with opts.Hash (required) for the
//     message hash and MGF1, and the salt length opts.SaltLength says
//     (rsa.PSSSaltLengthAuto is the largest the key allows, as in
//     crypto/rsa). The token's CKM_RSA_PKCS_PSS does it when the token
//     lists it, the hash is SHA-1 or SHA-2 and the token takes the
//     parameters; otherwise the block is encoded here (EMSA-PSS, the salt
//     read from rand, crypto/rand.Reader when nil) and signed with
//     CKM_RSA_X_509.
//   - otherwise RSASSA-PKCS1-v1_5 with opts.HashFunc(): digest is
//     prefixed with that hash's DigestInfo (MD5, SHA-1, SHA-2, SHA-3 and
//     RIPEMD-160 as in crypto/rsa; none for crypto.MD5SHA1) or, for hash 0,
//     signed as it is. The token's CKM_RSA_PKCS pads it; a token without
//     CKM_RSA_PKCS gets the padded block through CKM_RSA_X_509.
//
// digest must be as long as the hash's output. The signature is as long as
// the modulus. Errors wrap ErrBadInput for inputs or options crypto/rsa
// would refuse, ErrUnsupportedKey when the token offers no way to make the
// signature (or the key may not sign), ErrNotLoggedIn, ErrTokenRemoved,
// ErrClosed, and the pkcs11.Error of a failed call.
func (k *RSAKey) Sign(random io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts == nil {
		return nil, fmt.Errorf("%w: RSA Sign needs options: a crypto.Hash (0 for a digest signed as it is) or *rsa.PSSOptions", ErrBadInput)
	}
	if o, ok := opts.(*rsa.PSSOptions); ok {
		return k.signPSS(random, digest, o)
	}
	return k.signPKCS1v15(digest, opts.HashFunc())
}

func (k *RSAKey) signPKCS1v15(digest []byte, h crypto.Hash) ([]byte, error) {
	t, err := digestInfo(h, digest)
	if err != nil {
		return nil, err
	}
	size := k.pub.Size()
	if len(t) == 0 || len(t) > size-11 {
		return nil, fmt.Errorf("%w: %d bytes to sign with PKCS#1 v1.5 and a %d-bit key (at most %d)", ErrBadInput, len(t), k.pub.N.BitLen(), size-11)
	}
	out, err := k.s.rsaSign(k.e, rsaMech{kind: mechPKCS1}, t)
	var nm *noMechError
	if errors.As(err, &nm) {
		out, err = k.s.rsaRaw(k.e, pkcs1v15SignBlock(t, size), rawSign)
		err = neither(err, nm)
	}
	if err != nil {
		return nil, err
	}
	return k.fit(out)
}

func (k *RSAKey) signPSS(random io.Reader, digest []byte, o *rsa.PSSOptions) ([]byte, error) {
	h := o.Hash
	hLen, ok := hashSize(h)
	if !ok || h == crypto.MD5SHA1 {
		return nil, fmt.Errorf("%w: PSS needs rsa.PSSOptions.Hash, a hash crypto/rsa knows (have %v)", ErrBadInput, h)
	}
	if len(digest) != hLen {
		return nil, fmt.Errorf("%w: a %d-byte digest for %v, which has %d", ErrBadInput, len(digest), h, hLen)
	}
	emBits := k.pub.N.BitLen() - 1
	emLen := (emBits + 7) / 8
	maxSalt := emLen - hLen - 2
	salt := o.SaltLength
	switch {
	case salt == rsa.PSSSaltLengthAuto:
		salt = maxSalt
	case salt == rsa.PSSSaltLengthEqualsHash:
		salt = hLen
	case salt < 0:
		return nil, fmt.Errorf("%w: PSS salt length %d", ErrBadInput, salt)
	}
	if maxSalt < 0 || salt > maxSalt {
		return nil, fmt.Errorf("%w: a %d-bit key is too short for PSS with %v and a %d-byte salt", ErrBadInput, k.pub.N.BitLen(), h, salt)
	}
	out, err := k.s.rsaSign(k.e, rsaMech{kind: mechPSS, hash: h, salt: salt}, digest)
	var nm *noMechError
	if errors.As(err, &nm) {
		if !h.Available() {
			return nil, fmt.Errorf("%w (and %v is not linked into this program to encode the block here)", err, h)
		}
		if random == nil {
			random = rand.Reader
		}
		var em []byte
		if em, err = emsaPSSEncode(random, h, digest, emBits, salt); err != nil {
			return nil, err
		}
		block := make([]byte, k.pub.Size()-len(em), k.pub.Size())
		out, err = k.s.rsaRaw(k.e, append(block, em...), rawSign)
		err = neither(err, nm)
	}
	if err != nil {
		return nil, err
	}
	return k.fit(out)
}

// neither turns the fallback's own missing mechanism into an error naming
// both.
func neither(err error, first *noMechError) error {
	var nm *noMechError
	if errors.As(err, &nm) {
		return fmt.Errorf("%w: slot %s: the token offers neither %s nor %s", ErrUnsupportedKey, first.slot, first.mech, nm.mech)
	}
	return err
}

// Decrypt decrypts ciphertext in the token, as crypto.Decrypter asks: with
// nil or *rsa.PKCS1v15DecryptOptions, RSAES-PKCS1-v1_5 (CKM_RSA_PKCS);
// with *rsa.OAEPOptions, RSAES-OAEP (CKM_RSA_PKCS_OAEP, with opts.Hash,
// MGF1 with opts.MGFHash or else opts.Hash, and opts.Label), when the token
// does it: softhsm2 2.6, for one, takes only SHA-1 without a label, and
// refuses the rest (ErrUnsupportedKey). The padding is always checked in
// the token; there is no fallback to CKM_RSA_X_509.
//
// A ciphertext the token cannot decrypt gives an error wrapping
// rsa.ErrDecryption (C_Decrypt answering CKR_ENCRYPTED_DATA_INVALID or
// CKR_ENCRYPTED_DATA_LEN_RANGE, or CKR_GENERAL_ERROR or
// CKR_FUNCTION_FAILED with the token still there, which is what softhsm2
// answers to a bad padding), except with a
// PKCS1v15DecryptOptions.SessionKeyLen: then, as in crypto/rsa, a failed
// decryption or a plaintext of another length returns SessionKeyLen
// random bytes (read from rand, crypto/rand.Reader when nil) and no error.
// The token's own timing, which certsrc cannot control, may still tell a
// wrong padding apart.
func (k *RSAKey) Decrypt(random io.Reader, ciphertext []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	size := k.pub.Size()
	if len(ciphertext) > size || new(big.Int).SetBytes(ciphertext).Cmp(k.pub.N) >= 0 {
		return nil, fmt.Errorf("%w: RSA ciphertext is not less than the modulus", ErrBadInput)
	}
	if len(ciphertext) < size { // the same integer, as long as the modulus
		ciphertext = append(make([]byte, size-len(ciphertext), size), ciphertext...)
	}
	var m rsaMech
	sessionKeyLen := 0
	switch o := opts.(type) {
	case nil:
	//lint:ignore SA1019 crypto.Decrypter's callers still ask for PKCS #1 v1.5 with it (crypto/tls's RSA key exchange, with SessionKeyLen), and PIV clients send such ciphertexts
	case *rsa.PKCS1v15DecryptOptions:
		sessionKeyLen = o.SessionKeyLen
	case *rsa.OAEPOptions:
		m = rsaMech{kind: mechOAEP, hash: o.Hash, mgf: o.MGFHash, label: o.Label}
		if m.mgf == 0 {
			m.mgf = m.hash
		}
		if _, ok := hashSize(m.hash); !ok || m.hash == crypto.MD5SHA1 {
			return nil, fmt.Errorf("%w: OAEP needs rsa.OAEPOptions.Hash (have %v)", ErrBadInput, m.hash)
		}
	default:
		return nil, fmt.Errorf("%w: Decrypt options %T (want *rsa.PKCS1v15DecryptOptions or *rsa.OAEPOptions)", ErrBadInput, opts)
	}
	if sessionKeyLen <= 0 {
		return k.s.rsaDecrypt(k.e, m, ciphertext)
	}
	if random == nil {
		random = rand.Reader
	}
	key := make([]byte, sessionKeyLen)
	if _, err := io.ReadFull(random, key); err != nil {
		return nil, fmt.Errorf("certsrc: reading a random session key: %w", err)
	}
	pt, err := k.s.rsaDecrypt(k.e, m, ciphertext)
	switch {
	case err == nil && len(pt) == sessionKeyLen:
		return pt, nil
	case err == nil, errors.Is(err, rsa.ErrDecryption):
		return key, nil
	}
	return nil, err
}

// Raw computes block^d mod n in the token (RSADP, or RSASP1: the bare RSA
// private-key function) with CKM_RSA_X_509, for a caller that pads itself,
// as a PIV card's client does: C_Decrypt for the Key Management slot and
// for keys that may decrypt but not sign, C_Sign otherwise. On a token that
// does not offer CKM_RSA_X_509, an EMSA-PKCS1-v1_5 signature block is
// signed with CKM_RSA_PKCS over its payload, which gives the same result;
// other blocks then fail with ErrUnsupportedKey.
//
// block must be as long as the modulus and less than it (else ErrBadInput);
// so is the result.
func (k *RSAKey) Raw(block []byte) ([]byte, error) {
	size := k.pub.Size()
	if len(block) != size {
		return nil, fmt.Errorf("%w: RSA block of %d bytes for a %d-byte modulus", ErrBadInput, len(block), size)
	}
	if new(big.Int).SetBytes(block).Cmp(k.pub.N) >= 0 {
		return nil, fmt.Errorf("%w: RSA block is not less than the modulus", ErrBadInput)
	}
	out, err := k.s.rsaRaw(k.e, block, rawAuto)
	if err != nil {
		return nil, err
	}
	return k.fit(out)
}

// fit makes a token's RSA result as long as the modulus: some modules drop
// leading zero bytes.
func (k *RSAKey) fit(out []byte) ([]byte, error) {
	size := k.pub.Size()
	if len(out) > size {
		return nil, fmt.Errorf("certsrc: the token's RSA operation returned %d bytes for a %d-byte modulus", len(out), size)
	}
	if len(out) < size {
		out = append(make([]byte, size-len(out), size), out...)
	}
	return out, nil
}

// hashOIDs are the DigestInfo algorithms of PKCS#1 v1.5 signatures (RFC
// 8017 appendix B.1, NIST's hash OIDs, and RIPEMD-160's of TeleTrusT): the
// hashes crypto/rsa signs with.
var hashOIDs = map[crypto.Hash]asn1.ObjectIdentifier{
	crypto.MD5:        {1, 2, 840, 113549, 2, 5},
	crypto.SHA1:       {1, 3, 14, 3, 2, 26},
	crypto.SHA224:     {2, 16, 840, 1, 101, 3, 4, 2, 4},
	crypto.SHA256:     {2, 16, 840, 1, 101, 3, 4, 2, 1},
	crypto.SHA384:     {2, 16, 840, 1, 101, 3, 4, 2, 2},
	crypto.SHA512:     {2, 16, 840, 1, 101, 3, 4, 2, 3},
	crypto.SHA512_224: {2, 16, 840, 1, 101, 3, 4, 2, 5},
	crypto.SHA512_256: {2, 16, 840, 1, 101, 3, 4, 2, 6},
	crypto.SHA3_224:   {2, 16, 840, 1, 101, 3, 4, 2, 7},
	crypto.SHA3_256:   {2, 16, 840, 1, 101, 3, 4, 2, 8},
	crypto.SHA3_384:   {2, 16, 840, 1, 101, 3, 4, 2, 9},
	crypto.SHA3_512:   {2, 16, 840, 1, 101, 3, 4, 2, 10},
	crypto.RIPEMD160:  {1, 3, 36, 3, 2, 1},
}

// hashSize is h's output size, for the hashes certsrc knows (crypto.Hash's
// Size panics on others).
func hashSize(h crypto.Hash) (int, bool) {
	if _, ok := hashOIDs[h]; ok || h == crypto.MD5SHA1 {
		return h.Size(), true
	}
	return 0, false
}

// digestInfo returns what PKCS#1 v1.5 signs for digest: the DER DigestInfo
// of h, digest itself for h 0 and for MD5SHA1 (TLS 1.0's, which has none).
func digestInfo(h crypto.Hash, digest []byte) ([]byte, error) {
	if h == 0 {
		return digest, nil
	}
	n, ok := hashSize(h)
	if !ok {
		return nil, fmt.Errorf("%w: PKCS#1 v1.5 with %v, which has no DigestInfo", ErrBadInput, h)
	}
	if len(digest) != n {
		return nil, fmt.Errorf("%w: a %d-byte digest for %v, which has %d", ErrBadInput, len(digest), h, n)
	}
	if h == crypto.MD5SHA1 {
		return digest, nil
	}
	return asn1.Marshal(struct {
		Algorithm pkix.AlgorithmIdentifier
		Digest    []byte
	}{pkix.AlgorithmIdentifier{Algorithm: hashOIDs[h], Parameters: asn1.NullRawValue}, digest})
}

// pkcs1v15SignBlock is EMSA-PKCS1-v1_5's block 00 01 FF..FF 00 T of k
// bytes (RFC 8017 section 9.2); len(t) <= k-11.
func pkcs1v15SignBlock(t []byte, k int) []byte {
	b := make([]byte, k)
	b[1] = 1
	for i := 2; i < k-len(t)-1; i++ {
		b[i] = 0xff
	}
	copy(b[k-len(t):], t)
	return b
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

// emsaPSSEncode is EMSA-PSS-ENCODE (RFC 8017 section 9.1.1) of the digest
// mHash with hash h, MGF1 with h, a salt of sLen bytes from random, for an
// emBits-bit encoded message. The caller checked that emLen >= hLen + sLen
// + 2.
func emsaPSSEncode(random io.Reader, h crypto.Hash, mHash []byte, emBits, sLen int) ([]byte, error) {
	hLen := h.Size()
	emLen := (emBits + 7) / 8
	salt := make([]byte, sLen)
	if _, err := io.ReadFull(random, salt); err != nil {
		return nil, fmt.Errorf("certsrc: reading the PSS salt: %w", err)
	}
	// H = Hash(00 00 00 00 00 00 00 00 || mHash || salt)
	hh := h.New()
	hh.Write(make([]byte, 8))
	hh.Write(mHash)
	hh.Write(salt)
	H := hh.Sum(nil)
	// DB = PS || 01 || salt, masked with MGF1(H).
	db := make([]byte, emLen-hLen-1)
	db[len(db)-sLen-1] = 0x01
	copy(db[len(db)-sLen:], salt)
	mgf1XOR(db, h, H)
	db[0] &= 0xff >> (8*emLen - emBits)
	em := append(db, H...)
	return append(em, 0xbc), nil
}

// mgf1XOR XORs out with MGF1(seed) using hash h (RFC 8017 appendix B.2.1).
func mgf1XOR(out []byte, h crypto.Hash, seed []byte) {
	var counter [4]byte
	var mask []byte
	for done := 0; done < len(out); {
		hh := h.New()
		hh.Write(seed)
		hh.Write(counter[:])
		mask = hh.Sum(mask[:0])
		for i := 0; i < len(mask) && done < len(out); i++ {
			out[done] ^= mask[i]
			done++
		}
		for i := 3; i >= 0; i-- {
			if counter[i]++; counter[i] != 0 {
				break
			}
		}
	}
}

// ECKey is the EC private key (P-256 or P-384) of the certificate in one
// slot, held in the token: a crypto.Signer (ECDSA, CKM_ECDSA) that also
// computes ECDH shared secrets (CKM_ECDH1_DERIVE). Its operations need
// Login first, unless the token's key object is not private.
type ECKey struct {
	s   *Store
	e   *slotEntry
	pub *ecdsa.PublicKey
}

// Public returns the certificate's public key, an *ecdsa.PublicKey.
func (k *ECKey) Public() crypto.PublicKey { return k.pub }

func (k *ECKey) size() int { return (k.pub.Curve.Params().BitSize + 7) / 8 }

// Sign signs digest with ECDSA in the token (CKM_ECDSA) and returns the
// ASN.1 DER signature, as crypto.Signer and ecdsa.VerifyASN1 have it. A
// digest longer than the curve's order is truncated to it, as ECDSA
// prescribes; when opts names a hash, digest must be as long as its
// output. rand is not used: the token draws its own nonce.
func (k *ECKey) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if len(digest) == 0 {
		return nil, fmt.Errorf("%w: empty ECDSA digest", ErrBadInput)
	}
	if opts != nil {
		if n, ok := hashSize(opts.HashFunc()); ok && len(digest) != n {
			return nil, fmt.Errorf("%w: a %d-byte digest for %v, which has %d", ErrBadInput, len(digest), opts.HashFunc(), n)
		}
	}
	n := k.size()
	if len(digest) > n {
		// The orders of P-256 and P-384 are 8n bits long: the leftmost n
		// bytes are the leftmost bits ECDSA keeps.
		digest = digest[:n]
	}
	rs, err := k.s.ecSign(k.e, digest)
	if err != nil {
		return nil, err
	}
	if len(rs) != 2*n {
		return nil, fmt.Errorf("certsrc: C_Sign(CKM_ECDSA) returned %d bytes, want r||s of 2x%d", len(rs), n)
	}
	// PKCS#11 gives r||s; crypto.Signer wants SEQUENCE { r INTEGER, s INTEGER }.
	return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(rs[:n]), new(big.Int).SetBytes(rs[n:])})
}

// ECDH returns the shared secret with peer, the x coordinate of the shared
// point as crypto/ecdh's PrivateKey.ECDH returns it, computed in the token
// (CKM_ECDH1_DERIVE with CKD_NULL; see the package documentation). peer
// must be on the key's curve (else ErrBadInput); a key without CKA_DERIVE
// fails with ErrUnsupportedKey.
func (k *ECKey) ECDH(peer *ecdh.PublicKey) ([]byte, error) {
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
	return k.s.ecDerive(k.e, peer.Bytes(), k.size())
}
