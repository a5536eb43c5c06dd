package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/vscardkit/vscardkit/internal/bridge"
	"github.com/vscardkit/vscardkit/internal/cli"
	"github.com/vscardkit/vscardkit/internal/domain"
	"github.com/vscardkit/vscardkit/internal/tlsconfig"
	"github.com/vscardkit/vscardkit/vscard"
)

// vmCard is one card given to one VM: the card, the bridge that carries it
// to the VM's chardev and, for a libvirt domain, what points the bridge at
// the domain's chardev as the domain starts, stops and restarts.
type vmCard struct {
	name string // the libvirt domain; "" for a fixed host
	o    *options
	log  *slog.Logger
	card *card
	tls  *tls.Config // nil: no TLS flags given
	b    *bridge.Bridge

	onChange   func() // called when the status may have changed; nil: nothing
	settleOnce sync.Once
	settled    chan struct{} // closed once the client does its job or waits for the VM

	mu     sync.Mutex
	dstate domain.State // the domain's last reported state
	derr   error        // why the domain's smartcard cannot be reached, if so
	cause  string       // the last lifecycle event
}

// newVMCard opens the card and sets up the bridge; with a fixed host (o.connect
// set) the bridge has its target, otherwise (a domain) it gets one from follow.
func newVMCard(ctx context.Context, name string, o *options, log *slog.Logger, stderr io.Writer) (*vmCard, error) {
	c := &vmCard{name: name, o: o, log: log, settled: make(chan struct{})}
	var tgt bridge.Target
	if o.connect != "" {
		var err error
		if tgt, err = parseTarget(o.connect); err != nil {
			return nil, err
		}
	}
	if tgt.TLS || o.domain != "" && (o.tlsCA != "" || o.tlsCert != "" || o.tlsKey != "") {
		var err error
		if c.tls, err = tlsconfig.Client(o.tlsCA, o.tlsCert, o.tlsKey, o.tlsServerName); err != nil {
			return nil, err
		}
	} else if o.tlsCA != "" || o.tlsCert != "" || o.tlsKey != "" {
		return nil, cli.Usagef("--tls-* flags need --connect tls://HOST:PORT (or --domain, for a domain whose chardev has tls='yes')")
	}
	crd, err := openCard(ctx, o, log, stderr)
	if err != nil {
		return nil, err
	}
	c.card = crd
	// The connection's own records (TLS version, ignored messages) go to
	// the same log; they never hold APDU contents.
	dial := &vscard.DialConfig{ClientConfig: vscard.ClientConfig{Logger: log}, TLS: c.tls}
	c.b, err = bridge.New(bridge.Config{
		Network: tgt.Network, Address: tgt.Address, Dial: dial, Source: crd.src,
		Logger: log, APDUTrace: o.apduTrace, TraceSecrets: o.traceSecrets,
		MaxBackoff: o.maxBackoff, OnStatus: c.bridgeStatus, DialHint: permissionHint,
	})
	if err != nil {
		crd.release()
		return nil, err
	}
	return c, nil
}

// close releases the card; call it once run has returned.
func (c *vmCard) close() { c.card.release() }

// run runs the bridge until ctx ends; with w (a domain), it follows the
// domain on w too.
func (c *vmCard) run(ctx context.Context, w *domain.Watcher) error {
	if w != nil {
		f := w.Follow(c.name, c.follow)
		defer f.Stop()
	}
	return c.b.Run(ctx)
}

// follow points the bridge at the domain's chardev as libvirt reports it.
func (c *vmCard) follow(st domain.Status) {
	defer c.changed()
	c.mu.Lock()
	c.dstate, c.cause, c.derr = st.State, st.Cause, nil
	c.mu.Unlock()
	switch st.State {
	case domain.Running:
		d := st.Domain
		if d.Err != nil {
			c.setDomainErr(d.Err)
			c.log.Error("the domain runs, but its card cannot be given to it", "err", d.Err, "hint", domainHint(d.Name, d.Err))
			c.b.SetTarget(nil)
			c.settle()
			return
		}
		t := d.Target
		if t.TLS && c.tls == nil {
			err := fmt.Errorf("the chardev of domain %s (%s) uses TLS", d.Name, t)
			c.setDomainErr(err)
			c.log.Error("cannot connect to the domain's chardev", "err", err, "hint", "give the client certificate: --tls-ca ca-cert.pem --tls-cert client-cert.pem --tls-key client-key.pem (vscclient-go config tls-certs writes them)")
			c.b.SetTarget(nil)
			c.settle()
			return
		}
		c.log.Info("the domain runs; connecting to its chardev", "chardev", t.String())
		c.b.SetTarget(&bridge.Target{Network: t.Network, Address: t.Address, TLS: t.TLS})
	case domain.Stopped:
		c.log.Info("the domain is off; waiting for it to start")
		c.b.SetTarget(nil)
		c.settle()
	case domain.NotFound:
		c.setDomainErr(st.Err)
		c.log.Warn("libvirt has no such domain; waiting for it to be defined", "err", st.Err)
		c.b.SetTarget(nil)
		c.settle()
	case domain.Unreachable:
		// QEMU goes on without libvirtd: keep the connection there is.
		c.log.Warn("libvirt cannot be reached; the card stays with the VM, and vscclient-go reconnects to libvirt", "err", st.Err)
		c.settle()
	}
}

func (c *vmCard) setDomainErr(err error) {
	c.mu.Lock()
	c.derr = err
	c.mu.Unlock()
}

// bridgeStatus settles the client once the host has been told what the
// card source presents, or the host cannot be reached (it then retries
// quietly: the service is up).
func (c *vmCard) bridgeStatus(st bridge.Status) {
	if st.Synced || st.Attempts > 0 {
		c.settle()
	}
	c.changed()
}

