package domain

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// UnreachableError reports that the libvirt daemon of URI could not be
// reached or stopped answering: its socket is missing, nobody listens, the
// network or ssh failed, or the connection broke. A command can print a hint
// such as "is libvirtd running? (systemctl start libvirtd)".
type UnreachableError struct {
	URI string // the connection URI, as given
	Err error  // why: the dial error, ssh's own message, io.EOF...
}

// Error says which daemon is unreachable and why.
func (e *UnreachableError) Error() string {
	return fmt.Sprintf("domain: libvirt at %s is unreachable: %v", e.URI, e.Err)
}

// Unwrap returns why.
func (e *UnreachableError) Unwrap() error { return e.Err }

// dial opens the byte stream to the daemon of u: a unix socket, a TCP
// connection (plain or TLS), or the standard input and output of ssh. It
// fails with *UnreachableError when the daemon cannot be reached; other
// errors (TLS credentials missing on this machine) are returned as they are.
func dial(ctx context.Context, u *connURI) (net.Conn, error) {
	var d net.Dialer
	unreachable := func(err error) error { return &UnreachableError{URI: u.raw, Err: err} }
	switch u.transport {
	case transportUnix:
		c, err := d.DialContext(ctx, "unix", u.unixSocket())
		if err != nil {
			return nil, unreachable(err)
		}
		return c, nil
	case transportTCP:
		c, err := d.DialContext(ctx, "tcp", u.addr())
		if err != nil {
			return nil, unreachable(err)
		}
		return c, nil
	case transportTLS:
		conf, err := tlsClientConfig(u)
		if err != nil {
			return nil, err
		}
		c, err := d.DialContext(ctx, "tcp", u.addr())
		if err != nil {
			return nil, unreachable(err)
		}
		tc, err := tlsHandshake(ctx, c, conf)
		if err != nil {
			return nil, unreachable(err)
		}
		return tc, nil
	case transportSSH:
		return dialSSH(ctx, u)
	}
	return nil, fmt.Errorf("domain: %w: transport %q", ErrInvalidURI, u.transport)
}

// tlsHandshake completes the TLS handshake on c and reads the byte libvirtd
// sends after it: 1 when it accepted the client's certificate (libvirt's
// virNetClientSetTLSSession).
func tlsHandshake(ctx context.Context, c net.Conn, conf *tls.Config) (net.Conn, error) {
	tc := tls.Client(c, conf)
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, err
	}
	var b [1]byte
	if _, err := io.ReadFull(tc, b[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("reading the server's verdict on our certificate: %w", err)
	}
	if b[0] != 1 {
		c.Close()
		return nil, errors.New("the server refused our certificate (or our address)")
	}
	if ctx.Err() != nil {
		c.Close()
		return nil, ctx.Err()
	}
	return tc, nil
}

