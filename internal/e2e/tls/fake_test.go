package tls_test

import (
	"crypto/tls"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/tlscerts"
	"github.com/vscardkit/vscardkit/vscard/vscardtest"
)

// fakeHost starts fake-ccid-server with TLS: the server credentials of srv
// and, unless nil, client certificates required from the CA of clients.
func fakeHost(t *testing.T, srv, clients *pki) (*harness.Process, string) {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(harness.FreePort(t)))
	args := []string{"--listen", addr, "--log-level", "debug",
		"--tls-cert", srv.file(tlscerts.ServerCertFile), "--tls-key", srv.file(tlscerts.ServerKeyFile)}
	if clients != nil {
		args = append(args, "--tls-ca", clients.file(tlscerts.CACertFile))
	}
	p := harness.Start(t, "fake-ccid-server", exec.Command(filepath.Join(harness.Commands(t), "fake-ccid-server"), args...))
	harness.WaitListening(t, p, addr, 10*time.Second)
	return p, addr
}

// Both of our sides: fake-ccid-server --tls-cert/--tls-key/--tls-ca and
// vscclient-go --connect tls://. The right client certificate gets the card
// in over TLS 1.3; no certificate, one of another CA, a server certificate
// of another CA and a wrong server name are refused, by the side that
// should refuse, and both logs say why.
func TestFakeHostTLS(t *testing.T) {
	good, other := newPKI(t), newPKI(t)
	t.Run("right client certificate", func(t *testing.T) {
		host, addr := fakeHost(t, good, good)
		p := client(t, tlsArgs(addr, good, good)...)
		announced(t, p)
		harness.WaitFor(t, 10*time.Second, "the card in fake-ccid-server's output", func() bool {
			return strings.Contains(host.Output(), "card-inserted") || strings.Contains(host.Output(), "card inserted")
		})
		if !strings.Contains(p.Output(), `version="TLS 1.3"`) {
			t.Errorf("no TLS 1.3 session in the client's log:\n%s", p.Output())
		}
	})
	for _, tc := range []struct {
		name          string
		server, trust *pki // the server's credentials, the CA it requires of clients
		args          func(addr string) []string
		wantClient    string
		wantHost      string // "" when the host sees no handshake fail
	}{
		{"no client certificate", good, good, func(a string) []string { return tlsArgs(a, good, nil) }, "certificate required", "client didn't provide a certificate"},
		{"client certificate of another CA", good, good, func(a string) []string { return tlsArgs(a, good, other) }, "unknown certificate authority", "certificate signed by unknown authority"},
		{"server certificate of another CA", other, good, func(a string) []string { return tlsArgs(a, good, good) }, "certificate signed by unknown authority", "bad certificate"},
		{"wrong server name", good, good, func(a string) []string {
			return append(tlsArgs(a, good, good), "--tls-server-name", "other.example")
		}, "not other.example", "bad certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host, addr := fakeHost(t, tc.server, tc.trust)
			p := client(t, tc.args(addr)...)
			reason := refused(t, p, tc.wantClient)
			p.Stop()
			t.Logf("client: %s", reason)
			harness.WaitFor(t, 5*time.Second, "the host's TLS failure", func() bool {
				return strings.Contains(host.Output(), "TLS handshake failed")
			})
			if strings.Contains(host.Output(), "card-inserted") || strings.Contains(host.Output(), "card inserted") {
				t.Errorf("the host saw a card:\n%s", host.Output())
			}
			_, line, _ := strings.Cut(host.Output(), "TLS handshake failed")
			line, _, _ = strings.Cut(line, "\n")
			if !strings.Contains(line, tc.wantHost) {
				t.Errorf("the host's log says %s, not %q", line, tc.wantHost)
			}
			t.Logf("host: %s", strings.TrimSpace(line))
		})
	}
}

// vscclient-go refuses a host that offers nothing newer than TLS 1.1.
func TestClientRefusesOldTLS(t *testing.T) {
	p := newPKI(t)
	cfg, err := p.set.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	srv := vscardtest.NewUnstartedServer()
	srv.TLS = cfg
	srv.Start()
	defer srv.Close()
	c := client(t, tlsArgs(srv.Addr(), p, p)...)
	reason := refused(t, c, "protocol version not supported")
	t.Logf("refused: %s", reason)
	if st := srv.Host().State(); st.ReaderAdded {
		t.Fatalf("the host has a reader: %+v", st)
	}
}

// A host that accepts the connection and never answers the ClientHello (as
// a QEMU chardev without TLS does) does not hold vscclient-go: the handshake
// gives up after the reply timeout (5 s), the log names the likely cause,
// and the client tries again.
func TestSilentTLSHost(t *testing.T) {
	p := newPKI(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- nc // held open, never read
		}
	}()
	defer func() {
		l.Close()
		for nc := range accepted {
			nc.Close()
		}
	}()
	c := client(t, tlsArgs(l.Addr().String(), p, p)...)
	harness.WaitFor(t, 15*time.Second, "the handshake given up", func() bool {
		return strings.Contains(c.Output(), "cannot reach the host") || c.Exited()
	})
	_, reason, _ := strings.Cut(c.Output(), `msg="cannot reach the host; retrying"`)
	reason, _, _ = strings.Cut(reason, "\n")
	if c.Exited() || !strings.Contains(reason, "TLS handshake") || !strings.Contains(reason, "deadline exceeded") || !strings.Contains(reason, "chardev without TLS") {
		t.Fatalf("the first failure: %s\n%s", reason, c.Output())
	}
	t.Logf("gave up: %s", strings.TrimSpace(reason))
}
