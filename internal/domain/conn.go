package domain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
	"libvirt.org/go/libvirtxml"
)

// State is what a domain is doing, as far as its smartcard is concerned.
type State int

// The states.
const (
	// StateUnknown is the zero State.
	StateUnknown State = iota
	// Running: QEMU runs (the guest may be running, paused or
	// suspended), so its chardev listens.
	Running
	// Stopped: the domain is defined but QEMU does not run.
	Stopped
	// NotFound: libvirt has no domain of that name (never defined, or
	// undefined).
	NotFound
	// Unreachable: libvirt cannot be reached; what the domain does is
	// unknown (QEMU goes on without libvirtd, so a client keeps the card
	// connection it has). A Follower reconnects by itself and reports
	// the domain's state again.
	Unreachable
)

var stateNames = [...]string{"unknown", "running", "stopped", "not found", "libvirt unreachable"}

// String returns the state's name.
func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("State(%d)", int(s))
	}
	return stateNames[s]
}

// Domain is a libvirt domain as Lookup sees it.
type Domain struct {
	Name string
	// UUID is the domain's UUID in its canonical form.
	UUID string
	// ID is libvirt's id of the running domain (a new one each start), or
	// -1.
	ID int
	// State is Running or Stopped.
	State State
	// LibvirtState is libvirt's name for its state: running, paused,
	// shut off, crashed, pmsuspended...
	LibvirtState string
	// Target is where vscclient-go connects: from the live XML when the
	// domain runs, from its definition otherwise (where QEMU will listen
	// once started). It is zero when Err is set.
	Target Target
	// Err is why the domain's smartcard gives no Target: a
	// *SmartcardError (errors.Is with ErrNoPassthrough, ErrSpiceVMC,
	// ErrUnsupportedChardev, ErrLocalOnly), or an error reading its XML.
	Err error
}

// NotFoundError reports that libvirt has no domain of that name.
type NotFoundError struct {
	Name string
	// Known are the names of the domains libvirt has (running or not),
	// sorted; nil when listing them failed.
	Known []string
}

// Error names the domain and the ones libvirt knows.
func (e *NotFoundError) Error() string {
	if len(e.Known) == 0 {
		return fmt.Sprintf("domain: no domain %q (libvirt has none)", e.Name)
	}
	return fmt.Sprintf("domain: no domain %q (libvirt has: %s)", e.Name, strings.Join(e.Known, ", "))
}

// Options configure a Conn or a Watcher. The zero value (or nil) is fine.
type Options struct {
	// Logger receives the package's log lines: state changes at Info,
	// retries and each connection at Debug. Nil discards them.
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound a Watcher's wait between two
	// attempts to reach an unreachable libvirt: the first wait is
	// MinBackoff, each next one twice as long, up to MaxBackoff. Zero
	// means 100 ms and 5 s. Dial ignores them.
	MinBackoff, MaxBackoff time.Duration
}

