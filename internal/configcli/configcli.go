// Package configcli implements `vscclient-go config`: it prints the libvirt
// <smartcard> XML, the QEMU command line and the vscclient-go command for a
// smartcard described by flags, edits an existing domain XML to hold it,
// and (`config tls-certs DIR`) writes the certificates a TLS chardev needs.
// The generation itself is package xmlconfig; this package is flags, output
// and messages. cmd/vscclient-go calls Main.
//
// Errors are printed as `vscclient-go: error: ...`, followed by a `hint:`
// line where one helps. Exit codes: 0 success, 1 the request cannot be
// carried out (an invalid combination, a domain that cannot take the
// smartcard, an I/O error), 2 a usage error (unknown flag, bad value).
//
// # References
//
//   - package xmlconfig, for what is generated and why.
//   - FiloSottile/age, cmd/age: the usage text with examples, `error:` and
//     `hint:` lines.
package configcli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"libvirt.org/go/libvirtxml"

	"github.com/vscardkit/vscardkit/internal/cli"
	"github.com/vscardkit/vscardkit/internal/domain"
	"github.com/vscardkit/vscardkit/xmlconfig"
)

// Program is the name messages start with.
const Program = "vscclient-go"

// DefaultPort is the TCP port QEMU listens on when --port is not given (the
// one QEMU's and libvirt's documentation use).
const DefaultPort = 2001

// maxDomainSize bounds a domain XML read from a file or stdin.
const maxDomainSize = 16 << 20

const usage = `Usage:
  vscclient-go config [flags]                  print a smartcard setup: libvirt XML, QEMU argv, client command
  vscclient-go config --domain FILE [flags]    add the smartcard to an existing domain XML (FILE - is stdin)
  vscclient-go config tls-certs [flags] DIR    write a CA, a server and a client certificate for a TLS chardev

The smartcard (default: passthrough, QEMU listening on TCP 127.0.0.1:2001):
  --mode MODE           passthrough (default): vscclient-go (or a SPICE client) is the card;
                        host: QEMU presents a card of the VM host's NSS database;
                        host-certificates: QEMU presents a card made of three NSS certificates
  --transport T         passthrough: tcp (default), unix or spicevmc
  --host ADDR           address QEMU listens on (default 127.0.0.1; an IPv6 address with or
                        without brackets; anything else without --tls lets whoever connects
                        act as the guest's card)
  --port N              TCP port QEMU listens on (default 2001)
  --socket PATH         unix socket QEMU listens on (with --transport unix; default, for a domain
                        (--domain, --new-domain): /var/lib/vscardkit/sockets/NAME.sock,
                        one per domain, so that two domains never collide)
  --tls                 TLS on the TCP chardev (libvirt: tls='yes'; the client needs a certificate)
  --tls-dir DIR         QEMU's TLS directory on the VM host: ca-cert.pem, server-cert.pem,
                        server-key.pem (default /etc/pki/libvirt-chardev)
  --client-tls-dir DIR  where the client keeps ca-cert.pem, client-cert.pem, client-key.pem
                        (default: --tls-dir)
  --client-host NAME    the VM host's name or address as the client dials it (default: --host;
                        needed with --host 0.0.0.0 or ::)
  --cert NICKNAME       host-certificates: an NSS certificate nickname; give it three times
  --database DIR        host-certificates: the NSS database (default /etc/pki/nssdb)
  --address             add <address type='ccid' controller='0' slot='0'/> (the only one libvirt takes)
  --controller          add an explicit <controller type='ccid' index='0'/>
  --usb-port PORT       the controller's USB port, such as 2 or 1.3 (implies --controller)

What to print:
  --format F            xml, argv, client, qemu-conf or all (default all)
                        xml: the devices for the domain's <devices> (or, with --domain, the
                          whole edited domain; with --new-domain, a whole new one);
                        argv: the QEMU arguments for users without libvirt;
                        client: the vscclient-go command that connects to the card;
                        qemu-conf: the qemu.conf settings libvirt needs (TLS)
  --domain FILE         edit this domain XML (from 'virsh dumpxml'), - for stdin; the rest of the
                        document is kept byte for byte. A smartcard in the early draft form
                        (<smartcard name='ccid'><serial type='tcp'>...) is translated when no
                        smartcard flag is given
  --new-domain NAME     print a minimal complete domain (TCG, 64 MiB, no disk) to try a setup
  --output FILE         write to FILE instead of standard output, replacing it whole and only
                        when everything succeeded (FILE may be the --domain file itself)
  --libvirt URI         warn when another domain of this libvirt already takes the port or socket
                        (default qemu:///system, skipped when it cannot be reached; '' skips it)
  -h, --help            this help

Examples:
  # The default: libvirt XML, QEMU argv and client command for TCP 127.0.0.1:2001.
  vscclient-go config

  # Add the smartcard to a domain and load it back into libvirt. --output writes
  # win11.xml only when the edit succeeded; '> win11.xml' would leave it empty.
  virsh dumpxml --inactive win11 | vscclient-go config --domain - --format xml --output win11.xml &&
    virsh define win11.xml

  # Over a unix socket named after the domain (no port to collide with another VM's).
  virsh dumpxml --inactive win11 | vscclient-go config --domain - --transport unix \
      --format xml --output win11.xml && virsh define win11.xml

  # TLS for a client on another machine: certificates, then the setup.
  vscclient-go config tls-certs --host vmhost.example /etc/pki/libvirt-chardev
  vscclient-go config --host 0.0.0.0 --client-host vmhost.example --tls

  # Run the card on the machine with the reader (printed by --format client).
  vscclient-go --connect tcp://127.0.0.1:2001

  # QEMU without libvirt: paste the printed options into the QEMU command line.
  vscclient-go config --format argv
`

