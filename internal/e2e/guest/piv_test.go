package guest_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	e2e "github.com/vscardkit/vscardkit/internal/e2e/guest"
	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/piv"
)

// newChallenge returns 32 random bytes, the data the guest signs.
func newChallenge(t testing.TB) []byte {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// checkPIV checks a piv run: the certificates OpenSC lists (wantCerts maps
// OpenSC's object id to a word its label must hold), the certificate and
// the signature made with key id 01.
func checkPIV(t testing.TB, r run, challenge []byte, wantCerts map[string]string) {
	t.Helper()
	var certs []string
	for i := 0; ; i++ {
		v, ok := r.values[fmt.Sprintf("cert.%d", i)]
		if !ok {
			break
		}
		certs = append(certs, v)
	}
	t.Logf("guest: token %q, %s objects, certificates %q, key 01 %s, mechanisms %s",
		r.values["token_label"], r.values["objects"], certs, r.values["keytype"], r.values["mechanisms"])
	if r.values["certs"] != fmt.Sprint(len(wantCerts)) || len(certs) != len(wantCerts) {
		t.Errorf("the guest lists %s certificates %q, want %d", r.values["certs"], certs, len(wantCerts))
	}
	for id, word := range wantCerts {
		if !slices.ContainsFunc(certs, func(c string) bool {
			gotID, label, _ := strings.Cut(c, " ")
			return gotID == id && strings.Contains(label, word)
		}) {
			t.Errorf("the guest lists no certificate %s %q: %q", id, word, certs)
		}
	}
	if r.values["challenge"] != hex.EncodeToString(challenge) {
		t.Errorf("the guest signed %s, want the challenge %x", r.values["challenge"], challenge)
	}
	if r.values["sign_rc"] != "0" {
		t.Errorf("pkcs11-tool --login --sign exited with %s: %v", r.values["sign_rc"], r.errors)
	}
}

// TestPKCS11Card: vscclient-go --card pkcs11: with two certificates and
// keys in a softhsm2 token. In the guest, pkcs11-tool lists both PIV
// certificates, reads the PIV Authentication one, logs in with the PIN and
// signs a challenge with its key; the host checks the certificate is the
// token's and the signature verifies with the token's public key.
func TestPKCS11Card(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	testImage(t)
	h := harness.NewSoftHSM(t, "guest-e2e")
	auth := h.AddIdentity(t, harness.IdentitySpec{Alg: harness.RSA2048, ID: []byte{0x01}, Label: "guest auth",
		KeyUsage: x509.KeyUsageDigitalSignature})
	h.AddIdentity(t, harness.IdentitySpec{Alg: harness.P256, ID: []byte{0x02}, Label: "guest signing",
		KeyUsage: x509.KeyUsageContentCommitment})
	c := e2e.Smartcard(harness.FreePort(t))
	challenge := newChallenge(t)
	opts := bootOptions(t, c, "wait_card,readers,piv", map[string]string{
		"pin": h.PIN, "keyid": "01", "challenge": hex.EncodeToString(challenge)})
	vm := boot(t, ctx, c, opts)
	client := startClient(t, c, []string{"SOFTHSM2_CONF=" + h.Conf}, "--card", h.URI(""))
	rs := waitRuns(t, ctx, vm, opts)

	checkReaders(t, rs[1], piv.ATR())
	// OpenSC's PIV driver names its objects after the slots: 01 is 9A
	// (PIV Authentication), 02 is 9C (Digital Signature).
	checkPIV(t, rs[2], challenge, map[string]string{"01": "PIV Authentication", "02": "Digital Signature"})
	cert, err := e2e.Certificate(rs[2].values)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cert.Raw, auth.Cert.Raw) {
		t.Errorf("the guest read the certificate %q, want the token's %q", cert.Subject, auth.Cert.Subject)
	}
	if err := e2e.VerifySignature(auth.Public(), rs[2].values); err != nil {
		t.Errorf("with the token's public key: %v", err)
	}
	if strings.Contains(client.Output(), h.PIN) {
		t.Errorf("vscclient-go's output shows the PIN:\n%s", client.Output())
	}
}

// softFingerprint is how vscclient-go --card soft reports its certificate
// for slot 9A: the first 8 bytes of its SHA-256.
var softFingerprint = regexp.MustCompile(`soft card: slot 9A: .*SHA-256 ([0-9A-F]{16})`)

// TestSoftCard: vscclient-go --card soft. In the guest, raw APDUs show that
// the PIN stays verified across a SELECT of the selected PIV application
// (OpenSC re-selects it at each transaction for some cards); pkcs11-tool
// lists the certificate, logs in and signs, and the host checks the
// signature with the certificate the guest read, which must be the one
// vscclient-go generated (its fingerprint); then the guest times 200
// SELECTs in one opensc-tool call (BenchmarkGuestAPDULatency measures
// them).
func TestSoftCard(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	testImage(t)
	c := e2e.Smartcard(harness.FreePort(t))
	challenge := newChallenge(t)
	const (
		selectPIV    = "00a4040009a00000030800001000"
		verifyStatus = "00200080"                   // VERIFY without data: is the PIN verified?
		verifyPIN    = "0020008008313233343536ffff" // the soft card's default PIN, 123456
	)
	apdus := []string{selectPIV, verifyStatus, verifyPIN, selectPIV, verifyStatus}
	opts := bootOptions(t, c, "wait_card,readers,apdu,piv,latency", map[string]string{
		"apdus": strings.Join(apdus, ","), "pin": "123456", "keyid": "01",
		"challenge": hex.EncodeToString(challenge), "count": "200", "apdu": selectNoData})
	vm := boot(t, ctx, c, opts)
	client := startClient(t, c, nil, "--card", "soft")
	rs := waitRuns(t, ctx, vm, opts)

	checkReaders(t, rs[1], piv.ATR())
	// The application property template, then 63Cx (tries left, not
	// verified), 9000, the template again, and 9000: still verified.
	checkAPDUs(t, rs[2], []string{"61*9000", "63c*", "9000", "61*9000", "9000"})
	if n := len(rs[2].values["apdu.0"])/2 - 2; n != fciLen {
		t.Errorf("the SELECT answer has %d data bytes; BenchmarkGuestAPDULatency's floor-fci answers %d", n, fciLen)
	}
	checkPIV(t, rs[3], challenge, map[string]string{"01": "PIV Authentication"})
	cert, err := e2e.Certificate(rs[3].values)
	if err != nil {
		t.Fatal(err)
	}
	m := softFingerprint.FindStringSubmatch(client.Output())
	if m == nil {
		t.Fatalf("vscclient-go did not print its 9A certificate's fingerprint:\n%s", client.Output())
	}
	if sum := sha256.Sum256(cert.Raw); fmt.Sprintf("%X", sum[:8]) != m[1] {
		t.Errorf("the guest read a certificate with SHA-256 %X..., vscclient-go generated %s...", sum[:8], m[1])
	}
	if err := e2e.VerifySignature(cert.PublicKey, rs[3].values); err != nil {
		t.Errorf("with the certificate's public key: %v", err)
	}

	lat := rs[4].values
	if lat["responses"] != "200" {
		t.Errorf("opensc-tool printed %s responses to 200 SELECTs", lat["responses"])
	}
	t.Logf("guest: 200 SELECTs (P2 0C) in one opensc-tool call: %s ms (1-APDU call %s ms), %s µs per APDU",
		lat["total_ms"], lat["base_ms"], lat["per_apdu_us"])
}
