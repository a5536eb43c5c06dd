package tlscerts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/vscard"
	"github.com/vscardkit/vscardkit/xmlconfig"
)

func parseCert(t *testing.T, p []byte) *x509.Certificate {
	t.Helper()
	b, rest := pem.Decode(p)
	if b == nil || b.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("not one PEM certificate: %q", p)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewChainsAndUsages(t *testing.T) {
	s, err := New(Options{Hosts: []string{"vmhost.example", "192.0.2.7"}, ClientName: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	ca := parseCert(t, s.CACert)
	server := parseCert(t, s.ServerCert)
	client := parseCert(t, s.ClientCert)
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA: IsCA=%v usage=%v, want a CA with keyCertSign", ca.IsCA, ca.KeyUsage)
	}
	for name, c := range map[string]*x509.Certificate{"server": server, "client": client} {
		if c.IsCA {
			t.Errorf("%s certificate is a CA", name)
		}
		// QEMU's sanity check wants both bits on a leaf certificate.
		want := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		if c.KeyUsage&want != want {
			t.Errorf("%s key usage %v lacks digitalSignature|keyEncipherment", name, c.KeyUsage)
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, host := range []string{"vmhost.example", "192.0.2.7"} {
		if _, err := server.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("server certificate for %s: %v", host, err)
		}
	}
	if _, err := server.Verify(x509.VerifyOptions{Roots: roots, DNSName: "other.example"}); err == nil {
		t.Errorf("server certificate verifies for a host it does not name")
	}
	if _, err := client.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if _, err := client.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Errorf("client certificate verifies as a server certificate")
	}
	if client.Subject.CommonName != "alice" {
		t.Errorf("client CN = %q, want alice", client.Subject.CommonName)
	}
}

func TestDefaultsServeLoopback(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	server := parseCert(t, s.ServerCert)
	roots := x509.NewCertPool()
	roots.AddCert(parseCert(t, s.CACert))
	for _, host := range []string{"localhost", "127.0.0.1", "::1"} {
		if _, err := server.Verify(x509.VerifyOptions{Roots: roots, DNSName: host}); err != nil {
			t.Errorf("default server certificate for %s: %v", host, err)
		}
	}
	if d := time.Until(server.NotAfter); d < DefaultValidity-time.Minute {
		t.Errorf("default validity %v, want about %v", d, DefaultValidity)
	}
}

func TestWriteNamesModesAndOverwrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	s, err := Generate(dir, Options{}, false)
	if err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{
		"ca-cert.pem": 0o644, "server-cert.pem": 0o644, "server-key.pem": 0o600,
		"client-cert.pem": 0o644, "client-key.pem": 0o600,
	} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
	}
	loaded, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if string(loaded.ServerKey) != string(s.ServerKey) || string(loaded.ClientCert) != string(s.ClientCert) {
		t.Errorf("Load does not return what Generate wrote")
	}

	// A second run refuses to overwrite, and writes nothing.
	before, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	if err := os.Remove(filepath.Join(dir, ClientKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(dir, Options{}, false); !errors.Is(err, ErrExists) {
		t.Fatalf("Generate over existing files: %v, want ErrExists", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ClientKeyFile)); !os.IsNotExist(err) {
		t.Errorf("a refused Generate wrote %s", ClientKeyFile)
	}
	if _, err := Generate(dir, Options{}, true); err != nil {
		t.Fatalf("Generate with overwrite: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	if string(before) == string(after) {
		t.Errorf("overwrite kept the old CA")
	}
}

// TestFileNamesMatchXMLConfig: the client command xmlconfig prints names
// the files this package writes.
func TestFileNamesMatchXMLConfig(t *testing.T) {
	if CACertFile != xmlconfig.CACertFile || ClientCertFile != xmlconfig.ClientCertFile || ClientKeyFile != xmlconfig.ClientKeyFile {
		t.Errorf("file names differ from xmlconfig's")
	}
}

// TestTLSConfigs runs a handshake between ServerConfig and ClientConfig, and
// checks that the server refuses a client without a certificate and one
// from another CA.
func TestTLSConfigs(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	good, err := s.ClientConfig("localhost")
	if err != nil {
		t.Fatal(err)
	}
	noCert := good.Clone()
	noCert.Certificates = nil
	foreign, err := other.ClientConfig("localhost")
	if err != nil {
		t.Fatal(err)
	}
	foreign.RootCAs = good.RootCAs // trusts the server, but its own cert is foreign

	for _, tc := range []struct {
		name   string
		client *tls.Config
		ok     bool
	}{
		{"good", good, true},
		{"no client certificate", noCert, false},
		{"client from another CA", foreign, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srvCfg, err := s.ServerConfig()
			if err != nil {
				t.Fatal(err)
			}
			c1, c2 := net.Pipe()
			defer c1.Close()
			defer c2.Close()
			errc := make(chan error, 1)
			go func() {
				srv := tls.Server(c2, srvCfg)
				err := srv.Handshake()
				if err == nil {
					// TLS 1.3 finishes the client's side before the
					// server has checked the client certificate:
					// read so the server's verdict reaches it.
					_, err = srv.Write([]byte{1})
				}
				c2.Close()
				errc <- err
			}()
			cl := tls.Client(c1, tc.client)
			err = cl.Handshake()
			if err == nil {
				var b [1]byte
				_, err = cl.Read(b[:])
			}
			srvErr := <-errc
			if tc.ok && (err != nil || srvErr != nil) {
				t.Fatalf("handshake failed: client %v, server %v", err, srvErr)
			}
			if !tc.ok && srvErr == nil {
				t.Fatalf("server accepted the client")
			}
		})
	}
}

// TestQEMUAcceptsTheSet starts QEMU with a tls-creds-x509 object on a
// generated directory (sanity checks on, verify-peer on) and completes the
// VSCard handshake over TLS with the client certificate.
func TestQEMUAcceptsTheSet(t *testing.T) {
	bin := harness.LookPath(t, "QEMU (qemu-system-x86)", "qemu-system-x86_64")
	dir := t.TempDir()
	set, err := Generate(dir, Options{}, false)
	if err != nil {
		t.Fatal(err)
	}
	port := harness.FreePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p := harness.Start(t, "qemu", exec.Command(bin,
		"-machine", "pc,accel=tcg", "-nodefaults", "-display", "none", "-S", "-usb",
		"-object", "tls-creds-x509,id=tls0,dir="+dir+",endpoint=server,verify-peer=on,sanity-check=on",
		"-device", "usb-ccid,id=ccid0",
		"-chardev", "socket,id=sc0,host=127.0.0.1,port="+strconv.Itoa(port)+",server=on,wait=off,tls-creds=tls0",
		"-device", "ccid-card-passthru,chardev=sc0,id=smartcard0,bus=ccid0.0"))
	harness.WaitListening(t, p, addr, 10*time.Second) // fails with QEMU's output when it refuses the credentials
	cfg, err := set.ClientConfig("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := vscard.Dial(ctx, "tcp", addr, &vscard.DialConfig{TLS: cfg})
	if err != nil {
		t.Fatalf("VSCard over TLS with QEMU: %v\n%s", err, p.Output())
	}
	defer c.Close()
	if in := c.HostInit(); string(in.Magic[:]) != vscard.Magic || in.Version != vscard.CurrentVersion {
		t.Errorf("QEMU's Init = %+v", in)
	}
}
