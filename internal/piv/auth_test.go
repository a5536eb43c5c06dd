package piv_test

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"testing"

	"github.com/vscardkit/vscardkit/internal/apdu"
	"github.com/vscardkit/vscardkit/internal/piv"
	"github.com/vscardkit/vscardkit/internal/softstore"
)

// sha256DigestInfo is the DER DigestInfo prefix for SHA-256 (RFC 8017
// section 9.2, note 1).
var sha256DigestInfo = h("3031300d060960864801650304020105000420")

// pkcs1v15Block is EMSA-PKCS1-v1_5 (RFC 8017 section 9.2) of a SHA-256
// digest, as a client sends it for a signature.
func pkcs1v15Block(pub *rsa.PublicKey, digest []byte) []byte {
	t := append(append([]byte(nil), sha256DigestInfo...), digest...)
	block := make([]byte, pub.Size())
	block[1] = 0x01
	for i := 2; i < len(block)-len(t)-1; i++ {
		block[i] = 0xFF
	}
	copy(block[len(block)-len(t):], t)
	return block
}

// pssBlock is EMSA-PSS-ENCODE (RFC 8017 section 9.1.1) with MGF1 and salt
// length equal to the hash length, as OpenSC and piv-go send it.
func pssBlock(t testing.TB, pub *rsa.PublicKey, newHash func() hash.Hash, digest []byte) []byte {
	hLen := len(digest)
	emBits := pub.N.BitLen() - 1
	emLen := (emBits + 7) / 8
	salt := make([]byte, hLen)
	rand.Read(salt)
	hh := newHash()
	hh.Write(make([]byte, 8))
	hh.Write(digest)
	hh.Write(salt)
	H := hh.Sum(nil)
	db := make([]byte, emLen-hLen-1)
	db[len(db)-hLen-1] = 0x01
	copy(db[len(db)-hLen:], salt)
	mask := mgf1(newHash, H, len(db))
	for i := range db {
		db[i] ^= mask[i]
	}
	db[0] &= 0xFF >> (8*emLen - emBits)
	em := append(append(db, H...), 0xBC)
	if len(em) != pub.Size() {
		t.Fatalf("EM of %d bytes for a %d-byte modulus", len(em), pub.Size())
	}
	return em
}

func mgf1(newHash func() hash.Hash, seed []byte, n int) []byte {
	var out []byte
	for c := uint32(0); len(out) < n; c++ {
		hh := newHash()
		hh.Write(seed)
		hh.Write([]byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)})
		out = hh.Sum(out)
	}
	return out[:n]
}

// dynAuth builds 7C { 82 00, tag value }, the order piv-go uses.
func dynAuth(tag byte, value []byte) []byte {
	inner := append([]byte{0x82, 0x00}, tlv(tag, value)...)
	return tlv(0x7C, inner)
}

func tlv(tag byte, value []byte) []byte {
	out := []byte{tag}
	switch n := len(value); {
	case n < 0x80:
		out = append(out, byte(n))
	case n <= 0xFF:
		out = append(out, 0x81, byte(n))
	default:
		out = append(out, 0x82, byte(n>>8), byte(n))
	}
	return append(out, value...)
}

// authenticate sends GENERAL AUTHENTICATE and returns the 82 value.
func (c *card) authenticate(alg byte, slot piv.Slot, tag byte, input []byte) ([]byte, apdu.SW) {
	c.t.Helper()
	data, sw := c.exchange(0x00, 0x87, alg, byte(slot), dynAuth(tag, input))
	if sw != apdu.SWOK {
		return nil, sw
	}
	m := tlvs(c.t, only(c.t, data, 0x7C))
	out, ok := m[0x82]
	if !ok || len(m) != 1 {
		c.t.Fatalf("response template %X has no lone 82", data)
	}
	return out, sw
}

