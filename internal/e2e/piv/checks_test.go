package piv_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"slices"
	"strings"
	"testing"

	pivgo "github.com/go-piv/piv-go/v2/piv"

	"github.com/vscardkit/vscardkit/internal/piv"
)

// slotCerts is what a card should present: the certificate in each filled
// PIV slot. The checks verify every result with the certificate's key.
type slotCerts map[piv.Slot]*x509.Certificate

// What OpenSC's PIV emulation calls each slot's objects: their CKA_ID,
// the certificate's label and the private key's label.
var openscObjects = map[piv.Slot]struct{ id, cert, key string }{
	piv.SlotAuthentication:     {"01", "Certificate for PIV Authentication", "PIV AUTH key"},
	piv.SlotSignature:          {"02", "Certificate for Digital Signature", "SIGN key"},
	piv.SlotKeyManagement:      {"03", "Certificate for Key Management", "KEY MAN key"},
	piv.SlotCardAuthentication: {"04", "Certificate for Card Authentication", "CARD AUTH key"},
}

// pivgoSlots maps our slots to piv-go's.
var pivgoSlots = map[piv.Slot]pivgo.Slot{
	piv.SlotAuthentication:     pivgo.SlotAuthentication,
	piv.SlotSignature:          pivgo.SlotSignature,
	piv.SlotKeyManagement:      pivgo.SlotKeyManagement,
	piv.SlotCardAuthentication: pivgo.SlotCardAuthentication,
}

// filled returns the slots of want in PIV order.
func (want slotCerts) filled() []piv.Slot {
	var out []piv.Slot
	for _, s := range piv.Slots {
		if want[s] != nil {
			out = append(out, s)
		}
	}
	return out
}

// The message every check signs, and its SHA-256 digest.
var (
	message = []byte("signed by the guest's middleware, through vscclient-go and fake-ccid-server")
	digest  = sha256.Sum256(message)
)

// checkOpenSC uses the card through OpenSC's PKCS#11 module as a guest's
// middleware would: it lists the certificates and compares them with want,
// logs in, signs with every key (RSA PKCS #1 v1.5 and PSS, ECDSA), decrypts
// with an RSA key management key, and verifies each result with Go's crypto
// against want's public keys.
func checkOpenSC(t *testing.T, c *card, want slotCerts, pin string) {
	t.Run("list certificates", func(t *testing.T) {
		out := c.pkcs11(t, "--list-objects", "--type", "cert")
		for _, s := range piv.Slots {
			o := openscObjects[s]
			if got := strings.Contains(out, o.cert); got != (want[s] != nil) {
				t.Errorf("slot %v: listed %v, want %v:\n%s", s, got, want[s] != nil, out)
			}
		}
		for _, s := range want.filled() {
			der := c.pkcs11File(t, nil, "--read-object", "--type", "cert", "--id", openscObjects[s].id)
			if !bytes.Equal(der, want[s].Raw) {
				t.Errorf("slot %v: the certificate OpenSC read differs from the token's", s)
			}
		}
	})

	t.Run("login", func(t *testing.T) {
		out := c.pkcs11(t, "--login", "--pin", pin, "--list-objects", "--type", "privkey")
		for _, s := range want.filled() {
			if !strings.Contains(out, openscObjects[s].key) {
				t.Errorf("after login, no %q:\n%s", openscObjects[s].key, out)
			}
		}
	})

	for _, s := range want.filled() {
		id := openscObjects[s].id
		switch pub := want[s].PublicKey.(type) {
		case *rsa.PublicKey:
			if s == piv.SlotKeyManagement {
				t.Run("RSA-PKCS decrypt "+s.String(), func(t *testing.T) {
					//lint:ignore SA1019 the card decrypts PKCS #1 v1.5, which PIV clients send (OpenSC CKM_RSA_PKCS, piv-go): the test needs such a ciphertext
					ct, err := rsa.EncryptPKCS1v15(rand.Reader, pub, sessionKey)
					if err != nil {
						t.Fatal(err)
					}
					got := c.pkcs11File(t, ct, "--login", "--pin", pin, "--decrypt", "--id", id, "--mechanism", "RSA-PKCS")
					if !bytes.Equal(got, sessionKey) {
						t.Fatalf("decrypted %X, want %X", got, sessionKey)
					}
				})
				continue
			}
			t.Run("RSA-PKCS sign "+s.String(), func(t *testing.T) {
				sig := c.pkcs11File(t, message, "--login", "--pin", pin, "--sign", "--id", id, "--mechanism", "SHA256-RSA-PKCS")
				if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
					t.Fatalf("SHA256-RSA-PKCS signature: %v", err)
				}
			})
			t.Run("RSA-PSS sign "+s.String(), func(t *testing.T) {
				sig := c.pkcs11File(t, message, "--login", "--pin", pin, "--sign", "--id", id, "--mechanism", "SHA256-RSA-PKCS-PSS")
				opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}
				if err := rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, opts); err != nil {
					t.Fatalf("SHA256-RSA-PKCS-PSS signature: %v", err)
				}
			})
		case *ecdsa.PublicKey:
			t.Run("ECDSA sign "+s.String(), func(t *testing.T) {
				sig := c.pkcs11File(t, digest[:], "--login", "--pin", pin, "--sign", "--id", id, "--mechanism", "ECDSA",
					"--signature-format", "openssl")
				if !ecdsa.VerifyASN1(pub, digest[:], sig) {
					t.Fatal("ECDSA signature does not verify")
				}
			})
		default:
			t.Fatalf("slot %v: unexpected key type %T", s, pub)
		}
	}
}

