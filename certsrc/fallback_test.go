package certsrc

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/piv"
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

// A token without CKM_RSA_X_509 still computes PKCS#1 v1.5 signature
// blocks (through CKM_RSA_PKCS) and refuses the others clearly.
func TestRSAWithoutRawMechanism(t *testing.T) {
	h := harness.NewSoftHSM(t, "noraw")
	h.Setenv(t)
	id := h.AddIdentity(t, harness.IdentitySpec{Alg: harness.RSA2048, ID: []byte{1}, Label: "k",
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	u, _ := ParseURI(h.URI(""))
	s, err := Open(context.Background(), u, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.rawRSA {
		t.Fatal("softhsm2 should list CKM_RSA_X_509")
	}
	s.rawRSA = false // as a token without raw RSA would
	if err := s.Login([]byte(h.PIN)); err != nil {
		t.Fatal(err)
	}
	key, _ := s.PrivateKey(SlotAuthentication)
	pub := id.Public().(*rsa.PublicKey)
	digest := sha256.Sum256([]byte("fallback"))
	prefix := []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}
	tt := append(prefix, digest[:]...)
	block := append(append([]byte{0, 1}, bytes.Repeat([]byte{0xff}, 256-3-len(tt))...), 0)
	block = append(block, tt...)
	sig, err := key.(piv.RSAKey).RSARaw(block)
	if err != nil {
		t.Fatalf("RSARaw through CKM_RSA_PKCS: %v", err)
	}
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		t.Errorf("signature does not verify: %v", err)
	}
	other := make([]byte, 256)
	other[1] = 2
	if _, err := key.(piv.RSAKey).RSARaw(other); !errors.Is(err, ErrUnsupportedKey) {
		t.Errorf("a non-signature block without raw RSA: %v, want ErrUnsupportedKey", err)
	}
}
