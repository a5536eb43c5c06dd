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

// runExit runs the vscclient-go binary to its end and returns its exit code
// and standard error.
func runExit(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(harness.Commands(t), "vscclient-go"), args...)
	cmd.Env = append(cmd.Environ(), env...)
	out, err := cmd.CombinedOutput()
	t.Logf("vscclient-go %s:\n%s", strings.Join(args, " "), out)
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// What a PKCS#11 URI gets wrong is said: a token label that is not there
// (with the labels that are), module_path for module-path; and the scheme
// takes any case.
func TestTokenURIMistakes(t *testing.T) {
	h := harness.NewSoftHSM(t, "alice")
	h.InitToken(t, "carol")
	h.AddIdentity(t, harness.IdentitySpec{Token: "alice", ID: []byte{0x01}, Label: "alice"})
	module, err := harness.SoftHSMModule()
	if err != nil {
		harness.Missing(t, "softhsm2", err)
	}
	code, out := runExit(t, h.Env(), "--card", "pkcs11:token=bob?module-path="+module, "127.0.0.1", "1")
	if code != 1 || !strings.Contains(out, "no token matches the URI: the module's tokens are ") || !strings.Contains(out, `"alice" (serial`) || !strings.Contains(out, `"carol" (serial`) {
		t.Errorf("token=bob: exit %d", code)
	}
	code, out = runExit(t, h.Env(), "--card", "pkcs11:token=alice?module_path="+module, "127.0.0.1", "1")
	if code != 1 || !strings.Contains(out, `the URI has "module_path", which RFC 7512 spells module-path`) || !strings.Contains(out, "hint: name the module's file in the URI") {
		t.Errorf("module_path: exit %d", code)
	}
	// A module without an initialised token (softhsm2 shows one empty slot).
	dir := t.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+dir+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out = runExit(t, []string{"SOFTHSM2_CONF=" + conf}, "--card", "pkcs11:token=alice?module-path="+module, "127.0.0.1", "1")
	if code != 1 || !strings.Contains(out, "none of the module's tokens is initialised (1 slot with a token; softhsm2-util --init-token") {
		t.Errorf("no initialised token: exit %d\n%s", code, out)
	}
	srv := vscardtest.NewServer()
	defer srv.Close()
	host, port, _ := net.SplitHostPort(srv.Addr())
	cmd := exec.Command(filepath.Join(harness.Commands(t), "vscclient-go"), "--card", "PKCS11:token=alice?module-path="+module, host, port)
	cmd.Env = append(cmd.Environ(), h.Env()...)
	p := harness.Start(t, "vscclient-go", cmd)
	wantOutput(t, p, `msg="card inserted"`)
}
