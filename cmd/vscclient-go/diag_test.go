package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/vscard/vscardtest"
)

// wantOutput waits until p's output holds every one of want.
func wantOutput(t *testing.T, p *harness.Process, want ...string) {
	t.Helper()
	harness.WaitFor(t, 20*time.Second, "vscclient-go to say "+strings.Join(want, " / "), func() bool {
		out := p.Output()
		for _, w := range want {
			if !strings.Contains(out, w) {
				return false
			}
		}
		return true
	})
	t.Logf("vscclient-go said:\n%s", p.Output())
}

// A token whose certificates are all CA certificates (what a plain openssl
// req -x509 makes) becomes an empty card: vscclient-go says so, and says
// which --slot puts each one on it.
func TestTokenOfCACertificates(t *testing.T) {
	h := harness.NewSoftHSM(t, "cas")
	h.AddIdentity(t, harness.IdentitySpec{ID: []byte{0x01}, Label: "me (self-signed)", IsCA: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign})
	h.AddIdentity(t, harness.IdentitySpec{ID: []byte{0x02}, Label: "my CA", IsCA: true, KeyUsage: x509.KeyUsageCertSign})
	srv := vscardtest.NewServer()
	defer srv.Close()
	host, port, _ := net.SplitHostPort(srv.Addr())
	cmd := exec.Command(filepath.Join(harness.Commands(t), "vscclient-go"), "--card", h.URI("cas"), host, port)
	cmd.Env = append(cmd.Environ(), h.Env()...)
	p := harness.Start(t, "vscclient-go", cmd)
	wantOutput(t, p,
		`label="me (self-signed)"`, `why="it is a CA certificate`, `hint="--slot 9a=id:01 places it"`,
		`label="my CA"`,
		"the card has no certificate: the guest sees an empty PIV card")

	// Placed with --slot, it is on the card, with a warning that a CA
	// certificate may be refused; soft:DIR takes the same file alike.
	p.Stop()
	cmd = exec.Command(filepath.Join(harness.Commands(t), "vscclient-go"), "--card", h.URI("cas"), "--slot", "9a=id:01", host, port)
	cmd.Env = append(cmd.Environ(), h.Env()...)
	p = harness.Start(t, "vscclient-go", cmd)
	wantOutput(t, p, "token: slot 9A: CN=me (self-signed)", "a CA certificate is on the card", "basicConstraints=critical,CA:FALSE")
	p.Stop()

	dir := t.TempDir()
	writeSelfSignedCA(t, dir)
	p = client(t, "--card", "soft:"+dir, host, port)
	wantOutput(t, p, "soft card: slot 9A: CN=openssl req -x509", "a CA certificate is on the card")
}

// writeSelfSignedCA writes 9a.crt and 9a.key as openssl req -x509 makes
// them on Debian: a self-signed certificate with basicConstraints CA:TRUE.
func writeSelfSignedCA(t *testing.T, dir string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "openssl req -x509"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(filepath.Join(dir, "9a.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "9a.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600)
}