func TestGeneralAuthenticateRSA(t *testing.T) {
	pairs := mainKeys(t)
	key := pairs[piv.SlotAuthentication].Key.(*rsa.PrivateKey)
	pub := &key.PublicKey
	c := newCard(t, newStore(t, pairs, softstore.Options{}), piv.Options{})
	digest := sha256.Sum256([]byte("PIV authentication, PKCS #1 v1.5"))
	block := pkcs1v15Block(pub, digest[:])

	if _, sw := c.authenticate(0x07, piv.SlotAuthentication, 0x81, block); sw != apdu.SWSecurityNotSatisfied {
		t.Fatalf("without the PIN: %v, want 6982", sw)
	}
	if sw := c.verify("123456"); sw != apdu.SWOK {
		t.Fatal(sw)
	}
	// Chained in 255-byte pieces, as OpenSC and piv-go send it.
	sig, sw := c.authenticate(0x07, piv.SlotAuthentication, 0x81, block)
	if sw != apdu.SWOK {
		t.Fatal(sw)
	}
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		t.Fatalf("PKCS #1 v1.5 signature does not verify: %v", err)
	}
	// 9A is "PIN once": a second use needs no new VERIFY.
	if _, sw := c.authenticate(0x07, piv.SlotAuthentication, 0x81, block); sw != apdu.SWOK {
		t.Fatalf("second use of 9A: %v", sw)
	}

	// The same in one extended APDU.
	cmd, _ := apdu.Command{INS: 0x87, P1: 0x07, P2: 0x9A, Data: dynAuth(0x81, block), Ne: 65536}.Bytes()
	data, sw := c.collect(c.send(cmd))
	if sw != apdu.SWOK {
		t.Fatalf("extended: %v", sw)
	}
	sig = tlvs(t, only(t, data, 0x7C))[0x82]
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		t.Fatalf("extended APDU signature does not verify: %v", err)
	}

	// PSS: the client encodes, the card does the raw operation.
	pssDigest := sha256.Sum256([]byte("PIV authentication, PSS"))
	sig, sw = c.authenticate(0x07, piv.SlotAuthentication, 0x81, pssBlock(t, pub, sha256.New, pssDigest[:]))
	if sw != apdu.SWOK {
		t.Fatal(sw)
	}
	if err := rsa.VerifyPSS(pub, crypto.SHA256, pssDigest[:], sig, &rsa.PSSOptions{SaltLength: 32}); err != nil {
		t.Fatalf("PSS signature does not verify: %v", err)
	}

	for _, tc := range []struct {
		name  string
		alg   byte
		tag   byte
		input []byte
		sw    apdu.SW
	}{
		{"algorithm of another size", 0x06, 0x81, block, apdu.SWIncorrectP1P2},
		{"EC algorithm", 0x11, 0x81, block, apdu.SWIncorrectP1P2},
		{"block one byte short", 0x07, 0x81, block[1:], apdu.SWIncorrectData},
		{"block one byte long", 0x07, 0x81, append([]byte{0}, block...), apdu.SWIncorrectData},
		{"block equal to the modulus", 0x07, 0x81, pub.N.Bytes(), apdu.SWIncorrectData},
		{"ECDH on an RSA key", 0x07, 0x85, block, apdu.SWIncorrectData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			if _, sw := c.authenticate(tc.alg, piv.SlotAuthentication, tc.tag, tc.input); sw != tc.sw {
				t.Errorf("SW %v, want %v", sw, tc.sw)
			}
		})
	}
	c.t = t
}

// Key management decryption: the client sends the ciphertext, the card
// returns the raw block, the client removes the padding.
func TestGeneralAuthenticateRSADecrypt(t *testing.T) {
	pairs := altKeys(t)
	pub := &pairs[piv.SlotKeyManagement].Key.(*rsa.PrivateKey).PublicKey
	c := newCard(t, newStore(t, pairs, softstore.Options{}), piv.Options{})
	msg := []byte("a session key, wrapped")
	//lint:ignore SA1019 the card decrypts PKCS #1 v1.5, which PIV clients send (OpenSC CKM_RSA_PKCS, piv-go): the test needs such a ciphertext
	ct, err := rsa.EncryptPKCS1v15(rand.Reader, pub, msg)
	if err != nil {
		t.Fatal(err)
	}
	if _, sw := c.authenticate(0x07, piv.SlotKeyManagement, 0x81, ct); sw != apdu.SWSecurityNotSatisfied {
		t.Fatalf("without the PIN: %v", sw)
	}
	c.verify("123456")
	block, sw := c.authenticate(0x07, piv.SlotKeyManagement, 0x81, ct)
	if sw != apdu.SWOK {
		t.Fatal(sw)
	}
	if len(block) != pub.Size() || block[0] != 0 || block[1] != 2 {
		t.Fatalf("block %X is not PKCS #1 type 2", block[:4])
	}
	sep := bytes.IndexByte(block[2:], 0)
	if sep < 8 || !bytes.Equal(block[2+sep+1:], msg) {
		t.Fatalf("decrypted message %q", block[2+sep+1:])
	}
}

