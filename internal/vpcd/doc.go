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
// Facts from vpcd's source that shape this package:
//
//   - The driver checks for the card by sending CtrlGetATR at every presence
//     poll (pcscd polls readers without hotplug support every 400 ms). An
//     empty reply, or a closed connection, makes the driver drop the
//     connection and report the card absent; the card must reconnect to come
//     back. Serve answers an empty ATR with an empty frame for that reason.
//   - The driver reads with no timeout: a card that stops answering leaves
//     that reader (and pcscd's calls on it) blocked until the connection
//     closes.
//   - The driver accepts at most one connection per slot, and only while
//     polling, so a connection may sit in the listen backlog for up to one
//     poll interval before the first CtrlGetATR arrives.
//   - A response reaches the application only if it fits pcscd's receive
//     buffer (65548 bytes for extended APDUs); vpcd advertises 65536 as
//     dwMaxAPDUDataSize.
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
