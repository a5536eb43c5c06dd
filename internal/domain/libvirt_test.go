package domain

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/leaktest"
	"github.com/vscardkit/vscardkit/internal/tlscerts"
	"github.com/vscardkit/vscardkit/xmlconfig"
)

// These tests run against a private libvirtd (internal/harness): a shared
// one that also listens on TCP and TLS on loopback, and, for the tests that
// kill the daemon, one of their own.

var (
	libvirtd harness.SharedLibvirtd
	// pkiDir holds a certificate set (internal/tlscerts): the chardev TLS
	// directory of QEMU and the daemon's own TLS credentials.
	pkiDir string
	// clientPKI is pkiDir's CA and client credentials under libvirt's
	// client names, for qemu+tls://...?pkipath=.
	clientPKI        string
	tcpPort, tlsPort int
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "domain-pki-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		pkiDir = filepath.Join(dir, "chardev")
		clientPKI = filepath.Join(dir, "client")
		set, err := tlscerts.Generate(pkiDir, tlscerts.Options{}, false)
		if err == nil {
			err = os.MkdirAll(clientPKI, 0o700)
		}
		for name, b := range map[string][]byte{"cacert.pem": set.CACert, "clientcert.pem": set.ClientCert, "clientkey.pem": set.ClientKey} {
			if err == nil {
				err = os.WriteFile(filepath.Join(clientPKI, name), b, 0o600)
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		tcpPort, tlsPort = freePort(), freePort()
		libvirtd.Options = harness.LibvirtdOptions{
			QEMUConf: fmt.Sprintf("chardev_tls_x509_cert_dir = %q\nchardev_tls_x509_verify = 1\n", pkiDir),
			LibvirtdConf: fmt.Sprintf(`listen_addr = "127.0.0.1"
listen_tcp = 1
tcp_port = "%d"
auth_tcp = "none"
listen_tls = 1
tls_port = "%d"
auth_tls = "none"
ca_file = %q
cert_file = %q
key_file = %q
`, tcpPort, tlsPort, filepath.Join(pkiDir, tlscerts.CACertFile), filepath.Join(pkiDir, tlscerts.ServerCertFile), filepath.Join(pkiDir, tlscerts.ServerKeyFile)),
			Listen: true,
		}
		defer func() {
			if err := libvirtd.Close(); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}()
		return m.Run()
	}())
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// define defines the domain doc (named name) and removes it when t ends.
func define(t *testing.T, l *harness.Libvirtd, name string, doc []byte) {
	t.Helper()
	l.Define(t, doc)
}

// smartcardDomain is xmlconfig's minimal domain with c's smartcard (no disk,
// TCG): it needs no guest to sit there with its chardev open.
func smartcardDomain(t *testing.T, name string, c xmlconfig.Config) []byte {
	t.Helper()
	doc, err := xmlconfig.NewDomainXML(name, c)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func bareDomain(name string) []byte { return harness.BareDomainXML(name) }

// virsh runs virsh and fails t on error; it returns when virsh has.
func virsh(t *testing.T, l *harness.Libvirtd, args ...string) {
	t.Helper()
	l.MustVirsh(t, args...)
}

func dialT(t *testing.T, uri string) *Conn {
	t.Helper()
	c, err := Dial(timeout(t, 30*time.Second), uri, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestLookup: running domains with a tcp smartcard (plain, TLS, bound to
// every address) and a unix one, each looked up over the unix socket, TCP
// and TLS, give their exact target; the domains without a smartcard
// vscclient-go can use give the typed errors; an unknown name lists the
// known ones.
func TestLookup(t *testing.T) {
	l := libvirtd.Get(t) // before leaktest: the shared daemon outlives the test
	leaktest.Check(t)
	t.Logf("libvirtd started in %v", l.Started)
	sock := filepath.Join(t.TempDir(), "sc.sock")
	pTCP, pTLS, pAny := freePort(), freePort(), freePort()
	running := []struct {
		name string
		c    xmlconfig.Config
		want Target
	}{
		{"vsck-dom-tcp", xmlconfig.Config{Port: pTCP}, Target{Network: "tcp", Address: "127.0.0.1:" + strconv.Itoa(pTCP), Listen: "127.0.0.1"}},
		{"vsck-dom-tls", xmlconfig.Config{Port: pTLS, TLS: true, TLSDir: pkiDir}, Target{Network: "tcp", Address: "127.0.0.1:" + strconv.Itoa(pTLS), TLS: true, Listen: "127.0.0.1"}},
		{"vsck-dom-any", xmlconfig.Config{Port: pAny, Host: "0.0.0.0"}, Target{Network: "tcp", Address: "127.0.0.1:" + strconv.Itoa(pAny), Listen: "0.0.0.0"}},
		{"vsck-dom-unix", xmlconfig.Config{Transport: xmlconfig.Unix, Path: sock}, Target{Network: "unix", Address: sock}},
	}
	for _, r := range running {
		define(t, l, r.name, smartcardDomain(t, r.name, r.c))
		start := time.Now()
		virsh(t, l, "start", "--paused", r.name)
		t.Logf("virsh start --paused %s took %v", r.name, time.Since(start))
	}
	define(t, l, "vsck-dom-stopped", smartcardDomain(t, "vsck-dom-stopped", xmlconfig.Config{Port: 1999}))
	define(t, l, "vsck-dom-bare", bareDomain("vsck-dom-bare"))
	define(t, l, "vsck-dom-host", smartcardDomain(t, "vsck-dom-host", xmlconfig.Config{Mode: xmlconfig.Host}))
	define(t, l, "vsck-dom-spice", smartcardDomain(t, "vsck-dom-spice", xmlconfig.Config{Transport: xmlconfig.SpiceVMC}))

	uris := map[string]string{
		"unix": l.URI,
		"tcp":  fmt.Sprintf("qemu+tcp://127.0.0.1:%d/system", tcpPort),
		"tls":  fmt.Sprintf("qemu+tls://localhost:%d/system?pkipath=%s", tlsPort, clientPKI),
	}
	for transport, uri := range uris {
		t.Run(transport, func(t *testing.T) {
			start := time.Now()
			c := dialT(t, uri)
			t.Logf("Dial %s took %v", uri, time.Since(start))
			ctx := timeout(t, 30*time.Second)
			for _, r := range running {
				d, err := c.Lookup(ctx, r.name)
				if err != nil {
					t.Fatal(err)
				}
				if d.State != Running || d.Err != nil || d.Target != r.want || d.ID < 0 || len(d.UUID) != 36 || d.LibvirtState != "paused" {
					t.Errorf("Lookup(%s) = %+v; want running (paused) with target %+v", r.name, d, r.want)
				}
			}
			d, err := c.Lookup(ctx, "vsck-dom-stopped")
			if err != nil || d.State != Stopped || d.ID != -1 || d.LibvirtState != "shut off" || d.Target.Address != "127.0.0.1:1999" {
				t.Errorf("Lookup(stopped) = %+v, %v; want stopped, the definition's target", d, err)
			}
			for name, want := range map[string]struct {
				err   error
				modes []string
			}{
				"vsck-dom-bare":  {ErrNoPassthrough, nil},
				"vsck-dom-host":  {ErrNoPassthrough, []string{"host"}},
				"vsck-dom-spice": {ErrSpiceVMC, []string{"passthrough"}},
			} {
				d, err := c.Lookup(ctx, name)
				var se *SmartcardError
				if err != nil || !errors.As(d.Err, &se) || !errors.Is(d.Err, want.err) || !slices.Equal(se.Modes, want.modes) {
					t.Errorf("Lookup(%s) = %+v, %v; want Err %v with modes %q", name, d, err, want.err, want.modes)
				} else {
					t.Logf("%s: %v", name, d.Err)
				}
			}
			_, err = c.Lookup(ctx, "vsck-no-such-domain")
			var nf *NotFoundError
			if !errors.As(err, &nf) || nf.Name != "vsck-no-such-domain" || !slices.Contains(nf.Known, "vsck-dom-tcp") || !slices.Contains(nf.Known, "vsck-dom-bare") || !slices.IsSorted(nf.Known) {
				t.Errorf("Lookup(unknown) = %v; want *NotFoundError listing the domains", err)
			} else {
				t.Logf("%v", err)
			}
			names, err := c.Domains(ctx)
			if err != nil || !slices.Contains(names, "vsck-dom-unix") || !slices.Contains(names, "vsck-dom-stopped") {
				t.Errorf("Domains = %q, %v", names, err)
			}
		})
	}

	// Endpoints: every smartcard's port or socket, running or not.
	c := dialT(t, l.URI)
	eps, err := c.Endpoints(timeout(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	want := map[Endpoint]bool{
		{Domain: "vsck-dom-tcp", Device: "smartcard", Network: "tcp", Host: "127.0.0.1", Port: pTCP, Live: true}: true,
		{Domain: "vsck-dom-any", Device: "smartcard", Network: "tcp", Host: "0.0.0.0", Port: pAny, Live: true}:   true,
		{Domain: "vsck-dom-unix", Device: "smartcard", Network: "unix", Path: sock, Live: true}:                  true,
		{Domain: "vsck-dom-stopped", Device: "smartcard", Network: "tcp", Host: "127.0.0.1", Port: 1999}:         true,
		{Domain: "vsck-dom-tls", Device: "smartcard", Network: "tcp", Host: "127.0.0.1", Port: pTLS, Live: true}: true,
	}
	for _, ep := range eps {
		delete(want, ep)
	}
	if len(want) > 0 {
		t.Errorf("Endpoints = %+v\nlacks %+v", eps, want)
	}
}

// TestUnreachable: a socket that does not exist is a *UnreachableError,
// from Dial and reported by Follow.
func TestUnreachable(t *testing.T) {
	leaktest.Check(t)
	uri := "qemu:///system?socket=" + filepath.Join(t.TempDir(), "no-such-sock")
	_, err := Dial(timeout(t, 10*time.Second), uri, nil)
	var ue *UnreachableError
	if !errors.As(err, &ue) || ue.URI != uri || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Dial = %v; want *UnreachableError for %s wrapping ENOENT", err, uri)
	}
	t.Logf("%v", err)
	// Nobody listens on this port.
	uri = fmt.Sprintf("qemu+tcp://127.0.0.1:%d/system", freePort())
	if _, err := Dial(timeout(t, 10*time.Second), uri, nil); !errors.As(err, &ue) {
		t.Fatalf("Dial = %v; want *UnreachableError", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan Status, 8)
	done := make(chan error)
	go func() { done <- Follow(ctx, uri, "x", nil, func(s Status) { got <- s }) }()
	select {
	case s := <-got:
		if s.State != Unreachable || !errors.As(s.Err, &ue) || s.Name != "x" {
			t.Errorf("first status %+v; want Unreachable", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no status from Follow")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Follow = %v, want context.Canceled", err)
	}
}

// TestWatcherSharesConnection: one Watcher follows several domains, each
// Follower getting its own first status.
func TestWatcherSharesConnection(t *testing.T) {
	l := libvirtd.Get(t)
	leaktest.Check(t)
	p := freePort()
	define(t, l, "vsck-share-a", smartcardDomain(t, "vsck-share-a", xmlconfig.Config{Port: p}))
	virsh(t, l, "start", "--paused", "vsck-share-a")
	define(t, l, "vsck-share-b", bareDomain("vsck-share-b"))
	w, err := NewWatcher(l.URI, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	want := map[string]State{"vsck-share-a": Running, "vsck-share-b": Stopped, "vsck-share-none": NotFound}
	got := make(chan Status, 8)
	for name := range want {
		w.Follow(name, func(s Status) { got <- s })
	}
	for range want {
		select {
		case s := <-got:
			if s.State != want[s.Name] {
				t.Errorf("%s: %+v, want %v", s.Name, s, want[s.Name])
			}
			if s.Name == "vsck-share-a" && s.Domain.Target.Address != "127.0.0.1:"+strconv.Itoa(p) {
				t.Errorf("%s: target %+v", s.Name, s.Domain.Target)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a follower got no status")
		}
	}
}
