package tls_test

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/vscard"
)

// QEMU with TLS and verify-peer=on: vscclient-go with a client certificate
// of QEMU's CA gets its card in (QEMU acknowledged the ATR) over TLS 1.3;
// without a certificate, with one of another CA, with plain TCP, against a
// server certificate of another CA or under a name the certificate does not
// hold, it does not, and its log says why. QEMU's card device still works
// after all the refusals.
func TestQEMUVerifyPeer(t *testing.T) {
	good, other := newPKI(t), newPKI(t)
	q := startTLSQEMU(t, good, "")
	qOther := startTLSQEMU(t, other, "") // a server certificate from another CA
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no client certificate", tlsArgs(q.Addr, good, nil), "refuses the client certificate"},
		{"client certificate of another CA", tlsArgs(q.Addr, good, other), "refuses the client certificate"},
		{"plain TCP", []string{"--connect", "tcp://" + q.Addr}, "waiting for the host's Init"},
		{"server certificate of another CA", tlsArgs(qOther.Addr, good, good), "certificate signed by unknown authority"},
		{"wrong server name", append(tlsArgs(q.Addr, good, good), "--tls-server-name", "other.example"), "not other.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := client(t, tc.args...)
			reason := refused(t, p, tc.want)
			p.Stop()
			t.Logf("refused: %s", reason)
		})
	}
	t.Run("right client certificate", func(t *testing.T) {
		p := client(t, tlsArgs(q.Addr, good, good)...)
		announced(t, p)
		if !strings.Contains(p.Output(), `version="TLS 1.3"`) {
			t.Errorf("no TLS 1.3 session in the log:\n%s", p.Output())
		}
		session, _, _ := strings.Cut(p.Output()[strings.Index(p.Output(), `msg="vscard: TLS session"`):], "\n")
		t.Logf("%s", session)
	})
}

// What QEMU's GnuTLS offers, seen by a Go client with the right client
// certificate: TLS 1.3 when allowed, TLS 1.2 when the client goes no
// higher, and, with Debian 12's default GnuTLS priorities, TLS 1.1 and 1.0
// too, unless the tls-creds-x509 object's priority string removes them.
// vscclient-go never goes below 1.2 (see TestClientRefusesOldTLS).
func TestQEMUTLSVersions(t *testing.T) {
	p := newPKI(t)
	q := startTLSQEMU(t, p, "")
	strict := startTLSQEMU(t, p, "NORMAL:-VERS-TLS1.0:-VERS-TLS1.1")
	for _, tc := range []struct {
		name     string
		addr     string
		min, max uint16
		want     uint16 // 0: refused
	}{
		{"default", q.Addr, 0, 0, tls.VersionTLS13},
		{"at most 1.2", q.Addr, 0, tls.VersionTLS12, tls.VersionTLS12},
		{"at most 1.1", q.Addr, tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS11},
		{"at most 1.0", q.Addr, tls.VersionTLS10, tls.VersionTLS10, tls.VersionTLS10},
		{"priority without 1.0 and 1.1: default", strict.Addr, 0, 0, tls.VersionTLS13},
		{"priority without 1.0 and 1.1: at most 1.1", strict.Addr, tls.VersionTLS10, tls.VersionTLS11, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := p.set.ClientConfig("localhost")
			if err != nil {
				t.Fatal(err)
			}
			cfg.MinVersion, cfg.MaxVersion = tc.min, tc.max
			nc, err := net.DialTimeout("tcp", tc.addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			c := tls.Client(nc, cfg)
			err = c.Handshake()
			if tc.want == 0 {
				if err == nil {
					t.Fatalf("QEMU accepted %s", tls.VersionName(c.ConnectionState().Version))
				}
				t.Logf("refused: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			st := c.ConnectionState()
			t.Logf("QEMU negotiated %s, %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
			if st.Version != tc.want {
				t.Fatalf("negotiated %s, want %s", tls.VersionName(st.Version), tls.VersionName(tc.want))
			}
			// QEMU's card device answers over it.
			if err := vscard.WriteMessage(c, vscard.Message{Type: vscard.MsgInit, ReaderID: vscard.UndefinedReaderID, Payload: vscard.DefaultInit().Append(nil)}); err != nil {
				t.Fatal(err)
			}
			m, err := vscard.ReadMessage(c, 0)
			if err != nil || m.Type != vscard.MsgInit {
				t.Fatalf("QEMU's answer to Init: %v %v", m, err)
			}
		})
	}
}

// A TLS client pointed at a chardev without TLS wedges QEMU's card device
// until the VM restarts: its ClientHello, read as a VSCard header, claims a
// payload longer than QEMU's 64 KiB buffer, and QEMU keeps the bytes of an
// unfinished message for the next connection. Any peer that reaches the
// socket can do the same (an HTTP probe, here): this is why SECURITY.md
// says to keep the socket on loopback or behind TLS.
func TestTLSToPlainChardevWedgesQEMU(t *testing.T) {
	for _, probe := range []string{"TLS ClientHello", "HTTP request"} {
		t.Run(probe, func(t *testing.T) {
			q := harness.StartQEMU(t, harness.QEMUOptions{})
			if !initAnswered(t, q.Addr) {
				t.Fatal("a fresh QEMU does not answer Init")
			}
			nc, err := net.Dial("tcp", q.Addr)
			if err != nil {
				t.Fatal(err)
			}
			nc.SetDeadline(time.Now().Add(time.Second))
			switch probe {
			case "TLS ClientHello":
				tls.Client(nc, &tls.Config{ServerName: "localhost"}).Handshake() // times out: QEMU says nothing
			case "HTTP request":
				nc.Write([]byte("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"))
			}
			nc.Close()
			for range 2 {
				if initAnswered(t, q.Addr) {
					t.Fatalf("QEMU answered Init after a %s: not wedged (update SECURITY.md)", probe)
				}
			}
		})
	}
}

// initAnswered reports whether QEMU answers a new connection's Init within
// 2 s.
func initAnswered(t *testing.T, addr string) bool {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := vscard.WriteMessage(nc, vscard.Message{Type: vscard.MsgInit, ReaderID: vscard.UndefinedReaderID, Payload: vscard.DefaultInit().Append(nil)}); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		m, err := vscard.ReadMessage(nc, 0)
		if err != nil {
			return false
		}
		if m.Type == vscard.MsgInit {
			return true
		}
	}
}