func TestRSAKeySizes(t *testing.T) {
	alt, main := altKeys(t), mainKeys(t)
	for _, tc := range []struct {
		name string
		keys map[piv.Slot]softstore.KeyPair
		slot piv.Slot
		alg  byte
		pin  bool
	}{
		{"RSA 1024 in 9E, no PIN", main, piv.SlotCardAuthentication, 0x06, false},
		{"RSA 3072 in 9A", alt, piv.SlotAuthentication, 0x05, true},
		{"RSA 4096 (Yubico 16) in 9C", alt, piv.SlotSignature, 0x16, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCard(t, newStore(t, tc.keys, softstore.Options{}), piv.Options{})
			pub := &tc.keys[tc.slot].Key.(*rsa.PrivateKey).PublicKey
			digest := sha256.Sum256([]byte(tc.name))
			if tc.pin {
				c.verify("123456")
			}
			sig, sw := c.authenticate(tc.alg, tc.slot, 0x81, pkcs1v15Block(pub, digest[:]))
			if sw != apdu.SWOK {
				t.Fatal(sw)
			}
			if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestGeneralAuthenticateECDSA(t *testing.T) {
	pairs := mainKeys(t)
	sigPub := &pairs[piv.SlotSignature].Key.(*ecdsa.PrivateKey).PublicKey
	kmPub := &pairs[piv.SlotKeyManagement].Key.(*ecdsa.PrivateKey).PublicKey
	c := newCard(t, newStore(t, pairs, softstore.Options{}), piv.Options{})
	d256 := sha256.Sum256([]byte("a document"))

	// 9C, "PIN Always": each signature needs its own VERIFY.
	if _, sw := c.authenticate(0x11, piv.SlotSignature, 0x81, d256[:]); sw != apdu.SWSecurityNotSatisfied {
		t.Fatalf("without the PIN: %v", sw)
	}
	c.verify("123456")
	sig, sw := c.authenticate(0x11, piv.SlotSignature, 0x81, d256[:])
	if sw != apdu.SWOK {
		t.Fatal(sw)
	}
	if !ecdsa.VerifyASN1(sigPub, d256[:], sig) {
		t.Fatal("P-256 signature does not verify")
	}
	if _, sw := c.authenticate(0x11, piv.SlotSignature, 0x81, d256[:]); sw != apdu.SWSecurityNotSatisfied {
		t.Fatalf("second signature without a new VERIFY: %v, want 6982", sw)
	}
	// The PIN is still verified for the other keys.
	if sw := c.sendHex("00200080").SW(); sw != apdu.SWOK {
		t.Fatalf("PIN status after a 9C signature: %v", sw)
	}
	c.verify("123456")
	if _, sw := c.authenticate(0x11, piv.SlotSignature, 0x81, d256[:]); sw != apdu.SWOK {
		t.Fatalf("signature after a new VERIFY: %v", sw)
	}
	// A wrong algorithm uses up nothing; a refused one does not either.
	c.verify("123456")
	if _, sw := c.authenticate(0x14, piv.SlotSignature, 0x81, d256[:]); sw != apdu.SWIncorrectP1P2 {
		t.Fatalf("P-384 algorithm on a P-256 key: %v", sw)
	}
	if _, sw := c.authenticate(0x11, piv.SlotSignature, 0x81, d256[:]); sw != apdu.SWOK {
		t.Fatalf("after a refused algorithm: %v", sw)
	}

	// 9D P-384: a full digest, a shorter one (left-padded, same value), one
	// too long.
	d384 := sha512.Sum384([]byte("a document"))
	sig, sw = c.authenticate(0x14, piv.SlotKeyManagement, 0x81, d384[:])
	if sw != apdu.SWOK || !ecdsa.VerifyASN1(kmPub, d384[:], sig) {
		t.Fatalf("P-384 signature: %v", sw)
	}
	sig, sw = c.authenticate(0x14, piv.SlotKeyManagement, 0x81, d256[:])
	if sw != apdu.SWOK || !ecdsa.VerifyASN1(kmPub, d256[:], sig) {
		t.Fatalf("P-384 signature of a SHA-256 digest: %v", sw)
	}
	if _, sw := c.authenticate(0x14, piv.SlotKeyManagement, 0x81, make([]byte, 49)); sw != apdu.SWIncorrectData {
		t.Fatalf("49-byte digest: %v", sw)
	}
}

func TestSignaturePINOnce(t *testing.T) {
	pairs := mainKeys(t)
	c := newCard(t, newStore(t, pairs, softstore.Options{}), piv.Options{SignaturePINOnce: true})
	d := sha256.Sum256([]byte("x"))
	c.verify("123456")
	for i := range 3 {
		if _, sw := c.authenticate(0x11, piv.SlotSignature, 0x81, d[:]); sw != apdu.SWOK {
			t.Fatalf("signature %d: %v", i, sw)
		}
	}
	c.sendHex("0020FF80") // VERIFY P1 FF: reset the security status
	if _, sw := c.authenticate(0x11, piv.SlotSignature, 0x81, d[:]); sw != apdu.SWSecurityNotSatisfied {
		t.Fatalf("after VERIFY P1=FF: %v", sw)
	}
}

func TestECDH(t *testing.T) {
	pairs := mainKeys(t)
	ours, err := pairs[piv.SlotKeyManagement].Key.(*ecdsa.PrivateKey).PublicKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	c := newCard(t, newStore(t, pairs, softstore.Options{}), piv.Options{})
	eph, _ := ecdh.P384().GenerateKey(rand.Reader)
	if _, sw := c.authenticate(0x14, piv.SlotKeyManagement, 0x85, eph.PublicKey().Bytes()); sw != apdu.SWSecurityNotSatisfied {
		t.Fatalf("without the PIN: %v", sw)
	}
	c.verify("123456")
	secret, sw := c.authenticate(0x14, piv.SlotKeyManagement, 0x85, eph.PublicKey().Bytes())
	if sw != apdu.SWOK {
		t.Fatal(sw)
	}
	want, _ := eph.ECDH(ours)
	if !bytes.Equal(secret, want) {
		t.Fatal("shared secrets differ")
	}

	other, _ := ecdh.P256().GenerateKey(rand.Reader)
	compressed := append([]byte{0x02}, eph.PublicKey().Bytes()[1:49]...)
	offCurve := append([]byte(nil), eph.PublicKey().Bytes()...)
	offCurve[96] ^= 1
	for _, tc := range []struct {
		name  string
		point []byte
	}{
		{"P-256 point", other.PublicKey().Bytes()},
		{"compressed point", compressed},
		{"point off the curve", offCurve},
		{"garbage", []byte("not a point")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			if _, sw := c.authenticate(0x14, piv.SlotKeyManagement, 0x85, tc.point); sw != apdu.SWIncorrectData {
				t.Errorf("SW %v, want 6A80", sw)
			}
		})
	}
	c.t = t

	// ECDH with 9E (P-256 in the alternative set) needs no PIN.
	alt := altKeys(t)
	c2 := newCard(t, newStore(t, alt, softstore.Options{}), piv.Options{})
	ours2, _ := alt[piv.SlotCardAuthentication].Key.(*ecdsa.PrivateKey).PublicKey.ECDH()
	secret, sw = c2.authenticate(0x11, piv.SlotCardAuthentication, 0x85, other.PublicKey().Bytes())
	want, _ = other.ECDH(ours2)
	if sw != apdu.SWOK || !bytes.Equal(secret, want) {
		t.Fatalf("9E ECDH: %v", sw)
	}
}

func TestGeneralAuthenticateErrors(t *testing.T) {
	pairs := mainKeys(t)
	c := newCard(t, newStore(t, subset(pairs, piv.SlotCardAuthentication, piv.SlotSignature), softstore.Options{}), piv.Options{})
	block := make([]byte, 128)
	chal := tlv(0x81, block)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	resp := []byte{0x82, 0x00}
	for _, tc := range []struct {
		name   string
		p1, p2 byte
		data   []byte
		sw     apdu.SW
	}{
		{"empty challenge", 0x07, 0x9A, tlv(0x7C, cat(resp, tlv(0x81, nil))), apdu.SWIncorrectData},
		{"empty 9A slot", 0x07, 0x9A, tlv(0x7C, cat(resp, tlv(0x81, make([]byte, 4)))), apdu.SWReferencedDataNotFound},
		{"retired key 82", 0x07, 0x82, tlv(0x7C, cat(resp, chal)), apdu.SWIncorrectP1P2},
		{"attestation key F9", 0x07, 0xF9, tlv(0x7C, cat(resp, chal)), apdu.SWIncorrectP1P2},
		{"not a template", 0x06, 0x9E, cat(resp, chal), apdu.SWIncorrectData},
		{"no response request", 0x06, 0x9E, tlv(0x7C, chal), apdu.SWIncorrectData},
		{"response not empty", 0x06, 0x9E, tlv(0x7C, cat(tlv(0x82, []byte{0}), chal)), apdu.SWIncorrectData},
		{"challenge and exponent", 0x06, 0x9E, tlv(0x7C, cat(resp, chal, tlv(0x85, []byte{4}))), apdu.SWIncorrectData},
		{"witness too", 0x06, 0x9E, tlv(0x7C, cat(resp, chal, tlv(0x80, nil))), apdu.SWIncorrectData},
		{"unknown tag 83", 0x06, 0x9E, tlv(0x7C, cat(resp, chal, tlv(0x83, nil))), apdu.SWIncorrectData},
		{"duplicate 82", 0x06, 0x9E, tlv(0x7C, cat(resp, resp, chal)), apdu.SWIncorrectData},
		{"trailing byte", 0x06, 0x9E, cat(tlv(0x7C, cat(resp, chal)), []byte{0}), apdu.SWIncorrectData},
		{"inner length overruns", 0x06, 0x9E, tlv(0x7C, cat(resp, []byte{0x81, 0x81, 0x81}, block)), apdu.SWIncorrectData},
		{"four-byte length", 0x06, 0x9E, h("7C84000000048200 8100"), apdu.SWIncorrectData},
		{"no data", 0x06, 0x9E, nil, apdu.SWIncorrectData},
		{"9E RSA 1024 signs without a PIN", 0x06, 0x9E, tlv(0x7C, cat(resp, chal)), apdu.SWOK},
		{"9B challenge, 3DES default", 0x00, 0x9B, h("7C02 8100"), apdu.SWOK},
		{"9B challenge, 3DES", 0x03, 0x9B, h("7C02 8100"), apdu.SWOK},
		{"9B witness, AES-192", 0x0A, 0x9B, h("7C02 8000"), apdu.SWOK},
		{"9B response", 0x03, 0x9B, h("7C0A 8208 0102030405060708"), apdu.SWSecurityNotSatisfied},
		{"9B mutual response", 0x03, 0x9B, h("7C14 8008 0102030405060708 8108 0102030405060708"), apdu.SWSecurityNotSatisfied},
		{"9B RSA algorithm", 0x07, 0x9B, h("7C02 8100"), apdu.SWIncorrectP1P2},
		{"9B malformed", 0x03, 0x9B, h("8100"), apdu.SWIncorrectData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			cmd, err := apdu.Command{INS: 0x87, P1: tc.p1, P2: tc.p2, Data: tc.data}.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if sw := c.send(cmd).SW(); sw != tc.sw {
				t.Errorf("SW %v, want %v", sw, tc.sw)
			}
		})
	}
	c.t = t

	// Challenges: random, of the algorithm's block size.
	for _, tc := range []struct {
		alg  byte
		tag  byte
		size int
	}{{0x00, 0x81, 8}, {0x03, 0x81, 8}, {0x08, 0x81, 16}, {0x0C, 0x80, 16}} {
		cmd := []byte{0x00, 0x87, tc.alg, 0x9B, 0x04, 0x7C, 0x02, tc.tag, 0x00}
		r1, r2 := c.send(cmd), c.send(cmd)
		v1 := tlvs(t, only(t, r1.Data(), 0x7C))[uint32(tc.tag)]
		v2 := tlvs(t, only(t, r2.Data(), 0x7C))[uint32(tc.tag)]
		if len(v1) != tc.size || bytes.Equal(v1, v2) {
			t.Errorf("alg %02X: challenges %X and %X", tc.alg, v1, v2)
		}
	}
}