const tlsUsage = `Usage:
  vscclient-go config tls-certs [flags] DIR

Writes a new CA, a server certificate for QEMU and a client certificate for
vscclient-go into DIR, under the names QEMU's tls-creds-x509 reads:
ca-cert.pem, server-cert.pem, server-key.pem, client-cert.pem, client-key.pem.
Keys are ECDSA P-256 with mode 0600. The CA's key is not kept.

Flags:
  --host NAME        a DNS name or IP address the server certificate is valid for: what
                     the client dials; repeat for more (default: localhost, 127.0.0.1, ::1)
  --client-name CN   the client certificate's common name (default vscclient-go)
  --days N           validity in days (default 825)
  --force            overwrite existing files
  -h, --help         this help

Example:
  vscclient-go config tls-certs --host vmhost.example /etc/pki/libvirt-chardev
`

// Main runs `vscclient-go config` with args (the arguments after "config"),
// reading a domain from stdin when asked (--domain -), and returns the exit
// code. ctx is unused today: nothing blocks but stdin.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	_ = ctx
	var err error
	if len(args) > 0 && args[0] == "tls-certs" {
		err = runTLSCerts(args[1:], stdout, stderr)
	} else {
		err = run(args, stdin, stdout, stderr)
	}
	return report(err, stderr)
}

// report prints err and returns the exit code for it (the cli package's
// codes). It is cli.Report less its generic usage hint, which would name
// 'vscclient-go --help', and with the hints of hintFor for xmlconfig's
// errors, whose package prefix it leaves out.
func report(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return cli.ExitOK
	}
	code := cli.ExitFailure
	if errors.Is(err, cli.ErrUsage) {
		code = cli.ExitUsage
	}
	fmt.Fprintf(stderr, "%s: error: %s\n", Program, cli.Message(err))
	hint := cli.Hint(err)
	if hint == "" {
		hint = hintFor(err)
	}
	if hint != "" {
		fmt.Fprintf(stderr, "hint: %s\n", hint)
	}
	return code
}

