package configcli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/vscardkit/vscardkit/internal/cli"
	"github.com/vscardkit/vscardkit/internal/tlscerts"
)

// runTLSCerts implements `config tls-certs [flags] DIR`.
func runTLSCerts(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tls-certs", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		hosts      certList
		clientName string
		days       string
		force      bool
	)
	fs.Var(&hosts, "host", "")
	fs.StringVar(&clientName, "client-name", "", "")
	fs.StringVar(&days, "days", "825", "")
	fs.BoolVar(&force, "force", false, "")
	if err := cli.ParseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			io.WriteString(stdout, tlsUsage)
			return err
		}
		return cli.WithHint(err, "run 'vscclient-go config tls-certs --help'")
	}
	if fs.NArg() != 1 {
		return cli.WithHint(cli.Usagef("tls-certs takes one directory"), "vscclient-go config tls-certs [--host NAME]... DIR")
	}
	dir := fs.Arg(0)
	n, err := parseDays(days)
	if err != nil {
		return err
	}
	for i, h := range hosts {
		// [::1] as in a URL is the address ::1.
		if inner, ok := strings.CutPrefix(h, "["); ok && strings.HasSuffix(inner, "]") && net.ParseIP(strings.TrimSuffix(inner, "]")) != nil {
			hosts[i] = strings.TrimSuffix(inner, "]")
			continue
		}
		if strings.TrimSpace(h) == "" || strings.ContainsAny(h, " ,/[]") {
			return cli.Usagef("--host %q is not a host name or address", h)
		}
	}
	_, err = tlscerts.Generate(dir, tlscerts.Options{
		Hosts:      hosts,
		ClientName: clientName,
		Validity:   time.Duration(n) * 24 * time.Hour,
	}, force)
	if errors.Is(err, tlscerts.ErrExists) {
		return cli.WithHint(err, "add --force to replace the certificates (clients holding the old ones stop working)")
	}
	if err != nil {
		return err
	}
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	fmt.Fprintf(stdout, `wrote a CA, a server and a client certificate to %s:
  for QEMU (the VM host): %s, %s, %s
  for the client:         %s, %s, %s
the server certificate is valid for: %s

next:
  vscclient-go config --tls --tls-dir %s
  (with libvirt, also add the printed qemu.conf settings and restart libvirtd;
   QEMU must be able to read %s: libvirt runs it as libvirt-qemu unless
   qemu.conf says otherwise)
  copy %s, %s and %s to the client machine
`, abs,
		tlscerts.CACertFile, tlscerts.ServerCertFile, tlscerts.ServerKeyFile,
		tlscerts.CACertFile, tlscerts.ClientCertFile, tlscerts.ClientKeyFile,
		strings.Join(hosts, ", "),
		shellQuote(abs), tlscerts.ServerKeyFile,
		tlscerts.CACertFile, tlscerts.ClientCertFile, tlscerts.ClientKeyFile)
	_ = stderr
	return nil
}
