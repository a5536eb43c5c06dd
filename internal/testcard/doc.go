// Package testcard is a small smart card for tests: it answers from a fixed
// table and plugs into a real pcscd through vsmartcard's vpcd reader
// (package vpcd), standing in for a physical card where none can be used.
//
// # The card
//
// ATR: ATRT1 by default (T=1 only, 15 bytes:
// 3B 8B 01 00 56 76 73 63 61 72 64 00 90 00 5D). It passes QEMU's
// ccid-card-passthru ATR check (first byte 3B, interface bytes consistent
// with the historical byte count, at most 40 bytes; QEMU reads the byte
// after TD1 as the next TD, which is why the first historical byte is 00),
// fits pcsc-lite's 33-byte limit, and OpenSC's default driver accepts it.
// ATRT0 (T=0 only) and ATRDual (T=0 and T=1) are there for protocol tests.
//
// The commands it knows (anything else gets 6D00, a CLA other than 00/80
// gets 6E00; short and extended forms are both accepted where data or Le
// appear):
//
//	00 A4 04 00 Lc AID [Le]   SELECT by name: TestAID gets 9000 and selects
//	                          the application; any other name gets 6A82.
//	80 10 00 00 Lc data [Le]  ECHO: the command data back, then 9000, in one
//	                          response (65,000 data bytes in an extended APDU
//	                          come back byte for byte).
//	80 12 P1 P2 [Le]          LONG: P1P2 bytes of Pattern (0000 means 1000),
//	                          then 9000, in ONE response with no 61xx (at
//	                          most 65533 bytes): for testing a bridge that
//	                          must split it.
//	80 14 00 00 Lc data [Le]  DIGEST: SHA-256 of the data, then 9000.
//	80 16 P1 P2 [Le]          CHAINED LONG: P1P2 bytes of Pattern (0000 means
//	                          1000) in pieces of at most 256 (or Le) bytes,
//	                          61xx while more remains.
//	00 C0 00 00 Le            GET RESPONSE: the next piece after 61xx; 6985
//	                          when nothing is pending.
//	80 18 00 00 [Le]          STATUS: the transmit counter (4 bytes, big
//	                          endian, this command included) and 01 when the
//	                          application is selected, else 00; then 9000.
//
// Power off, power on and reset deselect the application and drop a pending
// GET RESPONSE. Program adds exact command -> response pairs that take
// precedence over the table; Transmits, PowerOns and Resets count what the
// card saw.
//
// # In the reader
//
// Insert connects the card to a vpcd slot (reconnecting with backoff if
// pcscd restarts); Remove pulls it out. For vpcd, a card is in the reader
// while its TCP connection is, but closing the connection is not reliably
// seen as a removal: Remove uses vpcd.Card.Remove, which answers vpcd's
// presence checks with "no card" until pcscd must have recorded the
// absence (400 to 800 ms), so a Remove followed at once by Insert is seen
// as a removal then an insertion. Mute makes the card stop answering APDUs
// (the driver, and pcscd's calls on that reader, then block until the card
// answers or leaves), as a hung card does.
//
// The command internal/cmd/testcard runs the same card as a separate
// process.
//
// References:
//   - ISO/IEC 7816-3 section 8 (ATR), ISO/IEC 7816-4 sections 5 and 7
//     (APDUs, SELECT, GET RESPONSE)
//   - QEMU hw/usb/ccid-card-passthru.c, check_atr
//   - vsmartcard virtualsmartcard/src/vpcd/vpcd.c (presence check, eject)
package testcard
