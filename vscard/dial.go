package vscard

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// DialConfig configures Dial. A nil *DialConfig means plain TCP or unix, no
// TLS, and every Client default.
type DialConfig struct {
	ClientConfig

	// TLS, when set, wraps the connection in TLS as a client with this
	// configuration (QEMU's tls-creds-x509 with endpoint=server). When
	// ServerName is empty it is taken from the address's host.
	TLS *tls.Config

	// KeepAlive is the idle time after which TCP keep-alive probes start,
	// 5 s apart, 3 of them, to detect a host that vanished without closing
	// the connection (a crashed machine, a cut network); 0 means 15 s, so
	// an idle connection to a dead host ends within about 30 s; negative
	// disables keep-alives.
	KeepAlive time.Duration

	// UserTimeout bounds how long data the client sent may stay
	// unacknowledged before the connection is dropped (TCP_USER_TIMEOUT,
	// Linux); it ends a connection to a dead host while answers are in
	// flight. 0 means 30 s; negative leaves the kernel's default (about 15
	// minutes of retransmissions).
	UserTimeout time.Duration
}

// Dial connects to a VSCard host at address on network ("tcp", "tcp4",
// "tcp6" or "unix"), with TLS when cfg.TLS is set, and completes the
// handshake. ctx bounds the dial and the handshake.
//
// With TLS, Dial logs the session (version, cipher suite, server) at debug
// level to cfg.Logger. A TLS host that closes the connection before
// answering Init gets an error that says why QEMU does that: it refused the
// client's certificate (TLS 1.3 ends the client's handshake before the
// server has checked it).
//
// On TCP, Dial sets TCP_QUICKACK after every read (Linux), so that QEMU,
// which writes a message's header and payload separately, is not held back
// by Nagle's algorithm waiting for a delayed ACK when its chardev lacks
// nodelay=on (as libvirt creates it).
func Dial(ctx context.Context, network, address string, cfg *DialConfig) (*Client, error) {
	if cfg == nil {
		cfg = &DialConfig{}
	}
	d := net.Dialer{KeepAlive: cfg.KeepAlive}
	if cfg.KeepAlive >= 0 {
		idle := cfg.KeepAlive
		if idle == 0 {
			idle = 15 * time.Second
		}
		d.KeepAliveConfig = net.KeepAliveConfig{Enable: true, Idle: idle, Interval: 5 * time.Second, Count: 3}
	}
	userTimeout := cfg.UserTimeout
	if userTimeout == 0 {
		userTimeout = 30 * time.Second
	}
	if userTimeout > 0 && network != "unix" {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			rc.Control(func(fd uintptr) { serr = setUserTimeout(fd, userTimeout) })
			return serr
		}
	}
	nc, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("vscard: %w", err)
	}
	nc = withQuickAck(nc)
	if cfg.TLS != nil {
		tc := cfg.TLS.Clone()
		if tc.ServerName == "" && network != "unix" {
			if host, _, err := net.SplitHostPort(address); err == nil {
				tc.ServerName = host
			}
		}
		if tc.MinVersion == 0 {
			tc.MinVersion = tls.VersionTLS12
		}
		tlsConn := tls.Client(nc, tc)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			nc.Close()
			if wantsClientCert(err) {
				return nil, fmt.Errorf("vscard: TLS handshake with %s: %w (%s)", address, err, wantsCertHint)
			}
			return nil, fmt.Errorf("vscard: TLS handshake with %s: %w", address, err)
		}
		st := tlsConn.ConnectionState()
		server := ""
		if len(st.PeerCertificates) > 0 {
			server = st.PeerCertificates[0].Subject.String()
		}
		cfg.ClientConfig.logger().Debug("vscard: TLS session", "host", address,
			"version", tls.VersionName(st.Version), "cipher", tls.CipherSuiteName(st.CipherSuite), "server", server)
		nc = tlsConn
	}
	c, err := NewClient(ctx, nc, &cfg.ClientConfig)
	if err != nil && cfg.TLS == nil && network != "unix" && (errors.Is(err, ErrHostClosed) || isReset(err)) {
		// A chardev with TLS reads the client's Init as a broken
		// ClientHello and closes the connection.
		err = fmt.Errorf("%w (the host closed the connection before answering Init: a chardev with TLS (tls='yes', tls-creds) does that to a client without TLS; connect with tls:// and a client certificate)", err)
	}
	if err != nil && cfg.TLS != nil && wantsClientCert(err) {
		// TLS 1.3: the server's verdict on the client certificate comes
		// after the client's handshake, with the first read.
		err = fmt.Errorf("%w (%s)", err, wantsCertHint)
	} else if err != nil && cfg.TLS != nil && (errors.Is(err, ErrHostClosed) || isReset(err)) {
		// With TLS 1.3 the client's handshake is over before the server
		// has checked the client's certificate: QEMU (GnuTLS, verify-peer=on)
		// then closes the connection without an alert.
		err = fmt.Errorf("%w (the host closed the TLS connection before answering: QEMU with verify-peer=on does that when it refuses the client certificate: none was given, or its CA is not the one QEMU trusts)", err)
	}
	return c, err
}

// wantsCertHint follows an error wantsClientCert recognises.
const wantsCertHint = "the host wants a client certificate it trusts: give the client certificate and its key, signed by the CA the host trusts"

// wantsClientCert reports whether err is the server's TLS alert that it
// wants a client certificate it trusts (certificate_required or
// bad_certificate, RFC 8446 6.2). crypto/tls exports AlertError only for
// QUIC; over TCP a remote alert is a *net.OpError "remote error" around an
// unexported alert type, which reads as its AlertError does.
func wantsClientCert(err error) bool {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" || op.Err == nil {
		return false
	}
	s := op.Err.Error()
	return s == tls.AlertError(116).Error() || s == tls.AlertError(42).Error() // certificate_required, bad_certificate
}

// withQuickAck wraps a TCP connection so that every read re-arms
// TCP_QUICKACK; other connections are returned as they are.
func withQuickAck(nc net.Conn) net.Conn {
	tc, ok := nc.(*net.TCPConn)
	if !ok || !quickAckSupported {
		return nc
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nc
	}
	setQuickAck(rc)
	return &quickAckConn{TCPConn: tc, rc: rc}
}

// quickAckConn is a TCP connection that acknowledges every segment at once.
// Linux leaves quick-ACK mode on its own, so it is re-armed after each read.
type quickAckConn struct {
	*net.TCPConn
	rc interface {
		Control(func(fd uintptr)) error
	}
}

func (c *quickAckConn) Read(b []byte) (int, error) {
	n, err := c.TCPConn.Read(b)
	if n > 0 {
		setQuickAck(c.rc)
	}
	return n, err
}
