package tls_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/tlscerts"
)

func TestMain(m *testing.M) {
	code := m.Run()
	harness.CleanupCommands()
	os.Exit(code)
}

// pki is a certificate set written where QEMU and the client read it.
type pki struct {
	dir string
	set *tlscerts.Set
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	set, err := tlscerts.Generate(dir, tlscerts.Options{}, false)
	if err != nil {
		t.Fatal(err)
	}
	return &pki{dir: dir, set: set}
}

func (p *pki) file(name string) string { return filepath.Join(p.dir, name) }

// startTLSQEMU starts QEMU with its chardev behind TLS, verify-peer=on, with
// the server credentials in p and, unless "", a GnuTLS priority string.
func startTLSQEMU(t *testing.T, p *pki, priority string) *harness.QEMU {
	t.Helper()
	obj := "tls-creds-x509,id=tls0,endpoint=server,dir=" + p.dir + ",verify-peer=on"
	if priority != "" {
		obj += ",priority=" + priority
	}
	return harness.StartQEMU(t, harness.QEMUOptions{
		ChardevExtra: ",tls-creds=tls0",
		Args:         []string{"-object", obj},
	})
}

// client starts vscclient-go --card soft at debug level with args.
func client(t *testing.T, args ...string) *harness.Process {
	t.Helper()
	args = append([]string{"--card", "soft", "--log-level", "debug", "--max-backoff", "200ms"}, args...)
	return harness.Start(t, "vscclient-go", exec.Command(filepath.Join(harness.Commands(t), "vscclient-go"), slices.Clip(args)...))
}

// tlsArgs are the client's TLS flags for the CA of ca and the client
// certificate of cert (nil for none).
func tlsArgs(addr string, ca, cert *pki) []string {
	args := []string{"--connect", "tls://" + addr, "--tls-ca", ca.file(tlscerts.CACertFile)}
	if cert != nil {
		args = append(args, "--tls-cert", cert.file(tlscerts.ClientCertFile), "--tls-key", cert.file(tlscerts.ClientKeyFile))
	}
	return args
}

// announced waits until QEMU acknowledged the client's card.
func announced(t *testing.T, p *harness.Process) {
	t.Helper()
	harness.WaitFor(t, 20*time.Second, "the card announced", func() bool {
		return strings.Contains(p.Output(), `msg="card inserted"`) || p.Exited()
	})
	if p.Exited() {
		t.Fatalf("vscclient-go exited: %v\n%s", p.Err(), p.Output())
	}
}

// refused waits until the client has failed three times to get through,
// checks that the card never got in and that the log says why (want), and
// returns the first reason.
func refused(t *testing.T, p *harness.Process, want string) string {
	t.Helper()
	harness.WaitFor(t, 20*time.Second, "three refused attempts", func() bool {
		return strings.Count(p.Output(), "cannot reach the host") >= 3 || p.Exited()
	})
	out := p.Output()
	if p.Exited() || strings.Contains(out, "reader announced") || strings.Contains(out, "card inserted") {
		t.Fatalf("the client got through:\n%s", out)
	}
	_, reason, _ := strings.Cut(out, `msg="cannot reach the host; retrying"`)
	reason, _, _ = strings.Cut(reason, "\n")
	if !strings.Contains(reason, want) {
		t.Errorf("the first failure %s does not say %q:\n%s", reason, want, out)
	}
	return strings.TrimSpace(reason)
}