func (o *Options) logger() *slog.Logger {
	if o == nil || o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// Conn is a connection to one libvirt daemon. Its methods may be called
// from several goroutines. libvirt's RPC has no cancellation: when the
// context of a call ends before libvirt answers, the call returns the
// context's error and the Conn is closed.
type Conn struct {
	uri *connURI
	nc  net.Conn
	l   *libvirt.Libvirt
	log *slog.Logger
}

// Dial connects to the libvirt daemon of uri ("" means DefaultURI):
//
//	qemu:///system, qemu:///session      the local daemon's unix socket
//	qemu:///system?socket=PATH           (also qemu+unix://) that socket
//	qemu+tcp://HOST[:PORT]/system        TCP, no encryption (port 16509)
//	qemu+tls://HOST[:PORT]/system        TLS (port 16514) with libvirt's client certificates
//	qemu+ssh://[USER@]HOST[:PORT]/system the system ssh, then virt-ssh-helper or nc on the host
//
// The options of libvirt's remote URIs that apply are honoured: socket,
// mode, name, pkipath, no_verify, command, netcat, keyfile, no_tty and
// proxy. A daemon that cannot be reached is a *UnreachableError; a URI this
// package cannot use wraps ErrInvalidURI.
func Dial(ctx context.Context, uri string, opts *Options) (*Conn, error) {
	u, err := parseURI(uri)
	if err != nil {
		return nil, err
	}
	return dialConn(ctx, u, opts.logger().With("uri", u.raw))
}

func dialConn(ctx context.Context, u *connURI, log *slog.Logger) (*Conn, error) {
	nc, err := dial(ctx, u)
	if err != nil {
		return nil, err
	}
	c := &Conn{uri: u, nc: nc, log: log}
	c.l = libvirt.NewWithDialer(dialers.NewAlreadyConnected(nc))
	err = c.call(ctx, func() error { return c.l.ConnectToURI(libvirt.ConnectURI(u.name)) })
	if err != nil {
		c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.As(err, new(libvirt.Error)) {
			return nil, fmt.Errorf("domain: libvirt at %s refused to open %s: %w", u.raw, u.name, err)
		}
		// The stream broke before libvirt answered: ssh's own
		// message, if any, says why.
		if cc, ok := nc.(*cmdConn); ok && cc.Stderr() != "" {
			err = fmt.Errorf("ssh said %q: %w", cc.Stderr(), err)
		}
		return nil, &UnreachableError{URI: u.raw, Err: err}
	}
	log.Debug("connected to libvirt")
	return c, nil
}

// call runs f, closing the connection if ctx ends first (which makes f
// return).
func (c *Conn) call(ctx context.Context, f func() error) error {
	stop := context.AfterFunc(ctx, func() { c.nc.Close() })
	err := f()
	if !stop() {
		return ctx.Err()
	}
	return err
}

// Close closes the connection and waits for go-libvirt's reader to stop.
func (c *Conn) Close() error {
	err := c.nc.Close()
	select {
	case <-c.l.Disconnected():
	case <-time.After(5 * time.Second):
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// disconnected is closed when the connection is lost or closed.
func (c *Conn) disconnected() <-chan struct{} { return c.l.Disconnected() }

// brokenErr turns the error of a call on a broken connection into a
// *UnreachableError.
func (c *Conn) brokenErr(err error) error {
	if errors.As(err, new(libvirt.Error)) {
		return err
	}
	select {
	case <-c.l.Disconnected():
		return &UnreachableError{URI: c.uri.raw, Err: err}
	default:
	}
	if errors.Is(err, libvirt.ErrInterrupted) || errors.Is(err, net.ErrClosed) {
		return &UnreachableError{URI: c.uri.raw, Err: err}
	}
	return err
}

// Domains returns the names of the domains libvirt has, running or not,
// sorted.
func (c *Conn) Domains(ctx context.Context) ([]string, error) {
	doms, err := c.listAll(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(doms))
	for i, d := range doms {
		names[i] = d.Name
	}
	sort.Strings(names)
	return names, nil
}

func (c *Conn) listAll(ctx context.Context) ([]libvirt.Domain, error) {
	var doms []libvirt.Domain
	err := c.call(ctx, func() error {
		var err error
		doms, _, err = c.l.ConnectListAllDomains(1, 0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("domain: listing domains: %w", c.brokenErr(err))
	}
	return doms, nil
}

// Lookup returns the domain called name: its state, UUID and, from the live
// XML when it runs (its definition otherwise), where vscclient-go connects
// to its smartcard (Domain.Target, or why not in Domain.Err). No such
// domain is a *NotFoundError that lists the domains libvirt has.
func (c *Conn) Lookup(ctx context.Context, name string) (*Domain, error) {
	var (
		ld     libvirt.Domain
		state  int32
		xmlDoc string
	)
	err := c.call(ctx, func() error {
		var err error
		if ld, err = c.l.DomainLookupByName(name); err != nil {
			return err
		}
		if state, _, err = c.l.DomainGetState(ld, 0); err != nil {
			return err
		}
		// Flags 0: the live XML of a running domain, the definition
		// of one that does not run.
		xmlDoc, err = c.l.DomainGetXMLDesc(ld, 0)
		return err
	})
	if err != nil {
		if libvirt.IsNotFound(err) {
			nf := &NotFoundError{Name: name}
			nf.Known, _ = c.Domains(ctx)
			return nil, nf
		}
		return nil, fmt.Errorf("domain: looking up %s: %w", name, c.brokenErr(err))
	}
	d := &Domain{
		Name:         ld.Name,
		UUID:         formatUUID(ld.UUID),
		ID:           int(ld.ID),
		State:        Stopped,
		LibvirtState: stateName(libvirt.DomainState(state)),
	}
	if ld.ID >= 0 {
		d.State = Running
	} else {
		d.ID = -1
	}
	var x libvirtxml.Domain
	if err := x.Unmarshal(xmlDoc); err != nil {
		d.Err = fmt.Errorf("domain: %s: parsing its XML: %w", name, err)
		return d, nil
	}
	d.Target, d.Err = smartcardTarget(&x, c.uri)
	return d, nil
}

// Endpoints returns the TCP ports and unix sockets the domains of this
// libvirt listen on or will listen on when started: the chardevs of their
// smartcards, serials, parallels, consoles and channels in mode='bind', and
// graphics on fixed ports, from each running domain's live XML and from
// every domain's definition (an endpoint that is in both is listed once,
// as Live). `vscclient-go config` uses it to warn about a port another
// domain already takes.
func (c *Conn) Endpoints(ctx context.Context) ([]Endpoint, error) {
	doms, err := c.listAll(ctx)
	if err != nil {
		return nil, err
	}
	var out []Endpoint
	for _, ld := range doms {
		var live, inactive string
		err := c.call(ctx, func() error {
			var err error
			if ld.ID >= 0 {
				if live, err = c.l.DomainGetXMLDesc(ld, 0); err != nil {
					return err
				}
			}
			inactive, err = c.l.DomainGetXMLDesc(ld, libvirt.DomainXMLInactive)
			return err
		})
		if libvirt.IsNotFound(err) {
			continue // undefined meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("domain: reading %s's XML: %w", ld.Name, c.brokenErr(err))
		}
		seen := map[Endpoint]bool{}
		for _, doc := range []struct {
			xml  string
			live bool
		}{{live, true}, {inactive, false}} {
			if doc.xml == "" {
				continue
			}
			var x libvirtxml.Domain
			if err := x.Unmarshal(doc.xml); err != nil {
				return nil, fmt.Errorf("domain: parsing %s's XML: %w", ld.Name, err)
			}
			for _, ep := range endpoints(&x, doc.live) {
				key := ep
				key.Live = false
				if !seen[key] {
					seen[key] = true
					out = append(out, ep)
				}
			}
		}
	}
	sortEndpoints(out)
	return out, nil
}

// formatUUID writes u in the canonical 8-4-4-4-12 form.
func formatUUID(u libvirt.UUID) string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b.WriteByte('-')
		}
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// stateName returns virsh's name for a domain state.
func stateName(s libvirt.DomainState) string {
	switch s {
	case libvirt.DomainNostate:
		return "no state"
	case libvirt.DomainRunning:
		return "running"
	case libvirt.DomainBlocked:
		return "idle"
	case libvirt.DomainPaused:
		return "paused"
	case libvirt.DomainShutdown:
		return "in shutdown"
	case libvirt.DomainShutoff:
		return "shut off"
	case libvirt.DomainCrashed:
		return "crashed"
	case libvirt.DomainPmsuspended:
		return "pmsuspended"
	}
	return fmt.Sprintf("state %d", int(s))
}
