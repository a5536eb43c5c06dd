// Package tlscerts makes a small PKI for a TLS smartcard chardev: a CA, a
// server certificate for QEMU and a client certificate for vscclient-go, in
// the files QEMU's tls-creds-x509 object reads (ca-cert.pem,
// server-cert.pem, server-key.pem) and the ones a client uses
// (client-cert.pem, client-key.pem), for users who have no PKI of their own
// and for tests.
//
// Keys are ECDSA P-256, written unencrypted as PKCS#8 ("PRIVATE KEY") with
// mode 0600. The certificates carry what QEMU's sanity checks look for
// (QEMU crypto/tlscredsx509.c): the CA is a CA with keyCertSign; the server
// and client certificates are not CAs, have digitalSignature and
// keyEncipherment, and the serverAuth or clientAuth extended key usage. The
// CA's private key is not kept: to issue more certificates, generate a new
// set.
//
// # References
//
//   - QEMU documentation, docs/system/tls.rst: the x509 credential files
//     and what QEMU checks in them.
//   - libvirt's qemu.conf: chardev_tls_x509_cert_dir, whose directory holds
//     these files for libvirt-started QEMU.
//   - RFC 5280: X.509 certificate profile.
package tlscerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// The file names QEMU's tls-creds-x509 object reads (server side: the CA,
// server certificate and key; client side: the CA, client certificate and
// key).
const (
	CACertFile     = "ca-cert.pem"
	ServerCertFile = "server-cert.pem"
	ServerKeyFile  = "server-key.pem"
	ClientCertFile = "client-cert.pem"
	ClientKeyFile  = "client-key.pem"
)

// DefaultValidity is how long the certificates are valid when
// Options.Validity is zero.
const DefaultValidity = 825 * 24 * time.Hour

// ErrExists is returned (wrapped) by Write when a file it would write exists
// and overwriting was not asked for.
var ErrExists = errors.New("file exists")

// Options configure a certificate set. The zero value is a set for a server
// reached as localhost, 127.0.0.1 or ::1.
type Options struct {
	// Hosts are the DNS names and IP addresses the server certificate is
	// valid for: what clients dial. Zero means localhost, 127.0.0.1, ::1.
	Hosts []string
	// ClientName is the client certificate's common name. Zero means
	// "vscclient-go".
	ClientName string
	// Validity is how long the certificates are valid from now. Zero means
	// DefaultValidity.
	Validity time.Duration
}

// Set is a generated certificate set, in PEM.
type Set struct {
	CACert     []byte
	ServerCert []byte
	ServerKey  []byte
	ClientCert []byte
	ClientKey  []byte
}

// New generates a CA, and a server and a client certificate signed by it.
func New(opts Options) (*Set, error) {
	hosts := opts.Hosts
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	clientName := opts.ClientName
	if clientName == "" {
		clientName = "vscclient-go"
	}
	validity := opts.Validity
	if validity == 0 {
		validity = DefaultValidity
	}
	if validity < 0 {
		return nil, fmt.Errorf("tlscerts: negative validity %v", validity)
	}
	// A little back-dating tolerates a VM host whose clock is behind.
	notBefore := time.Now().Add(-time.Hour).UTC()
	notAfter := notBefore.Add(validity + time.Hour)

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tlscerts: generating the CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "vscardkit smartcard chardev CA"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, caCert, err := sign(caTmpl, nil, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("tlscerts: the CA certificate: %w", err)
	}

	serverTmpl := leafTemplate("vscardkit smartcard chardev server", notBefore, notAfter, x509.ExtKeyUsageServerAuth)
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			serverTmpl.IPAddresses = append(serverTmpl.IPAddresses, ip)
		} else if h != "" {
			serverTmpl.DNSNames = append(serverTmpl.DNSNames, h)
		}
	}
	if len(serverTmpl.IPAddresses)+len(serverTmpl.DNSNames) > 0 {
		serverTmpl.Subject.CommonName = hosts[0]
	}
	serverCert, serverKey, err := issue(serverTmpl, caCert, caKey)
	if err != nil {
		return nil, fmt.Errorf("tlscerts: the server certificate: %w", err)
	}
	clientCert, clientKey, err := issue(leafTemplate(clientName, notBefore, notAfter, x509.ExtKeyUsageClientAuth), caCert, caKey)
	if err != nil {
		return nil, fmt.Errorf("tlscerts: the client certificate: %w", err)
	}
	return &Set{
		CACert:     pemBlock("CERTIFICATE", caDER),
		ServerCert: serverCert,
		ServerKey:  serverKey,
		ClientCert: clientCert,
		ClientKey:  clientKey,
	}, nil
}

