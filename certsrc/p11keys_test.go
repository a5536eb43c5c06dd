//go:build cgo

//lint:file-ignore SA1019 the card decrypts PKCS #1 v1.5, which PIV clients send (OpenSC CKM_RSA_PKCS, piv-go), and Decrypt takes rsa.PKCS1v15DecryptOptions as crypto/tls passes it: the tests need such ciphertexts and options

package certsrc_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	_ "crypto/sha3"
	_ "crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"

	"github.com/vscardkit/vscardkit/certsrc"
	"github.com/vscardkit/vscardkit/internal/harness"
)

// rsaToken is a token with RSA keys of the three PIV sizes, 1024 in 9C,
// 2048 in 9A and 3072 in 9E.
func rsaToken(t *testing.T) (*certsrc.Store, map[certsrc.Slot]*rsa.PublicKey) {
	t.Helper()
	h := harness.NewSoftHSM(t, "rsa")
	h.Setenv(t)
	ids := map[certsrc.Slot]*harness.Identity{
		certsrc.SlotAuthentication: h.AddIdentity(t, harness.IdentitySpec{Alg: harness.RSA2048, ID: []byte{1}, Label: "2048",
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}),
		certsrc.SlotSignature: h.AddIdentity(t, harness.IdentitySpec{Alg: harness.RSA1024, ID: []byte{2}, Label: "1024",
			KeyUsage: x509.KeyUsageContentCommitment}),
		certsrc.SlotCardAuthentication: h.AddIdentity(t, harness.IdentitySpec{Alg: harness.RSA3072, ID: []byte{3}, Label: "3072",
			KeyUsage: x509.KeyUsageDigitalSignature, UnknownEKU: []asn1.ObjectIdentifier{oidPIVCardAuth}}),
	}
	s := openStore(t, h.URI(""), certsrc.Config{})
	login(t, s, h.PIN)
	pubs := make(map[certsrc.Slot]*rsa.PublicKey)
	for slot, id := range ids {
		pubs[slot] = id.Public().(*rsa.PublicKey)
	}
	return s, pubs
}

func rsaKey(t *testing.T, s *certsrc.Store, slot certsrc.Slot) *certsrc.RSAKey {
	t.Helper()
	k, err := s.PrivateKey(slot)
	if err != nil {
		t.Fatalf("PrivateKey(%s): %v", slot, err)
	}
	rk, ok := k.(*certsrc.RSAKey)
	if !ok {
		t.Fatalf("PrivateKey(%s) is a %T", slot, k)
	}
	return rk
}

func digestOf(h crypto.Hash, msg string) []byte {
	d := h.New()
	d.Write([]byte(msg))
	return d.Sum(nil)
}