func (c *vmCard) changed() {
	if c.onChange != nil {
		c.onChange()
	}
}

func (c *vmCard) settle() { c.settleOnce.Do(func() { close(c.settled) }) }

// rearm re-arms the card's PIN guard.
func (c *vmCard) rearm() error {
	if c.card.rearm == nil {
		return errors.New("this card has no PIN guard (a PC/SC card guards its own PIN)")
	}
	c.card.rearm()
	c.log.Info("PIN guard re-armed")
	return nil
}

// clientStatus is what `vscclient-go status` shows of a client.
type clientStatus struct {
	Domain      string `json:"domain,omitempty"`
	DomainState string `json:"domain_state,omitempty"`
	LastEvent   string `json:"last_event,omitempty"`
	Card        string `json:"card"`
	Chardev     string `json:"chardev,omitempty"`
	Connected   bool   `json:"connected"`
	Reader      string `json:"reader,omitempty"`
	CardIn      bool   `json:"card_announced"`
	Attempts    int    `json:"failed_attempts,omitempty"`
	Error       string `json:"error,omitempty"`
	Since       string `json:"since"`
	Sessions    int    `json:"sessions"`
	Commands    int    `json:"commands"`
	CardErrors  int    `json:"card_errors"`
}

func (c *vmCard) status() clientStatus {
	st := c.b.Status()
	cs := clientStatus{
		Domain: c.name, Card: cardKind(c.o.card), Connected: st.Connected, Reader: st.Reader, CardIn: st.Card,
		Attempts: st.Attempts, Since: st.Since.UTC().Format(time.RFC3339),
		Sessions: st.Sessions, Commands: st.Commands, CardErrors: st.CardErrors,
	}
	if st.Target != nil {
		cs.Chardev = st.Target.String()
	}
	if st.Err != nil {
		cs.Error = st.Err.Error()
	}
	if c.name != "" {
		c.mu.Lock()
		cs.DomainState, cs.LastEvent = c.dstate.String(), c.cause
		if c.derr != nil {
			cs.Error = c.derr.Error()
		}
		c.mu.Unlock()
	}
	return cs
}

// summary is one line of what the client does, for systemd's status.
func (s clientStatus) summary() string {
	what := ""
	switch {
	case s.Domain != "" && s.DomainState != domain.Running.String() && s.DomainState != "":
		what = "domain " + s.DomainState
	case s.CardIn:
		what = "card announced"
	case s.Connected:
		what = "connected, no card"
	case s.Attempts > 0:
		what = fmt.Sprintf("cannot reach %s", s.Chardev)
	default:
		what = "connecting"
	}
	if s.Domain != "" {
		return s.Domain + ": " + what
	}
	return what
}

// domainHint says what to do about a domain whose card cannot be given.
func domainHint(name string, err error) string {
	switch {
	case errors.Is(err, domain.ErrNoPassthrough):
		return fmt.Sprintf("add one: virsh dumpxml %s | vscclient-go config --domain - --transport unix --output %s.xml && virsh define %s.xml (then restart the domain)", name, name, name)
	case errors.Is(err, domain.ErrSpiceVMC):
		return "this smartcard's card comes from the SPICE client (remote-viewer --spice-smartcard); for vscclient-go, give the smartcard a tcp or unix chardev (vscclient-go config --help)"
	case errors.Is(err, domain.ErrLocalOnly):
		return "QEMU listens where only the VM host reaches it: bind the chardev to an address this machine reaches, with TLS (vscclient-go config --host ADDR --tls), or tunnel it (ssh -L)"
	case errors.Is(err, domain.ErrUnsupportedChardev):
		return "vscclient-go connects to a tcp or unix chardev in mode='bind' (QEMU listens): vscclient-go config --help"
	}
	return ""
}

// lookupDomain checks, before following it, that the domain exists and has
// a smartcard vscclient-go can serve, so that a mistyped name or a missing
// smartcard is an error at once rather than a silent wait.
func lookupDomain(ctx context.Context, uri, name string, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := domain.Dial(ctx, uri, &domain.Options{Logger: log})
	if err != nil {
		return libvirtErr(uri, err)
	}
	defer conn.Close()
	d, err := conn.Lookup(ctx, name)
	if err != nil {
		return libvirtErr(uri, err)
	}
	if d.Err != nil {
		return cli.WithHint(d.Err, domainHint(name, d.Err))
	}
	return nil
}

// libvirtErr adds what to do to an error from libvirt.
func libvirtErr(uri string, err error) error {
	var nf *domain.NotFoundError
	var ue *domain.UnreachableError
	switch {
	case errors.As(err, &nf):
		if len(nf.Known) == 0 {
			return cli.WithHint(err, "libvirt ("+uriName(uri)+") has no domains; is it the right libvirt? (--libvirt qemu:///session for your user's VMs)")
		}
		return cli.WithHint(err, "virsh -c "+uriName(uri)+" list --all")
	case errors.As(err, &ue):
		return cli.WithHint(err, "is libvirtd running? (systemctl start libvirtd); for another machine give --libvirt qemu+ssh://HOST/system; for your user's VMs --libvirt qemu:///session")
	case errors.Is(err, domain.ErrInvalidURI):
		return cli.WithHint(cli.Usagef("--libvirt: %v", err), "e.g. qemu:///system, qemu:///session, qemu+ssh://vmhost/system, qemu+tls://vmhost/system")
	}
	return err
}

func uriName(uri string) string {
	if uri == "" {
		return domain.DefaultURI
	}
	return uri
}
