// Package tlsconfig builds the TLS configurations of the VSCard link from
// PEM files, with the defaults QEMU's tls-creds-x509 expects: TLS 1.2 or
// newer (1.3 where the peer offers it), the server's name checked, and
// client certificates when QEMU runs with verify-peer=on.
package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ErrNoCertificates is wrapped when a CA file holds no certificate.
var ErrNoCertificates = errors.New("no certificates")

// ErrIncompleteKeyPair is wrapped when a certificate file is given without
// its key file, or a key file without its certificate.
var ErrIncompleteKeyPair = errors.New("a certificate and its private key go together")

// checkPair refuses one of certFile and keyFile without the other, which
// tls.LoadX509KeyPair would report as a failure to open "".
func checkPair(what, certFile, keyFile string) error {
	switch {
	case certFile != "" && keyFile == "":
		return fmt.Errorf("tls: the %s certificate %s has no key file: %w", what, certFile, ErrIncompleteKeyPair)
	case certFile == "" && keyFile != "":
		return fmt.Errorf("tls: the %s key %s has no certificate file: %w", what, keyFile, ErrIncompleteKeyPair)
	}
	return nil
}

// Pool reads the PEM certificates in file.
func Pool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tls: reading CA certificates: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: %s: %w", file, ErrNoCertificates)
	}
	return pool, nil
}

// Client returns a client configuration. caFile ("" for the system roots)
// verifies the server; certFile and keyFile ("" for none) are the client
// certificate QEMU's verify-peer=on asks for; serverName ("" to take the
// dialed host) is checked against the server's certificate.
func Client(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		pool, err := Pool(caFile)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	if err := checkPair("client", certFile, keyFile); err != nil {
		return nil, err
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: loading the client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// Server returns a server configuration with the certificate in certFile
// and keyFile; with caFile set it requires and verifies client
// certificates signed by that CA.
func Server(certFile, keyFile, caFile string) (*tls.Config, error) {
	if err := checkPair("server", certFile, keyFile); err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: loading the server certificate: %w", err)
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if caFile != "" {
		pool, err := Pool(caFile)
		if err != nil {
			return nil, err
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}
