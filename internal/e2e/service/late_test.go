package service_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/piv"
	"github.com/vscardkit/vscardkit/internal/softstore"
	"github.com/vscardkit/vscardkit/xmlconfig"
)

// TestServeCardOpensLate: a domain whose card does not open at first (its
// soft:DIR is missing) is a settled state (the service is up, the others
// are served); when the card opens on a retry, serve goes on with it.
func TestServeCardOpensLate(t *testing.T) {
	l := harness.StartLibvirtd(t, harness.LibvirtdOptions{})
	bin := harness.Commands(t)
	doc, err := xmlconfig.NewDomainXML("svc-late", xmlconfig.Config{Port: harness.FreePort(t)})
	if err != nil {
		t.Fatal(err)
	}
	define(t, l, doc)
	dir := t.TempDir()
	softDir := filepath.Join(dir, "card")
	cfgPath := filepath.Join(dir, "vscardkit.json")
	cfg := fmt.Sprintf(`{"libvirt": %q, "domains": {"svc-late": {"card": %q}}}`, l.URI, "soft:"+softDir)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	notify := newNotifySocket(t)
	cmd := exec.Command(filepath.Join(bin, "vscclient-go"), "serve", "--config", cfgPath, "--control", filepath.Join(dir, "control.sock"))
	cmd.Env = append(cmd.Environ(), "NOTIFY_SOCKET="+notify.path)
	srv := harness.Start(t, "vscclient-go serve", cmd)
	notify.wait(t, "READY=1", 30*time.Second)
	harness.WaitFor(t, 5*time.Second, "the card's failure reported", func() bool {
		return strings.Contains(srv.Output(), "cannot open the domain's card; trying again")
	})

	// The card's files appear: the retry (5 s on) opens it.
	if err := os.Mkdir(softDir, 0o700); err != nil {
		t.Fatal(err)
	}
	harness.WriteKeyPair(t, softDir, piv.SlotAuthentication, softstore.P256, "late card")
	harness.WaitFor(t, 20*time.Second, "the late card waiting for its domain", func() bool {
		return strings.Contains(srv.Output(), "the domain is off; waiting for it to start") || srv.Exited()
	})
	time.Sleep(200 * time.Millisecond) // the settled card's notification, after the log line
	if srv.Exited() {
		t.Fatalf("serve exited when the card opened late: %v\n%s", srv.Err(), srv.Output())
	}
	virsh(t, l, "start", "svc-late")
	harness.WaitFor(t, 10*time.Second, "the late card announced", func() bool {
		return strings.Contains(srv.Output(), "card inserted") || srv.Exited()
	})
	if err := srv.Stop(); err != nil {
		t.Fatalf("serve on SIGTERM: %v\n%s", err, srv.Output())
	}
}