// RSA keys as crypto.Signer: PKCS #1 v1.5 with every hash crypto/rsa
// signs with (and none, for a DigestInfo made by the caller), PSS with
// every salt-length rule; each signature checked by crypto/rsa.
func TestRSASign(t *testing.T) {
	s, pubs := rsaToken(t)
	for slot, pub := range pubs {
		var signer crypto.Signer = rsaKey(t, s, slot)
		if !pub.Equal(signer.Public()) {
			t.Errorf("%s: Public() is not the certificate's key", slot)
		}
		for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512, crypto.SHA3_256, crypto.MD5SHA1} {
			digest := bytes.Repeat([]byte{0x5a}, 36) // MD5SHA1: TLS 1.0's, hashed by the caller
			if h != crypto.MD5SHA1 {
				digest = digestOf(h, "PKCS #1 v1.5")
			}
			sig, err := signer.Sign(rand.Reader, digest, h)
			if err != nil {
				t.Fatalf("%s: Sign(PKCS #1 v1.5, %v): %v", slot, h, err)
			}
			if len(sig) != pub.Size() {
				t.Errorf("%s: %d-byte signature for a %d-byte modulus", slot, len(sig), pub.Size())
			}
			if err := rsa.VerifyPKCS1v15(pub, h, digest, sig); err != nil {
				t.Errorf("%s (%d bits): PKCS #1 v1.5 with %v does not verify: %v", slot, pub.N.BitLen(), h, err)
			}
		}
		// Hash 0: the caller's own DigestInfo, signed as it is.
		digest := digestOf(crypto.SHA256, "pre-hashed")
		info := append([]byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}, digest...)
		sig, err := signer.Sign(nil, info, crypto.Hash(0))
		if err != nil {
			t.Fatalf("%s: Sign(hash 0): %v", slot, err)
		}
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest, sig); err != nil {
			t.Errorf("%s: a DigestInfo signed with hash 0 does not verify as SHA-256: %v", slot, err)
		}

		for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512, crypto.SHA3_256} {
			for _, salt := range []int{rsa.PSSSaltLengthAuto, rsa.PSSSaltLengthEqualsHash, 0, 20} {
				emLen := (pub.N.BitLen() - 1 + 7) / 8
				if salt == rsa.PSSSaltLengthEqualsHash && 2*h.Size()+2 > emLen {
					continue // SHA-512 and its 64-byte salt do not fit 1024 bits
				}
				opts := &rsa.PSSOptions{SaltLength: salt, Hash: h}
				digest := digestOf(h, "PSS")
				sig, err := signer.Sign(rand.Reader, digest, opts)
				if err != nil {
					t.Fatalf("%s: Sign(PSS, %v, salt %d): %v", slot, h, salt, err)
				}
				vopts := &rsa.PSSOptions{SaltLength: salt}
				if salt == rsa.PSSSaltLengthAuto {
					vopts.SaltLength = emLen - h.Size() - 2 // the largest, as crypto/rsa signs
				}
				if err := rsa.VerifyPSS(pub, h, digest, sig, vopts); err != nil {
					t.Errorf("%s (%d bits): PSS with %v, salt %d does not verify: %v", slot, pub.N.BitLen(), h, salt, err)
				}
			}
		}
	}

	// Inputs and options crypto/rsa would refuse.
	k := rsaKey(t, s, certsrc.SlotSignature) // 1024 bits
	d256 := digestOf(crypto.SHA256, "x")
	for name, f := range map[string]func() error{
		"nil options":      func() error { _, err := k.Sign(nil, d256, nil); return err },
		"short digest":     func() error { _, err := k.Sign(nil, d256[:20], crypto.SHA256); return err },
		"unknown hash":     func() error { _, err := k.Sign(nil, d256, crypto.BLAKE2s_256); return err },
		"PSS without hash": func() error { _, err := k.Sign(rand.Reader, d256, &rsa.PSSOptions{}); return err },
		"PSS, short digest": func() error {
			_, err := k.Sign(rand.Reader, d256[:20], &rsa.PSSOptions{Hash: crypto.SHA256})
			return err
		},
		"PSS, salt too long": func() error {
			_, err := k.Sign(rand.Reader, d256, &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: 100})
			return err
		},
		"PSS, negative salt": func() error {
			_, err := k.Sign(rand.Reader, d256, &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: -3})
			return err
		},
		"hash 0, over k-11": func() error { _, err := k.Sign(nil, make([]byte, 128-10), crypto.Hash(0)); return err },
		"hash 0, empty":     func() error { _, err := k.Sign(nil, nil, crypto.Hash(0)); return err },
		"SHA-512 on 1024 bits": func() error {
			_, err := k.Sign(rand.Reader, digestOf(crypto.SHA512, "x"), &rsa.PSSOptions{Hash: crypto.SHA512, SaltLength: 64})
			return err
		},
	} {
		if err := f(); !errors.Is(err, certsrc.ErrBadInput) {
			t.Errorf("%s: %v, want ErrBadInput", name, err)
		}
	}
}

