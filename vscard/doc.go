// Package vscard implements the VSCard protocol that QEMU's ccid-card-passthru
// device speaks over its chardev, byte for byte, in both roles.
//
// A VSCard connection joins a host (QEMU, the user of the card) and a client
// (the owner of the card: a PC/SC reader or an emulated card). Every message
// is a 12-byte header (type, reader id, payload length: unsigned 32-bit
// big-endian) followed by the payload. The client speaks first with Init; the
// host answers Init; the client then announces a reader (ReaderAdd) and a
// card (ATR); the host sends the guest's commands (APDU) and the client
// answers each with the card's response (APDU) or a failure (Error).
//
// The package is layered like the protocol:
//
//   - messages.go: types, constants, the header, Init and Error payloads;
//   - frame.go: whole messages on a stream (ReadMessage, WriteMessage) with
//     a payload limit, for a program in the host role;
//   - client.go and dial.go: the client role (Client, NewClient, Dial).
//
// The host role as QEMU 7.2's ccid-card-passthru implements it, reply for
// reply (a fake QEMU for tests and for debugging a setup), is package
// vscard/vscardtest.
//
// # What QEMU does that a client must respect
//
//   - A message whose header and payload do not fit QEMU's 64 KiB input
//     buffer (payload over MaxPayload = 65524 bytes) makes QEMU stop reading
//     the chardev for good, on that connection and on every later one, until
//     the VM restarts. The Client and WriteMessage refuse such messages.
//   - QEMU writes a message's header and payload in two writes; with the
//     chardev libvirt creates (no nodelay), Nagle's algorithm on QEMU's side
//     then waits for the client's delayed ACK. Dial sets TCP_QUICKACK after
//     every read on Linux so the payload follows at once.
//   - QEMU answers ReaderAdd, ReaderRemove, ATR and CardRemove with an Error
//     message (code 0 on success), every unknown type with Error{1}, and
//     never sends Flush.
//   - A new ccid-card-passthru created on a chardev a client is connected to
//     (QMP device_del and device_add of the usb-ccid reader) sends Init on
//     that connection and knows no reader or card: Client.HostReinits tells
//     the owner to announce again (vscardtest's Host.Replug plays it).
//
// # References
//
//   - libcacard, src/vscard_common.h: the protocol definition
//     (https://gitlab.freedesktop.org/spice/libcacard).
//   - QEMU, hw/usb/ccid-card-passthru.c: the host side, and
//     hw/usb/dev-smartcard-reader.c: the usb-ccid device the guest sees.
//   - QEMU documentation, docs/system/devices/ccid.rst.
//   - libcacard, src/vscclient.c: the C client this package replaces.
package vscard
