package harness

import (
	"crypto/x509"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

func TestSoftHSM(t *testing.T) {
	h := NewSoftHSM(t, "harness test")
	if got := h.URI(""); got != "pkcs11:token=harness%20test?module-path="+h.Module {
		t.Errorf("URI() = %q", got)
	}
	conf, err := os.ReadFile(h.Conf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "directories.tokendir = "+h.TokenDir+"\n") {
		t.Errorf("softhsm2.conf does not point at %s:\n%s", h.TokenDir, conf)
	}
	if !strings.HasPrefix(h.TokenDir, h.Dir) {
		t.Errorf("token dir %s is outside %s", h.TokenDir, h.Dir)
	}
	// The token is in this store, and only there: softhsm2-util run with
	// Env sees it.
	slots := h.run(t, "softhsm2-util", "--show-slots")
	if !strings.Contains(slots, "harness test") {
		t.Fatalf("softhsm2-util --show-slots does not list the token:\n%s", slots)
	}
	h.InitToken(t, "second")
	if h.TokenPath("second") == "" || h.TokenPath("second") == h.TokenPath("") {
		t.Fatalf("token paths: %q %q", h.TokenPath(""), h.TokenPath("second"))
	}

	rsaID := h.AddIdentity(t, IdentitySpec{Alg: RSA2048, ID: []byte{0x01}, Label: "auth",
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	ecID := h.AddIdentity(t, IdentitySpec{Alg: P384, ID: []byte{0xa1, 0xb2}, Label: "km", KeyUsage: x509.KeyUsageKeyAgreement})
	h.AddIdentity(t, IdentitySpec{Token: "second", Alg: P256, ID: []byte{0x09}, Label: "other"})
	if rsaID.Cert.Subject.CommonName != "auth" || ecID.Cert.KeyUsage != x509.KeyUsageKeyAgreement {
		t.Errorf("certificates: %v %v", rsaID.Cert.Subject, ecID.Cert.KeyUsage)
	}

	objs := h.Objects(t, "")
	for _, want := range []string{
		"Private Key Object; RSA", "Public Key Object; RSA 2048 bits", "Certificate Object",
		"Private Key Object; EC", "ID:         01", "ID:         a1b2", "label:      km",
	} {
		if !strings.Contains(objs, want) {
			t.Errorf("pkcs11-tool --list-objects lacks %q:\n%s", want, objs)
		}
	}
	if strings.Contains(objs, "other") {
		t.Errorf("the second token's object shows on the first:\n%s", objs)
	}
	if !strings.Contains(h.Objects(t, "second"), "ID:         "+hex.EncodeToString([]byte{0x09})) {
		t.Errorf("the second token lacks its object")
	}
	// The EC key may derive (ECDH); pkcs11-tool prints its usage.
	if !strings.Contains(objs, "derive") {
		t.Errorf("no key has CKA_DERIVE:\n%s", objs)
	}

	h.RemoveToken(t, "")
	if _, err := os.Stat(h.TokenPath("")); !os.IsNotExist(err) {
		t.Fatalf("token directory still there after RemoveToken: %v", err)
	}
	if slots := h.run(t, "softhsm2-util", "--show-slots"); strings.Contains(slots, "harness test") {
		t.Fatalf("removed token still listed:\n%s", slots)
	}
	h.RestoreToken(t, "")
	if !strings.Contains(h.Objects(t, ""), "label:      km") {
		t.Fatalf("restored token lost its objects")
	}
}
