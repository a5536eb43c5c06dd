package guest_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	e2e "github.com/vscardkit/vscardkit/internal/e2e/guest"
)

// pivResults are what the guest's piv scenario prints for a signature by
// key over challenge, in pkcs11-tool's formats.
func pivResults(t *testing.T, key crypto.Signer, challenge []byte) map[string]string {
	t.Helper()
	res := map[string]string{"challenge": hex.EncodeToString(challenge)}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		sig, err := rsa.SignPKCS1v15(rand.Reader, k, 0, challenge)
		if err != nil {
			t.Fatal(err)
		}
		res["keytype"], res["mechanism"], res["signature"] = "rsa", "RSA-PKCS", hex.EncodeToString(sig)
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, challenge)
		if err != nil {
			t.Fatal(err)
		}
		sig := append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
		res["keytype"], res["mechanism"], res["signature"] = "ec", "ECDSA", hex.EncodeToString(sig)
	}
	return res
}

func TestVerifySignature(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	challenge := []byte("0123456789abcdef0123456789abcdef")
	for _, key := range []crypto.Signer{rsaKey, ecKey} {
		res := pivResults(t, key, challenge)
		if err := e2e.VerifySignature(key.Public(), res); err != nil {
			t.Errorf("%T: a good signature: %v", key, err)
		}
		bad := map[string]string{}
		for k, v := range res {
			bad[k] = v
		}
		bad["challenge"] = hex.EncodeToString([]byte("another challenge of 32 bytes..."))
		if err := e2e.VerifySignature(key.Public(), bad); !errors.Is(err, e2e.ErrBadSignature) {
			t.Errorf("%T: the signature of another challenge: %v, want ErrBadSignature", key, err)
		}
		delete(bad, "signature")
		if err := e2e.VerifySignature(key.Public(), bad); !errors.Is(err, e2e.ErrNoResult) {
			t.Errorf("%T: no signature: %v, want ErrNoResult", key, err)
		}
	}
	if err := e2e.VerifySignature(otherEC.Public(), pivResults(t, ecKey, challenge)); !errors.Is(err, e2e.ErrBadSignature) {
		t.Errorf("another key: %v, want ErrBadSignature", err)
	}
	if err := e2e.VerifySignature(rsaKey.Public(), pivResults(t, ecKey, challenge)); err == nil {
		t.Error("an EC signature verified with an RSA key")
	}
}

func TestCertificate(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "unit"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := e2e.Certificate(map[string]string{"cert": hex.EncodeToString(der)})
	if err != nil || cert.Subject.CommonName != "unit" {
		t.Errorf("Certificate = %v, %v", cert, err)
	}
	if _, err := e2e.Certificate(map[string]string{}); !errors.Is(err, e2e.ErrNoResult) {
		t.Errorf("no cert: %v, want ErrNoResult", err)
	}
	if _, err := e2e.Certificate(map[string]string{"cert": "3082"}); err == nil {
		t.Error("a truncated certificate parsed")
	}
}

func TestSmartcardIsLibvirts(t *testing.T) {
	c := e2e.Smartcard(2001)
	args, err := c.QEMUArgs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range args {
		if strings.Contains(a, "nodelay") {
			t.Errorf("the chardev has nodelay: %s", a)
		}
	}
	if cl, err := c.ClientArgs(); err != nil || len(cl) != 2 || cl[1] != "tcp://127.0.0.1:2001" {
		t.Errorf("ClientArgs = %q, %v", cl, err)
	}
}
