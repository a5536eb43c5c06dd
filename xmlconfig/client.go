package xmlconfig

import (
	"fmt"
	"net"
	"strconv"
)

// ClientProgram is the name of the client command ClientArgs describes.
const ClientProgram = "vscclient-go"

// The file names of the client's TLS credentials, as QEMU names a client
// endpoint's files (and as package internal/tlscerts writes them).
const (
	// CACertFile is the CA certificate that signed QEMU's and the
	// client's certificates.
	CACertFile = "ca-cert.pem"
	// ClientCertFile is the client's certificate.
	ClientCertFile = "client-cert.pem"
	// ClientKeyFile is the client's private key.
	ClientKeyFile = "client-key.pem"
)

// ClientArgs returns the arguments (after the program name, ClientProgram)
// of the vscclient-go command that connects to c's chardev:
//
//	--connect tcp://HOST:PORT
//	--connect unix:PATH
//	--connect tls://HOST:PORT --tls-ca DIR/ca-cert.pem --tls-cert DIR/client-cert.pem --tls-key DIR/client-key.pem
//
// It returns an error wrapping ErrNoClient for host modes and spicevmc (QEMU
// or the SPICE client is the card there), and ErrNoClientHost when QEMU
// listens on every address and c.ClientHost is empty.
func (c Config) ClientArgs() ([]string, error) {
	n, err := c.normalized()
	if err != nil {
		return nil, err
	}
	switch {
	case n.Mode != Passthrough:
		return nil, fmt.Errorf("xmlconfig: mode %s: %w: QEMU's ccid-card-emulated is the card", n.Mode, ErrNoClient)
	case n.Transport == SpiceVMC:
		return nil, fmt.Errorf("xmlconfig: transport %s: %w: the SPICE client (remote-viewer with smartcard support) is the card", n.Transport, ErrNoClient)
	case n.Transport == Unix:
		return []string{"--connect", "unix:" + n.Path}, nil
	}
	host := n.ClientHost
	if host == "" {
		if isUnspecified(n.Host) {
			return nil, fmt.Errorf("xmlconfig: %w (%s): give the VM host's name or address as the client host", ErrNoClientHost, n.Host)
		}
		host = n.Host
	}
	addr := net.JoinHostPort(host, strconv.Itoa(n.Port))
	if !n.TLS {
		return []string{"--connect", "tcp://" + addr}, nil
	}
	return []string{
		"--connect", "tls://" + addr,
		"--tls-ca", clientJoin(n.ClientTLSDir, CACertFile),
		"--tls-cert", clientJoin(n.ClientTLSDir, ClientCertFile),
		"--tls-key", clientJoin(n.ClientTLSDir, ClientKeyFile),
	}, nil
}