// checkPivGo uses the card in reader through piv-go, as a second
// independent client: it reads the certificates and compares them with
// want, signs with every key (and decrypts with an RSA key management key)
// with the PIN given through piv.KeyAuth, and verifies each result.
func checkPivGo(t *testing.T, reader string, want slotCerts, pin string) {
	names, err := pivgo.Cards()
	if err != nil {
		t.Fatalf("piv-go Cards: %v", err)
	}
	if !slices.Contains(names, reader) {
		t.Fatalf("piv-go does not list reader %q: %q", reader, names)
	}
	yk, err := pivgo.Open(reader)
	if err != nil {
		t.Fatalf("piv-go Open(%q): %v", reader, err)
	}
	// piv-go holds the card exclusively: release it for the next client.
	defer yk.Close()

	for _, s := range piv.Slots {
		got, err := yk.Certificate(pivgoSlots[s])
		switch {
		case want[s] == nil:
			if !errors.Is(err, pivgo.ErrNotFound) {
				t.Errorf("Certificate(%v) of an empty slot: %v, want ErrNotFound", s, err)
			}
		case err != nil:
			t.Errorf("Certificate(%v): %v", s, err)
		case !bytes.Equal(got.Raw, want[s].Raw):
			t.Errorf("Certificate(%v) differs from the token's", s)
		}
	}

	auth := pivgo.KeyAuth{PIN: pin}
	for _, s := range want.filled() {
		k, err := yk.PrivateKey(pivgoSlots[s], want[s].PublicKey, auth)
		if err != nil {
			t.Errorf("PrivateKey(%v): %v", s, err)
			continue
		}
		switch pub := want[s].PublicKey.(type) {
		case *rsa.PublicKey:
			if s == piv.SlotKeyManagement {
				//lint:ignore SA1019 the card decrypts PKCS #1 v1.5, which PIV clients send (OpenSC CKM_RSA_PKCS, piv-go): the test needs such a ciphertext
				ct, err := rsa.EncryptPKCS1v15(rand.Reader, pub, sessionKey)
				if err != nil {
					t.Fatal(err)
				}
				pt, err := k.(crypto.Decrypter).Decrypt(rand.Reader, ct, nil)
				if err != nil || !bytes.Equal(pt, sessionKey) {
					t.Errorf("%v: decrypted %X, %v; want %X", s, pt, err, sessionKey)
				}
				continue
			}
			signer := k.(crypto.Signer)
			sig, err := signer.Sign(rand.Reader, digest[:], crypto.SHA256)
			if err != nil {
				t.Errorf("%v: PKCS #1 v1.5 signature: %v", s, err)
			} else if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
				t.Errorf("%v: PKCS #1 v1.5 signature does not verify: %v", s, err)
			}
			pss := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
			sig, err = signer.Sign(rand.Reader, digest[:], pss)
			if err != nil {
				t.Errorf("%v: PSS signature: %v", s, err)
			} else if err := rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, pss); err != nil {
				t.Errorf("%v: PSS signature does not verify: %v", s, err)
			}
		case *ecdsa.PublicKey:
			sig, err := k.(crypto.Signer).Sign(rand.Reader, digest[:], crypto.SHA256)
			if err != nil {
				t.Errorf("%v: ECDSA signature: %v", s, err)
			} else if !ecdsa.VerifyASN1(pub, digest[:], sig) {
				t.Errorf("%v: ECDSA signature does not verify", s)
			}
		}
	}
}
