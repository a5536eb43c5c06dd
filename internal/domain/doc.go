// Package domain finds a libvirt domain's smartcard at run time: it connects
// to libvirt (Dial, any libvirt URI vscclient-go users give: local, tcp, tls,
// ssh), looks a domain up by name (Conn.Lookup: its state, UUID, and from the
// live XML where its <smartcard mode='passthrough'> chardev listens, as a
// Target vscclient-go dials), lists the domains and the ports and sockets
// their chardevs take (Conn.Endpoints), and follows domains through libvirt's
// lifecycle events (Watcher, Follow): a Status when a domain starts (with
// the target of its live XML, read again at each start), stops, is undefined
// or defined again, and when libvirt goes away and comes back, reconnecting
// with a capped backoff. Nothing polls: between events a follower costs no
// CPU.
//
// The RPC client is github.com/digitalocean/go-libvirt, pure Go: the package
// builds without cgo or libvirt's headers, for every desk vscclient-go runs
// on. Domain XML is read with libvirt.org/go/libvirtxml and the smartcard
// interpreted by xmlconfig.FromSmartcard.
//
// Where the client connects: a tcp chardev's listen address; for 0.0.0.0 or
// :: (or no address), the loopback when libvirt is local and the URI's host
// when it is remote. A chardev bound to loopback, or a unix socket, behind a
// remote URI is out of reach (ErrLocalOnly). A spicevmc smartcard belongs to
// the SPICE client (ErrSpiceVMC); host and host-certificates smartcards are
// QEMU's own cards (ErrNoPassthrough).
//
// Errors are typed: *UnreachableError (libvirt cannot be reached: socket
// missing, connection refused, ssh failed, connection broken),
// *NotFoundError (with the names libvirt knows), *SmartcardError (with
// ErrNoPassthrough, ErrSpiceVMC, ErrUnsupportedChardev, ErrLocalOnly), and
// ErrInvalidURI.
//
// A broken connection is noticed when its stream ends (libvirtd killed or
// restarted, ssh gone). libvirt's keepalive protocol is not spoken (go-libvirt
// has none); over TCP the operating system's TCP keepalive, which Go turns
// on, notices a peer that vanished without closing.
//
// Logging goes to Options.Logger (log/slog; nil discards): state changes at
// Info, events, connections and retries at Debug.
//
// # References
//
//   - libvirt connection URIs: https://libvirt.org/uri.html and the remote
//     transports and their options: https://libvirt.org/remote.html
//   - libvirt's choice of socket (virtqemud-sock or libvirt-sock, the user's
//     runtime directory for qemu:///session): src/remote/remote_sockets.c
//   - the ssh transport (ssh -T -e none, then virt-ssh-helper or nc -U on the
//     host): src/rpc/virnetclient.c virNetClientSSHHelperCommand and
//     src/rpc/virnetsocket.c virNetSocketNewConnectSSH
//   - TLS client certificates: https://libvirt.org/kbase/tlscerts.html
//   - domain lifecycle events: virConnectDomainEventRegisterAny and
//     VIR_DOMAIN_EVENT_ID_LIFECYCLE,
//     https://libvirt.org/html/libvirt-libvirt-domain.html#virDomainEventType
//   - smartcard devices and chardev sources:
//     https://libvirt.org/formatdomain.html#smartcard-devices
//   - the RPC protocol: https://libvirt.org/kbase/internals/rpc.html
package domain
