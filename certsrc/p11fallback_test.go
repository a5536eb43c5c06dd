//go:build cgo

package certsrc

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/miekg/pkcs11"
	"github.com/vscardkit/vscardkit/internal/harness"
)

// openWithout opens a softhsm2 token with one RSA identity in 9A and makes
// the Store believe the token lacks the mechanisms named, as a token that
// does not list them would.
func openWithout(t *testing.T, mechs ...uint) (*Store, *rsa.PublicKey, *RSAKey) {
	t.Helper()
	h := harness.NewSoftHSM(t, "fallback")
	h.Setenv(t)
	id := h.AddIdentity(t, harness.IdentitySpec{Alg: harness.RSA2048, ID: []byte{1}, Label: "k",
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	u, err := ParseURI(h.URI(""))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), u, Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Login([]byte(h.PIN)); err != nil {
		t.Fatal(err)
	}
	for _, m := range append([]uint{pkcs11.CKM_RSA_X_509, pkcs11.CKM_RSA_PKCS, pkcs11.CKM_RSA_PKCS_PSS}, mechs...) {
		if !s.mechs[m] {
			t.Fatalf("softhsm2 does not list mechanism %#x", m)
		}
	}
	for _, m := range mechs {
		delete(s.mechs, m)
	}
	key, err := s.PrivateKey(SlotAuthentication)
	if err != nil {
		t.Fatal(err)
	}
	return s, id.Public().(*rsa.PublicKey), key.(*RSAKey)
}

func pkcs1Block(t *testing.T, digest []byte) []byte {
	t.Helper()
	info, err := digestInfo(crypto.SHA256, digest)
	if err != nil {
		t.Fatal(err)
	}
	return pkcs1v15SignBlock(info, 256)
}

// A token without CKM_RSA_X_509 still computes PKCS#1 v1.5 signature
// blocks (through CKM_RSA_PKCS) and refuses the others clearly.
func TestRawWithoutX509(t *testing.T) {
	_, pub, key := openWithout(t, pkcs11.CKM_RSA_X_509)
	digest := sha256.Sum256([]byte("fallback"))
	sig, err := key.Raw(pkcs1Block(t, digest[:]))
	if err != nil {
		t.Fatalf("Raw through CKM_RSA_PKCS: %v", err)
	}
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		t.Errorf("signature does not verify: %v", err)
	}
	other := make([]byte, 256)
	other[1] = 2
	if _, err := key.Raw(other); !errors.Is(err, ErrUnsupportedKey) {
		t.Errorf("a non-signature block without raw RSA: %v, want ErrUnsupportedKey", err)
	}
	// PSS needs the token's PSS then; it has it.
	pss := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
	if sig, err := key.Sign(rand.Reader, digest[:], pss); err != nil || rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, pss) != nil {
		t.Errorf("PSS with CKM_RSA_PKCS_PSS but no CKM_RSA_X_509: %v", err)
	}
}

// Without the token's PSS, Sign encodes the PSS block and signs it raw;
// without CKM_RSA_PKCS, it pads PKCS#1 v1.5 and signs it raw.
func TestSignWithoutPaddingMechanisms(t *testing.T) {
	s, pub, key := openWithout(t, pkcs11.CKM_RSA_PKCS_PSS, pkcs11.CKM_RSA_PKCS)
	digest := sha256.Sum256([]byte("padded here"))
	for _, salt := range []int{rsa.PSSSaltLengthAuto, rsa.PSSSaltLengthEqualsHash, 0, 17} {
		opts := &rsa.PSSOptions{SaltLength: salt, Hash: crypto.SHA256}
		sig, err := key.Sign(rand.Reader, digest[:], opts)
		if err != nil {
			t.Fatalf("PSS, salt %d, encoded here: %v", salt, err)
		}
		if err := rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, opts); err != nil {
			t.Errorf("PSS, salt %d, encoded here: %v", salt, err)
		}
	}
	sig, err := key.Sign(nil, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatalf("PKCS#1 v1.5 padded here: %v", err)
	}
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		t.Errorf("PKCS#1 v1.5 padded here: %v", err)
	}
	// PKCS#1 v1.5 decryption has no raw fallback (the padding check
	// belongs in the token).
	//lint:ignore SA1019 the card decrypts PKCS #1 v1.5, which PIV clients send (OpenSC CKM_RSA_PKCS, piv-go): the test needs such a ciphertext
	ct, _ := rsa.EncryptPKCS1v15(rand.Reader, pub, []byte("key"))
	if _, err := key.Decrypt(nil, ct, nil); !errors.Is(err, ErrUnsupportedKey) {
		t.Errorf("Decrypt without CKM_RSA_PKCS: %v, want ErrUnsupportedKey", err)
	}

	// And with no raw RSA either, nothing is left.
	delete(s.mechs, pkcs11.CKM_RSA_X_509)
	if _, err := key.Sign(nil, digest[:], crypto.SHA256); !errors.Is(err, ErrUnsupportedKey) {
		t.Errorf("PKCS#1 v1.5 with neither mechanism: %v, want ErrUnsupportedKey", err)
	}
	if _, err := key.Sign(rand.Reader, digest[:], &rsa.PSSOptions{Hash: crypto.SHA256}); !errors.Is(err, ErrUnsupportedKey) {
		t.Errorf("PSS with neither mechanism: %v, want ErrUnsupportedKey", err)
	}
}