// hintFor returns the hint for an xmlconfig error.
func hintFor(err error) string {
	switch {
	case errors.Is(err, xmlconfig.ErrSecondSmartcard) && strings.Contains(err.Error(), "draft form"):
		return "run with --domain and the output flags alone to translate the draft smartcard, then change it with virsh edit"
	case errors.Is(err, xmlconfig.ErrSecondSmartcard):
		return "remove the domain's <smartcard> first (virsh edit DOMAIN) to replace it"
	case errors.Is(err, xmlconfig.ErrNotDomain):
		return "--domain takes a libvirt domain XML, such as the output of 'virsh dumpxml DOMAIN'"
	case errors.Is(err, xmlconfig.ErrNoClientHost):
		return "add --client-host NAME: the VM host's name or address as the client reaches it"
	case errors.Is(err, xmlconfig.ErrNoClient):
		return "a vscclient-go client needs --mode passthrough with --transport tcp or unix"
	case errors.Is(err, xmlconfig.ErrIncompatibleDomain) && strings.Contains(err.Error(), "spicevmc"):
		return "add SPICE graphics (<graphics type='spice'/>) to the domain, or use --transport tcp"
	case errors.Is(err, xmlconfig.ErrIncompatibleDomain):
		return "give the domain a USB controller (remove <controller type='usb' model='none'/>)"
	case errors.Is(err, xmlconfig.ErrInvalidConfig):
		return "run 'vscclient-go config --help' for the flags and examples"
	}
	return ""
}

// certList is a repeatable string flag.
type certList []string

func (l *certList) String() string     { return strings.Join(*l, ",") }
func (l *certList) Set(s string) error { *l = append(*l, s); return nil }

// portValue is --port: a number (xmlconfig checks its range).
type portValue int

func (p *portValue) String() string { return strconv.Itoa(int(*p)) }
func (p *portValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("want a TCP port number, 1 to 65535")
	}
	*p = portValue(n)
	return nil
}

// options are the parsed flags of `config`.
type options struct {
	c         xmlconfig.Config
	format    string
	domain    string
	newDomain string
	output    string // --output FILE; "" for stdout
	libvirt   string // --libvirt URI for the clash check; "" skips it
	// cardFlags reports whether a flag that describes the smartcard was
	// given (as opposed to output flags).
	cardFlags bool
}

