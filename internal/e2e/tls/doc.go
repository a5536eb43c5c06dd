// Package tls holds the end-to-end tests of TLS on the card link: the
// vscclient-go and fake-ccid-server binaries, and a real QEMU whose chardev
// has a tls-creds-x509 object with endpoint=server and verify-peer=on, with
// certificates from internal/tlscerts.
//
// What they check:
//   - TestQEMUVerifyPeer: with a client certificate of QEMU's CA the card
//     gets in (QEMU acknowledged the ATR) over TLS 1.3; without one, with
//     one of another CA, over plain TCP, against a server certificate of
//     another CA and under a server name the certificate lacks, it does not,
//     and vscclient-go's log says why;
//   - TestQEMUTLSVersions: what QEMU 7.2's GnuTLS negotiates (1.3 by
//     default; 1.2, 1.1 and 1.0 when a client asks for no more, unless the
//     object's priority string removes them);
//   - TestTLSToPlainChardevWedgesQEMU: a TLS ClientHello (or an HTTP
//     request) sent to a chardev without TLS wedges QEMU's card device until
//     the VM restarts;
//   - TestFakeHostTLS: both of our sides (fake-ccid-server --tls-*,
//     vscclient-go --connect tls://) agree and refuse as QEMU would;
//   - TestClientRefusesOldTLS: vscclient-go does not go below TLS 1.2.
//
// They need QEMU (qemu-system-x86) and no root; without QEMU they skip, or
// fail under make test.
//
// References:
//   - QEMU documentation, docs/system/tls.rst (tls-creds-x509: dir,
//     endpoint, verify-peer, priority)
//   - RFC 8446 section 4.4.2.4 (TLS 1.3: the server checks the client's
//     certificate after the client has finished its handshake)
//   - GnuTLS manual, "Priority strings"
package tls
