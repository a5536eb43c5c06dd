// Package vpcd implements the card side of vsmartcard's vpcd protocol: the
// TCP protocol between the vpcd PC/SC reader driver (libifdvpcd, loaded by
// pcscd) and a virtual card.
//
// The driver listens (one TCP port per reader slot: the port named in
// reader.conf's DEVICENAME for slot 0, that port + 1 for slot 1) and the card
// connects to it. While connected, the card is in the reader; closing the
// connection pulls it out.
//
// Every message in both directions is a frame: a 2-byte big-endian length,
// then that many payload bytes (so at most 65535). From the driver, a 1-byte
// payload is a control code (CtrlPowerOff, CtrlPowerOn, CtrlReset,
// CtrlGetATR) and anything longer is a command APDU. Power off, power on and
// reset get no reply; get ATR and every APDU get exactly one reply frame (the
// ATR, or the response APDU). The driver sends one message at a time and
// waits for its reply, so the card side is a simple request/response loop.
//
// Facts from the sources of vpcd (as Debian 12 packages it, from 2019) and
// pcsc-lite 1.9.9, checked against them running, that shape this package:
//
//   - The driver checks for the card by sending CtrlGetATR: at every poll of
//     pcscd's event loop (every 400 ms for a reader without hotplug
//     support), and also before powering the card down (pcscd powers an
//     unused card down 400 ms after insertion or last use, and ignores that
//     check's result). An empty reply, or a closed connection, makes the
//     driver drop the connection and report no card for that check; at the
//     next check it accepts whatever connection waits. So a card that
//     closes and reconnects at once can be taken back without pcscd ever
//     recording a removal; Card.Remove avoids that (see there).
//   - The driver reads with no timeout: a card that stops answering leaves
//     that reader (and pcscd's calls on it) blocked until the connection
//     closes.
//   - The driver accepts at most one connection per slot, and only while
//     polling, so a connection may sit in the listen backlog for up to one
//     poll interval before the first CtrlGetATR arrives.
//   - Frames carry at most 65535 bytes, so the longest command is an
//     extended APDU with 65526 data bytes; the driver rejects longer ones.
//     (This vpcd does not answer the dwMaxAPDUDataSize query; vpcd since
//     2023 advertises 65536.)
//   - The driver writes a frame's length prefix and payload with two send
//     calls and no TCP_NODELAY, so the card side must acknowledge at once
//     (TCP_QUICKACK, done by Serve) or pay a delayed ACK per message.
//
// Serve runs the loop on a connection the caller made; Dial connects, serves
// in a goroutine it owns, and optionally reconnects with capped exponential
// backoff when pcscd goes away.
//
// References:
//   - vsmartcard, virtualsmartcard/src/vpcd/vpcd.c and vpcd.h (framing,
//     control codes, presence check):
//     https://github.com/frankmorgner/vsmartcard/tree/master/virtualsmartcard/src/vpcd
//   - vsmartcard, virtualsmartcard/src/ifd-vpcd/ifd-vpcd.c (DEVICENAME
//     parsing, one port per slot, IFD handler behaviour)
//   - vsmartcard, virtualsmartcard/src/vpicc/virtualsmartcard/VirtualSmartcard.py
//     (the reference card side: unknown control codes and empty frames are
//     ignored)
//   - pcsc-lite, src/eventhandler.c (PCSCLITE_STATUS_POLL_RATE, 400 ms)
package vpcd