// outputFlags are the flags that do not describe the smartcard.
var outputFlags = map[string]bool{"format": true, "domain": true, "new-domain": true, "output": true, "libvirt": true}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("config", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		mode, transport, host, socket, tlsDir, clientTLSDir, clientHost, database, usbPort string
		port                                                                               int
		useTLS, address, controller                                                        bool
		certs                                                                              certList
		o                                                                                  options
	)
	fs.StringVar(&mode, "mode", string(xmlconfig.Passthrough), "")
	fs.StringVar(&transport, "transport", "", "")
	fs.StringVar(&host, "host", "", "")
	fs.Var((*portValue)(&port), "port", "")
	fs.StringVar(&socket, "socket", "", "")
	fs.BoolVar(&useTLS, "tls", false, "")
	fs.StringVar(&tlsDir, "tls-dir", "", "")
	fs.StringVar(&clientTLSDir, "client-tls-dir", "", "")
	fs.StringVar(&clientHost, "client-host", "", "")
	fs.Var(&certs, "cert", "")
	fs.StringVar(&database, "database", "", "")
	fs.BoolVar(&address, "address", false, "")
	fs.BoolVar(&controller, "controller", false, "")
	fs.StringVar(&usbPort, "usb-port", "", "")
	fs.StringVar(&o.format, "format", "all", "")
	fs.StringVar(&o.domain, "domain", "", "")
	fs.StringVar(&o.newDomain, "new-domain", "", "")
	fs.StringVar(&o.output, "output", "", "")
	fs.StringVar(&o.libvirt, "libvirt", domain.DefaultURI, "")
	if err := cli.ParseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, cli.WithHint(err, "run 'vscclient-go config --help' for the flags and examples")
	}
	if fs.NArg() > 0 {
		return nil, cli.WithHint(cli.Usagef("unexpected argument %q", fs.Arg(0)),
			"config takes flags only (or the subcommand tls-certs DIR); run 'vscclient-go config --help'")
	}
	portSet := false
	fs.Visit(func(f *flag.Flag) {
		if !outputFlags[f.Name] {
			o.cardFlags = true
		}
		portSet = portSet || f.Name == "port"
	})
	switch o.format {
	case "all", "xml", "argv", "client", "qemu-conf":
	default:
		return nil, cli.WithHint(cli.Usagef("unknown --format %q", o.format), "use xml, argv, client, qemu-conf or all")
	}
	if o.domain != "" && o.newDomain != "" {
		return nil, cli.Usagef("--domain and --new-domain exclude each other: edit a domain, or make a new one")
	}

	c := xmlconfig.Config{
		Mode:         xmlconfig.Mode(mode),
		Transport:    xmlconfig.Transport(transport),
		Host:         host,
		Port:         port,
		Path:         socket,
		TLS:          useTLS,
		TLSDir:       tlsDir,
		ClientTLSDir: clientTLSDir,
		ClientHost:   clientHost,
		Certificates: certs,
		Database:     database,
	}
	// The default port belongs to TCP only: the other transports and
	// modes must not trip over it.
	if !portSet && c.Mode == xmlconfig.Passthrough && (c.Transport == "" || c.Transport == xmlconfig.TCP) {
		c.Port = DefaultPort
	}
	if address {
		c.Address = &xmlconfig.CCIDAddress{}
	}
	if controller || usbPort != "" {
		c.Controller = &xmlconfig.CCIDController{USBPort: usbPort}
	}
	o.c = c
	return &o, nil
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	o, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		io.WriteString(stdout, usage)
		return err
	}
	if err != nil {
		return err
	}

	c := o.c
	var msgs []string    // notes and warnings, printed on success
	var domainXML []byte // the whole domain, when there is one
	name := o.newDomain  // the domain's name, when there is one
	var doc []byte
	if o.domain != "" {
		if doc, err = readDomain(o.domain, stdin); err != nil {
			return err
		}
		var d libvirtxml.Domain
		if d.Unmarshal(string(doc)) == nil {
			name = d.Name
		}
	}
	if c.Mode == xmlconfig.Passthrough && c.Transport == xmlconfig.Unix && c.Path == "" {
		if name == "" {
			return cli.WithHint(cli.Usagef("--transport unix needs --socket PATH"),
				"or give the domain (--domain FILE, --new-domain NAME): its name makes a socket path no other domain has")
		}
		c.Path = DefaultSocket(name)
		if statSocketDir() != nil {
			msgs = append(msgs, "note: "+SocketDir+" does not exist here: the vscardkit package makes it (group vscardkit, setgid, so the service may use libvirt's sockets); "+
				"without the package, make it on the VM host with a group the client runs in: install -d -m 2770 -g GROUP "+SocketDir)
		}
	}
	if o.domain != "" {
		e, err := editDomain(doc, c, o.cardFlags)
		if err != nil {
			return err
		}
		for _, n := range e.Notices {
			msgs = append(msgs, "note: "+n)
		}
		domainXML, c = e.Domain, e.Config
	} else if err := c.Validate(); err != nil {
		return err
	}
	if o.newDomain != "" {
		if domainXML, err = xmlconfig.NewDomainXML(o.newDomain, c); err != nil {
			return err
		}
	}
	msgs = append(msgs, c.Warnings()...)
	msgs = append(msgs, clashes(o.libvirt, name, c)...)

	// Everything is put together before anything is written: a failure
	// leaves stdout empty and --output's file as it was.
	var out bytes.Buffer
	if err := write(&out, o, c, domainXML); err != nil {
		return err
	}
	if o.output != "" {
		if err := writeFileAtomic(o.output, out.Bytes()); err != nil {
			return err
		}
	} else if _, err := stdout.Write(out.Bytes()); err != nil {
		return err
	}
	for _, m := range msgs {
		fmt.Fprintf(stderr, "%s: %s\n", Program, m)
	}
	return nil
}

// SocketDir is where `config --transport unix` puts a domain's socket when
// --socket is not given. libvirt makes a listening unix chardev itself, as
// root with mode 0775, so a client that is not root may connect only when
// the socket's group is one of its groups: the vscardkit package makes this
// directory setgid, group vscardkit (the service's user), and every socket
// made in it takes that group.
const SocketDir = "/var/lib/vscardkit/sockets"