// RSA keys as crypto.Decrypter: PKCS #1 v1.5 (with and without a session
// key length) and OAEP where softhsm2 does it.
func TestRSADecrypt(t *testing.T) {
	p := newPIVToken(t)
	s := openStore(t, p.h.URI(""), certsrc.Config{})
	login(t, s, p.h.PIN)
	pub := p.keyMgmt.Public().(*rsa.PublicKey)
	var dec crypto.Decrypter = rsaKey(t, s, certsrc.SlotKeyManagement)
	msg := []byte("a 16-byte secret")

	ct, err := rsa.EncryptPKCS1v15(rand.Reader, pub, msg)
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range []crypto.DecrypterOpts{nil, &rsa.PKCS1v15DecryptOptions{}, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: len(msg)}} {
		if pt, err := dec.Decrypt(rand.Reader, ct, opts); err != nil || !bytes.Equal(pt, msg) {
			t.Errorf("Decrypt(PKCS #1 v1.5, %+v) = %q, %v; want %q", opts, pt, err, msg)
		}
	}
	// A ciphertext leading with zero bytes is the same integer.
	if pt, err := dec.Decrypt(nil, bytes.TrimLeft(ct, "\x00"), nil); err != nil || !bytes.Equal(pt, msg) {
		t.Errorf("Decrypt of the ciphertext without leading zeros: %q, %v", pt, err)
	}

	// A ciphertext whose padding is wrong: rsa.ErrDecryption, or, with a
	// session key length, random bytes of that length and no error, as in
	// crypto/rsa.
	// 2^e mod n decrypts to the block 00 00 ... 00 02.
	bad := new(big.Int).Exp(big.NewInt(2), big.NewInt(int64(pub.E)), pub.N).FillBytes(make([]byte, pub.Size()))
	if _, err := dec.Decrypt(nil, bad, nil); !errors.Is(err, rsa.ErrDecryption) {
		t.Errorf("Decrypt of a badly padded block: %v, want rsa.ErrDecryption", err)
	}
	k1, err := dec.Decrypt(rand.Reader, bad, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 16})
	k2, err2 := dec.Decrypt(rand.Reader, bad, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 16})
	if err != nil || err2 != nil || len(k1) != 16 || bytes.Equal(k1, k2) {
		t.Errorf("Decrypt of a badly padded block with SessionKeyLen: %x, %v; %x, %v; want two different random keys", k1, err, k2, err2)
	}
	if k, err := dec.Decrypt(rand.Reader, ct, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 32}); err != nil || len(k) != 32 || bytes.Equal(k[:len(msg)], msg) {
		t.Errorf("Decrypt with a SessionKeyLen the plaintext does not have: %x, %v; want 32 random bytes", k, err)
	}

	// OAEP: softhsm2 does SHA-1 with MGF1-SHA-1 and no label.
	oct, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, msg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := dec.Decrypt(nil, oct, &rsa.OAEPOptions{Hash: crypto.SHA1}); err != nil || !bytes.Equal(pt, msg) {
		t.Errorf("Decrypt(OAEP SHA-1) = %q, %v", pt, err)
	}
	// Others it refuses, which is ErrUnsupportedKey; a token that does
	// them must decrypt right.
	oct256, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, msg, []byte("label"))
	if err != nil {
		t.Fatal(err)
	}
	pt, err := dec.Decrypt(nil, oct256, &rsa.OAEPOptions{Hash: crypto.SHA256, Label: []byte("label")})
	switch {
	case errors.Is(err, certsrc.ErrUnsupportedKey):
		t.Logf("softhsm2 refuses OAEP SHA-256 with a label: %v", err)
	case err != nil || !bytes.Equal(pt, msg):
		t.Errorf("Decrypt(OAEP SHA-256, label) = %q, %v", pt, err)
	}

	for name, f := range map[string]func() error{
		"ciphertext not below n": func() error { _, err := dec.Decrypt(nil, bytes.Repeat([]byte{0xff}, pub.Size()), nil); return err },
		"ciphertext too long":    func() error { _, err := dec.Decrypt(nil, append([]byte{0}, ct...), nil); return err },
		"OAEP without a hash":    func() error { _, err := dec.Decrypt(nil, oct, &rsa.OAEPOptions{}); return err },
		"other options":          func() error { _, err := dec.Decrypt(nil, ct, crypto.SHA256); return err },
	} {
		if err := f(); !errors.Is(err, certsrc.ErrBadInput) {
			t.Errorf("%s: %v, want ErrBadInput", name, err)
		}
	}

	// The 9A key's token object may decrypt too (pkcs11-tool sets
	// CKA_DECRYPT on every key it writes); an EC key is no Decrypter.
	if _, ok := mustKey(t, s, certsrc.SlotSignature).(crypto.Decrypter); ok {
		t.Error("an EC key is a crypto.Decrypter")
	}
}

func mustKey(t *testing.T, s *certsrc.Store, slot certsrc.Slot) crypto.Signer {
	t.Helper()
	k, err := s.PrivateKey(slot)
	if err != nil {
		t.Fatalf("PrivateKey(%s): %v", slot, err)
	}
	return k
}

// EC keys as crypto.Signer: ASN.1 signatures of digests of any hash,
// longer ones truncated to the curve's size as ECDSA does.
func TestECDSASign(t *testing.T) {
	p := newPIVToken(t)
	s := openStore(t, p.h.URI(""), certsrc.Config{})
	login(t, s, p.h.PIN)
	for _, slot := range []certsrc.Slot{certsrc.SlotSignature, certsrc.SlotCardAuthentication} {
		signer := mustKey(t, s, slot)
		pub := signer.Public().(*ecdsa.PublicKey)
		for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
			digest := digestOf(h, "ECDSA")
			sig, err := signer.Sign(rand.Reader, digest, h)
			if err != nil {
				t.Fatalf("%s: Sign(%v): %v", slot, h, err)
			}
			if !ecdsa.VerifyASN1(pub, digest, sig) {
				t.Errorf("%s (%s): the signature of a %v digest does not verify", slot, pub.Curve.Params().Name, h)
			}
		}
		if _, err := signer.Sign(nil, make([]byte, 20), crypto.SHA256); !errors.Is(err, certsrc.ErrBadInput) {
			t.Errorf("%s: a 20-byte SHA-256 digest: %v, want ErrBadInput", slot, err)
		}
	}
}
