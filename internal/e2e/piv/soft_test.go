package piv_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"strings"
	"testing"

	"github.com/vscardkit/vscardkit/internal/apdu"
	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/piv"
	"github.com/vscardkit/vscardkit/internal/softstore"
)

// TestSoftCard is issue 4's "Done when" for the software cards:
// vscclient-go --card soft (a generated P-256 key in 9A) in reader 0 and
// --card soft:DIR (PEM files: RSA 2048 in 9A, P-256 in 9C) in reader 1,
// through the fake host and vpcd, used by OpenSC and by piv-go.
func TestSoftCard(t *testing.T) {
	r := newRig(t)
	gen := r.insert(t, 0, nil, "--card", "soft")

	dir := t.TempDir()
	want := slotCerts{}
	for _, k := range []struct {
		slot piv.Slot
		alg  softstore.Algorithm
		cn   string
	}{
		{piv.SlotAuthentication, softstore.RSA2048, "e2e soft auth"},
		{piv.SlotSignature, softstore.P256, "e2e soft signing"},
	} {
		want[k.slot] = harness.WriteKeyPair(t, dir, k.slot, k.alg, k.cn)
	}
	fromDir := r.insert(t, 1, nil, "--card", "soft:"+dir)

	t.Run("generated", func(t *testing.T) {
		// The key exists only in vscclient-go: take the certificate from
		// the card, check it is the one vscclient-go printed at start
		// (subject, algorithm, SHA-256), then verify against its key.
		der := gen.pkcs11File(t, nil, "--read-object", "--type", "cert", "--id", openscObjects[piv.SlotAuthentication].id)
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(cert.Raw)
		line := fmt.Sprintf("soft card: slot %v: %s, %s, SHA-256 %X", piv.SlotAuthentication, cert.Subject, cert.PublicKeyAlgorithm, sum[:8])
		if !strings.Contains(gen.client.Output(), line) {
			t.Fatalf("vscclient-go did not print %q:\n%s", line, gen.client.Output())
		}
		if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() || cert.Subject.CommonName != softstore.GeneratedCommonName {
			t.Fatalf("9A holds %s with a %T key, want a P-256 key for %q", cert.Subject, cert.PublicKey, softstore.GeneratedCommonName)
		}
		want := slotCerts{piv.SlotAuthentication: cert}
		t.Run("OpenSC", func(t *testing.T) { checkOpenSC(t, gen, want, softstore.DefaultPIN) })
		t.Run("piv-go", func(t *testing.T) { checkPivGo(t, r.pcscd.Readers[0], want, softstore.DefaultPIN) })
	})

	t.Run("PEM files", func(t *testing.T) {
		t.Run("OpenSC", func(t *testing.T) { checkOpenSC(t, fromDir, want, softstore.DefaultPIN) })
		t.Run("piv-go", func(t *testing.T) { checkPivGo(t, r.pcscd.Readers[1], want, softstore.DefaultPIN) })
		// The soft store counts tries itself (3), and the guest sees that
		// count; the guard cuts in below it, at 2 wrong PINs in a row.
		t.Run("wrong PIN", func(t *testing.T) {
			fromDir.expectSWs(t, "a wrong PIN, then the right one",
				step{selectPIV, apdu.SWOK},
				step{pinReset, apdu.SWOK},
				step{pinStatus, 0x63C3},
				step{verifyAPDU(wrongPIN(softstore.DefaultPIN)), 0x63C2},
				step{pinStatus, 0x63C2},
				step{verifyAPDU(softstore.DefaultPIN), apdu.SWOK},
				step{pinReset, apdu.SWOK},
				step{pinStatus, 0x63C3},
			)
		})
	})
}
