package certsrc

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha1"
	_ "crypto/sha256"
	_ "crypto/sha3"
	_ "crypto/sha512"
	"math/big"
	"testing"
)

func TestPKCS1SignaturePayload(t *testing.T) {
	ok := append(append([]byte{0, 1}, bytes.Repeat([]byte{0xff}, 8)...), 0, 0xaa, 0xbb)
	if p, good := pkcs1SignaturePayload(ok); !good || !bytes.Equal(p, []byte{0xaa, 0xbb}) {
		t.Errorf("valid block: %x %v", p, good)
	}
	for _, b := range [][]byte{
		nil,
		append(append([]byte{0, 2}, bytes.Repeat([]byte{0xff}, 8)...), 0, 0xaa),       // type 2
		append(append([]byte{0, 1}, bytes.Repeat([]byte{0xff}, 7)...), 0, 0xaa, 0xbb), // short PS
		append(append([]byte{0, 1}, bytes.Repeat([]byte{0xff}, 9)...), 0),             // empty T
		append(append([]byte{0, 1}, bytes.Repeat([]byte{0xff}, 9)...), 1, 0xaa),       // no 00
		append(append([]byte{1, 1}, bytes.Repeat([]byte{0xff}, 9)...), 0, 0xaa),       // leading 01
	} {
		if p, good := pkcs1SignaturePayload(b); good {
			t.Errorf("pkcs1SignaturePayload(%x) = %x, want refused", b, p)
		}
	}
}

// rawRSA is the textbook private-key function of a Go key, as a token's
// CKM_RSA_X_509 computes it.
func rawRSA(k *rsa.PrivateKey, block []byte) []byte {
	m := new(big.Int).Exp(new(big.Int).SetBytes(block), k.D, k.N)
	return m.FillBytes(make([]byte, k.Size()))
}

var testKey = func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}()

// The blocks Sign pads locally, raised to d, are the signatures
// crypto/rsa makes (PKCS#1 v1.5 is deterministic) or verifies (PSS).
func TestLocalPadding(t *testing.T) {
	k := testKey
	for h := range hashOIDs {
		if !h.Available() {
			continue
		}
		d := h.New()
		d.Write([]byte("message"))
		digest := d.Sum(nil)
		info, err := digestInfo(h, digest)
		if err != nil {
			t.Fatalf("%v: %v", h, err)
		}
		want, err := rsa.SignPKCS1v15(nil, k, h, digest)
		if err != nil {
			t.Fatalf("%v: crypto/rsa: %v", h, err)
		}
		if got := rawRSA(k, pkcs1v15SignBlock(info, k.Size())); !bytes.Equal(got, want) {
			t.Errorf("%v: the local PKCS#1 v1.5 block does not give crypto/rsa's signature", h)
		}
		if !pssHash(h) {
			continue
		}
		emBits := k.N.BitLen() - 1
		for _, salt := range []int{0, h.Size(), (emBits+7)/8 - h.Size() - 2} {
			em, err := emsaPSSEncode(rand.Reader, h, digest, emBits, salt)
			if err != nil {
				t.Fatalf("%v: %v", h, err)
			}
			block := append(make([]byte, k.Size()-len(em)), em...)
			sig := rawRSA(k, block)
			if err := rsa.VerifyPSS(&k.PublicKey, h, digest, sig, &rsa.PSSOptions{SaltLength: salt, Hash: h}); err != nil {
				t.Errorf("%v, %d-byte salt: the local PSS block does not verify: %v", h, salt, err)
			}
		}
	}
	// Hash 0 signs the input as it is, and MD5SHA1 has no DigestInfo.
	for _, h := range []crypto.Hash{0, crypto.MD5SHA1} {
		in := bytes.Repeat([]byte{7}, 36)
		info, err := digestInfo(h, in)
		if err != nil || !bytes.Equal(info, in) {
			t.Errorf("digestInfo(%v) = %x, %v; want the input", h, info, err)
		}
	}
	if _, err := digestInfo(crypto.SHA256, make([]byte, 20)); err == nil {
		t.Error("digestInfo accepted a 20-byte SHA-256 digest")
	}
	if _, err := digestInfo(crypto.BLAKE2b_256, make([]byte, 32)); err == nil {
		t.Error("digestInfo accepted a hash without a DigestInfo")
	}
}

// pssHash reports whether crypto/rsa takes h for PSS.
func pssHash(h crypto.Hash) bool { return h != crypto.MD5 && h != crypto.RIPEMD160 }