// tlsClientConfig loads the client credentials from where libvirt looks for
// them (https://libvirt.org/kbase/tlscerts.html): the pkipath option's
// directory (cacert.pem, clientcert.pem, clientkey.pem); else, for a user
// other than root, ~/.pki/libvirt, each file falling back to the system
// location; else /etc/pki/CA/cacert.pem, /etc/pki/libvirt/clientcert.pem and
// /etc/pki/libvirt/private/clientkey.pem.
func tlsClientConfig(u *connURI) (*tls.Config, error) {
	ca, cert, key := tlsFiles(u.pkiPath, os.Geteuid() == 0)
	certPEM, err := os.ReadFile(cert)
	if err != nil {
		return nil, fmt.Errorf("domain: TLS client certificate for %s: %w", u.raw, err)
	}
	keyPEM, err := os.ReadFile(key)
	if err != nil {
		return nil, fmt.Errorf("domain: TLS client key for %s: %w", u.raw, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("domain: TLS client credentials %s, %s: %w", cert, key, err)
	}
	conf := &tls.Config{
		Certificates: []tls.Certificate{pair},
		ServerName:   u.host,
		MinVersion:   tls.VersionTLS12,
	}
	if u.noVerify {
		// no_verify=1: libvirt skips checking the server's
		// certificate; so do we, on the user's explicit request.
		conf.InsecureSkipVerify = true //nolint:gosec
		return conf, nil
	}
	caPEM, err := os.ReadFile(ca)
	if err != nil {
		return nil, fmt.Errorf("domain: TLS CA certificate for %s: %w", u.raw, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("domain: TLS CA certificate %s: no certificate in it", ca)
	}
	conf.RootCAs = pool
	return conf, nil
}

// tlsFiles returns the CA certificate, client certificate and client key
// files libvirt would read.
func tlsFiles(pkiPath string, root bool) (ca, cert, key string) {
	if pkiPath != "" {
		return filepath.Join(pkiPath, "cacert.pem"), filepath.Join(pkiPath, "clientcert.pem"), filepath.Join(pkiPath, "clientkey.pem")
	}
	ca, cert, key = "/etc/pki/CA/cacert.pem", "/etc/pki/libvirt/clientcert.pem", "/etc/pki/libvirt/private/clientkey.pem"
	if root {
		return ca, cert, key
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ca, cert, key
	}
	dir := filepath.Join(home, ".pki", "libvirt")
	pick := func(user, system string) string {
		if _, err := os.Stat(user); err == nil {
			return user
		}
		return system
	}
	return pick(filepath.Join(dir, "cacert.pem"), ca), pick(filepath.Join(dir, "clientcert.pem"), cert), pick(filepath.Join(dir, "clientkey.pem"), key)
}

// The ssh transport.
//
// As libvirt does (virNetSocketNewConnectSSH), the system ssh runs with the
// user's configuration, agent and known_hosts, and on the host runs
// virt-ssh-helper (which finds the daemon's socket there) or, without it,
// netcat on the daemon's socket. The connection is ssh's standard input and
// output.

// sshArgs returns the ssh command line for u, program first.
func sshArgs(u *connURI) ([]string, error) {
	prog := u.command
	if prog == "" {
		prog = "ssh"
	}
	args := []string{prog}
	if u.port != "" {
		args = append(args, "-p", u.port)
	}
	if u.user != "" {
		args = append(args, "-l", u.user)
	}
	if u.keyfile != "" {
		args = append(args, "-i", u.keyfile)
	}
	args = append(args, "-T", "-e", "none")
	if u.noTTY {
		args = append(args, "-o", "BatchMode=yes")
	}
	if u.noVerify {
		args = append(args, "-o", "StrictHostKeyChecking=no")
	}
	remote, err := sshRemoteCommand(u)
	if err != nil {
		return nil, err
	}
	return append(args, "--", u.host, remote), nil
}

// sshRemoteCommand is libvirt's virNetClientSSHHelperCommand: the command
// the remote shell runs to reach the daemon.
func sshRemoteCommand(u *connURI) (string, error) {
	proxy := u.proxy
	if proxy == "auto" && (u.netcat != "" || u.socket != "") {
		// An explicit netcat or socket means the netcat proxy:
		// virt-ssh-helper finds the socket by itself.
		proxy = "netcat"
	}
	if proxy == "native" && (u.netcat != "" || u.socket != "") {
		return "", fmt.Errorf("domain: %w: %s: netcat and socket do not go with proxy=native", ErrInvalidURI, u.raw)
	}
	nc := u.netcat
	if nc == "" {
		nc = "nc"
	}
	sock := u.socket
	if sock == "" {
		sock = "/var/run/libvirt/libvirt-sock"
	}
	// The inner script, quoted once for sh -c; the remote user's shell
	// removes the outer quotes.
	ncCmd := fmt.Sprintf(`if %[1]s -q 2>&1 | grep "requires an argument" >/dev/null 2>&1; then ARG=-q0; else ARG=; fi; exec %[1]s $ARG -U %[2]s`,
		shellQuote(nc), shellQuote(sock))
	helperCmd := "exec virt-ssh-helper " + shellQuote(u.name)
	var script string
	switch proxy {
	case "netcat":
		script = ncCmd
	case "native":
		script = helperCmd
	default:
		script = "if command -v virt-ssh-helper >/dev/null 2>&1; then " + helperCmd + "; else " + ncCmd + "; fi"
	}
	return "sh -c " + shellQuote(script), nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// dialSSH starts ssh and returns its standard input and output as a
// connection. ssh's own messages (a refused key, an unknown host) become
// the error when the connection fails before libvirt answers.
func dialSSH(ctx context.Context, u *connURI) (net.Conn, error) {
	args, err := sshArgs(u)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(args[0], args[1:]...)
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("domain: ssh: %w", err)
	}
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		stdinR.Close()
		stdinW.Close()
		return nil, fmt.Errorf("domain: ssh: %w", err)
	}
	c := &cmdConn{cmd: cmd, r: stdoutR, w: stdinW, stderr: &tailBuffer{max: 4096}}
	cmd.Stdin = stdinR
	cmd.Stdout = stdoutW
	cmd.Stderr = c.stderr
	cmd.WaitDelay = time.Second
	err = cmd.Start()
	stdinR.Close()
	stdoutW.Close()
	if err != nil {
		stdoutR.Close()
		stdinW.Close()
		return nil, &UnreachableError{URI: u.raw, Err: fmt.Errorf("starting %s: %w", args[0], err)}
	}
	if ctx.Err() != nil {
		c.Close()
		return nil, ctx.Err()
	}
	return c, nil
}

// cmdConn is a command's standard output and input as a net.Conn. Close
// closes both, kills the command and waits for it.
type cmdConn struct {
	cmd    *exec.Cmd
	r      *os.File // the command's standard output
	w      *os.File // the command's standard input
	stderr *tailBuffer

	closeOnce sync.Once
}

func (c *cmdConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *cmdConn) Write(p []byte) (int, error) { return c.w.Write(p) }

// Close ends the command (its input closed first, then killed) and waits
// for it.
func (c *cmdConn) Close() error {
	c.closeOnce.Do(func() {
		c.w.Close()
		c.r.Close()
		if c.cmd.Process != nil {
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
	})
	return nil
}

// Stderr returns the end of what the command printed on its standard error.
func (c *cmdConn) Stderr() string { return strings.TrimSpace(c.stderr.String()) }

func (c *cmdConn) LocalAddr() net.Addr                { return cmdAddr(c.cmd.Path) }
func (c *cmdConn) RemoteAddr() net.Addr               { return cmdAddr(c.cmd.Path) }
func (c *cmdConn) SetDeadline(t time.Time) error      { return c.r.SetDeadline(t) }
func (c *cmdConn) SetReadDeadline(t time.Time) error  { return c.r.SetReadDeadline(t) }
func (c *cmdConn) SetWriteDeadline(t time.Time) error { return c.w.SetWriteDeadline(t) }

type cmdAddr string

func (a cmdAddr) Network() string { return "exec" }
func (a cmdAddr) String() string  { return string(a) }

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