func leafTemplate(cn string, notBefore, notAfter time.Time, usage x509.ExtKeyUsage) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{usage},
		BasicConstraintsValid: true,
	}
}

// issue makes a key and a certificate for tmpl signed by the CA, both PEM.
func issue(tmpl, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, _, err := sign(tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", keyDER), nil
}

// sign signs tmpl (self-signed when parent is nil) with a random serial.
func sign(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) ([]byte, *x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return der, cert, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// files lists what Write writes: name, content, mode.
func (s *Set) files() []struct {
	name string
	data []byte
	mode os.FileMode
} {
	return []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{CACertFile, s.CACert, 0o644},
		{ServerCertFile, s.ServerCert, 0o644},
		{ServerKeyFile, s.ServerKey, 0o600},
		{ClientCertFile, s.ClientCert, 0o644},
		{ClientKeyFile, s.ClientKey, 0o600},
	}
}

// Write writes the set into dir (created with mode 0755 if missing) under
// the names QEMU expects. Unless overwrite is true it refuses, before
// writing anything, when one of the files exists (error wrapping ErrExists).
// Keys get mode 0600: a QEMU that does not run as the files' owner (libvirt's
// libvirt-qemu user) needs them made readable to it.
func (s *Set) Write(dir string, overwrite bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("tlscerts: %w", err)
	}
	if !overwrite {
		for _, f := range s.files() {
			p := filepath.Join(dir, f.name)
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("tlscerts: %s: %w", p, ErrExists)
			}
		}
	}
	for _, f := range s.files() {
		if err := writeFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("tlscerts: %w", err)
		}
	}
	return nil
}

// writeFile writes data to path through a temporary file and a rename, so
// that a reader never sees half a key and the mode is set before the data
// is there.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tlscerts-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Generate is New followed by Write(dir, overwrite).
func Generate(dir string, opts Options, overwrite bool) (*Set, error) {
	s, err := New(opts)
	if err != nil {
		return nil, err
	}
	if err := s.Write(dir, overwrite); err != nil {
		return nil, err
	}
	return s, nil
}

// Load reads a set from dir (for tests that reuse one a command wrote).
func Load(dir string) (*Set, error) {
	s := &Set{}
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{
		{CACertFile, &s.CACert},
		{ServerCertFile, &s.ServerCert},
		{ServerKeyFile, &s.ServerKey},
		{ClientCertFile, &s.ClientCert},
		{ClientKeyFile, &s.ClientKey},
	} {
		b, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil {
			return nil, fmt.Errorf("tlscerts: %w", err)
		}
		*f.dst = b
	}
	return s, nil
}

func (s *Set) caPool() (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CACert) {
		return nil, errors.New("tlscerts: no certificate in the CA PEM")
	}
	return pool, nil
}

// ServerConfig returns a TLS server configuration that presents the server
// certificate and requires a client certificate from the CA, as QEMU's
// tls-creds-x509 with endpoint=server and verify-peer=on does.
func (s *Set) ServerConfig() (*tls.Config, error) {
	cert, err := tls.X509KeyPair(s.ServerCert, s.ServerKey)
	if err != nil {
		return nil, fmt.Errorf("tlscerts: the server key pair: %w", err)
	}
	pool, err := s.caPool()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// ClientConfig returns a TLS client configuration that presents the client
// certificate and verifies the server against the CA and serverName.
func (s *Set) ClientConfig(serverName string) (*tls.Config, error) {
	cert, err := tls.X509KeyPair(s.ClientCert, s.ClientKey)
	if err != nil {
		return nil, fmt.Errorf("tlscerts: the client key pair: %w", err)
	}
	pool, err := s.caPool()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   serverName,
		MinVersion:   tls.VersionTLS12,
	}, nil
}