// statSocketDir says whether SocketDir is there (tests replace it: their
// output must not depend on the machine).
var statSocketDir = func() error { _, err := os.Stat(SocketDir); return err }

// DefaultSocket is the unix socket `config --transport unix` gives domain
// name when --socket is not given: in SocketDir, named after the domain so
// that two domains never take the same one.
func DefaultSocket(name string) string {
	return SocketDir + "/" + name + ".sock"
}

// clashes returns a warning for each endpoint of another domain of the
// libvirt at uri that c's chardev would take as well: the same TCP port
// (on the same or any address) or the same socket. A libvirt that cannot
// be reached (within 2 s) gives none.
func clashes(uri, self string, c xmlconfig.Config) []string {
	if uri == "" || c.Mode != xmlconfig.Passthrough || c.Transport == xmlconfig.SpiceVMC {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := domain.Dial(ctx, uri, nil)
	if err != nil {
		return nil
	}
	defer conn.Close()
	eps, err := conn.Endpoints(ctx)
	if err != nil {
		return nil
	}
	var out []string
	for _, ep := range eps {
		if ep.Domain == self {
			continue
		}
		switch {
		case c.Transport == xmlconfig.Unix && ep.Network == "unix" && ep.Path == c.Path:
			out = append(out, fmt.Sprintf("warning: domain %s's %s already listens on %s (libvirt %s): give another --socket, or leave it out to get one named after the domain", ep.Domain, ep.Device, ep.Path, uri))
		case c.Transport != xmlconfig.Unix && ep.Network == "tcp" && ep.Port == c.Port:
			out = append(out, fmt.Sprintf("warning: domain %s's %s already takes TCP port %d (libvirt %s): the second domain to start will fail; give another --port, or --transport unix", ep.Domain, ep.Device, ep.Port, uri))
		}
	}
	return out
}

// writeFileAtomic replaces path with b: it writes a temporary file in the
// same directory and renames it over path, so that path has either its old
// content or all of b. A new file gets mode 0644, an existing one keeps its
// mode.
func writeFileAtomic(path string, b []byte) (err error) {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		if !fi.Mode().IsRegular() {
			return cli.WithHint(fmt.Errorf("--output %s: not a regular file", path), "give --output a file name, or leave it out to print to standard output")
		}
		mode = fi.Mode().Perm()
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return cli.WithHint(fmt.Errorf("writing %s: %w", path, err), "check that the directory exists and that you may write in it")
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// write prints what o.format asks for.
func write(stdout io.Writer, o *options, c xmlconfig.Config, domainXML []byte) error {
	switch o.format {
	case "xml":
		return writeXML(stdout, c, domainXML)
	case "argv":
		return writeArgv(stdout, c)
	case "client":
		return writeClient(stdout, c)
	case "qemu-conf":
		conf, err := c.QEMUConf()
		if err != nil {
			return err
		}
		if conf == "" {
			return cli.WithHint(errors.New("this configuration needs no qemu.conf settings"), "qemu.conf settings are for --tls")
		}
		_, err = io.WriteString(stdout, conf)
		return err
	}
	return writeAll(stdout, c, domainXML, o.domain != "" || o.newDomain != "")
}

// editDomain adds the smartcard to doc, or translates the draft smartcard
// doc has when no smartcard flag was given.
func editDomain(doc []byte, c xmlconfig.Config, cardFlags bool) (*xmlconfig.Edit, error) {
	if !cardFlags {
		e, err := xmlconfig.UpgradeDraft(doc)
		if err == nil || !errors.Is(err, xmlconfig.ErrNoDraft) {
			return e, err
		}
	}
	return xmlconfig.AddSmartcard(doc, c)
}

// readDomain reads the domain XML from path, or stdin for "-", refusing
// more than maxDomainSize bytes.
func readDomain(path string, stdin io.Reader) ([]byte, error) {
	var r io.Reader
	name := path
	if path == "-" {
		if stdin == nil {
			return nil, errors.New("--domain -: no standard input")
		}
		r, name = stdin, "standard input"
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, cli.WithHint(fmt.Errorf("reading the domain: %w", err), "save it with 'virsh dumpxml DOMAIN > FILE', or pipe it in with --domain -")
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxDomainSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading the domain from %s: %w", name, err)
	}
	if len(b) > maxDomainSize {
		return nil, fmt.Errorf("the domain in %s is larger than %d MiB; that is no domain XML", name, maxDomainSize>>20)
	}
	return b, nil
}

func writeXML(w io.Writer, c xmlconfig.Config, domainXML []byte) error {
	if domainXML != nil {
		_, err := w.Write(domainXML)
		return err
	}
	b, err := c.DevicesXML()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func writeArgv(w io.Writer, c xmlconfig.Config) error {
	args, err := c.QEMUArgs()
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, formatArgv(args))
	return err
}

// formatArgv writes QEMU arguments one option a line, shell-quoted, joined
// by backslash-newlines, ready to paste into a shell command line.
func formatArgv(args []string) string {
	var b strings.Builder
	for i := 0; i < len(args); i += 2 {
		b.WriteString(shellQuote(args[i]))
		if i+1 < len(args) {
			b.WriteByte(' ')
			b.WriteString(shellQuote(args[i+1]))
		}
		if i+2 < len(args) {
			b.WriteString(" \\")
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func writeClient(w io.Writer, c xmlconfig.Config) error {
	args, err := c.ClientArgs()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, clientCommand(args))
	return err
}

func clientCommand(args []string) string {
	words := []string{xmlconfig.ClientProgram}
	for _, a := range args {
		words = append(words, shellQuote(a))
	}
	return strings.Join(words, " ")
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,@+%[]", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// writeAll writes every form with a comment line before each.
func writeAll(w io.Writer, c xmlconfig.Config, domainXML []byte, whole bool) error {
	var b strings.Builder
	if whole {
		b.WriteString("# libvirt: the domain (save it and load it with virsh define FILE)\n")
		b.Write(domainXML)
		if len(domainXML) > 0 && domainXML[len(domainXML)-1] != '\n' {
			b.WriteByte('\n')
		}
	} else {
		b.WriteString("# libvirt: add to the domain's <devices> (virsh edit DOMAIN)\n")
		dev, err := c.DevicesXML()
		if err != nil {
			return err
		}
		b.Write(dev)
	}
	n := c
	if n.Mode == "" {
		n.Mode = xmlconfig.Passthrough
	}

	args, err := c.QEMUArgs()
	if err != nil {
		return err
	}
	need := "a USB controller (such as -usb on the pc machine)"
	if n.Controller != nil && n.Controller.USBPort != "" {
		need = "a USB controller with id=usb, as libvirt names it (such as -device piix3-usb-uhci,id=usb)"
	}
	if n.Mode == xmlconfig.Passthrough && n.Transport == xmlconfig.SpiceVMC {
		need += " and a SPICE display (-spice ...)"
	}
	fmt.Fprintf(&b, "\n# QEMU without libvirt: add to the command line; the VM needs %s\n", need)
	b.WriteString(formatArgv(args))

	conf, err := c.QEMUConf()
	if err != nil {
		return err
	}
	if conf != "" {
		b.WriteString("\n")
		b.WriteString(conf)
	}

	b.WriteString("\n")
	cl, err := c.ClientArgs()
	switch {
	case err == nil:
		b.WriteString("# the card: run on the machine with the reader or token\n")
		b.WriteString(clientCommand(cl) + "\n")
	case errors.Is(err, xmlconfig.ErrNoClientHost):
		b.WriteString("# the card: give --client-host NAME (the VM host as the client reaches it) for the client command\n")
	case errors.Is(err, xmlconfig.ErrNoClient):
		msg := err.Error()
		if i := strings.LastIndex(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
		fmt.Fprintf(&b, "# the card: no vscclient-go here; %s\n", msg)
	default:
		return err
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// parseDays parses a positive number of days.
func parseDays(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 100*365 {
		return 0, cli.Usagef("--days %q: want a number of days from 1 to 36500", s)
	}
	return n, nil
}
