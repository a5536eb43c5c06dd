package piv

// atr is the Answer To Reset the emulated card announces (ISO/IEC 7816-3
// section 8.2):
//
//	3B           TS: direct convention
//	8B           T0: TD1 follows, 11 historical bytes
//	80           TD1: TD2 follows, protocol T=0 (QEMU's usb-ccid speaks T=0)
//	01           TD2: protocol T=1 also offered (piv-go connects with T=1 only)
//	80           historical bytes: category indicator, COMPACT-TLV follows
//	F9 A0 00 00 03 08 00 00 10 00
//	             compact tag F (application identifier), 9 bytes: the PIV AID
//	             without its version, i.e. the implicitly selected application
//	             (ISO/IEC 7816-4 section 8.1.1.2.2)
//	xx           TCK: exclusive-or of T0 to the last historical byte (present
//	             because T=1 is offered)
//
// OpenSC's PIV driver (card-piv.c, piv_match_card_continued) recognises
// exactly this: historical bytes starting with 80 and holding a compact tag F
// whose 9 bytes are the PIV AID make the card SC_CARD_TYPE_PIV_II_HIST, a PIV
// card with no known bugs (no CI_VERIFY_LC0_FAIL, no CI_OTHER_AID_LOSE_STATE
// workarounds). Windows and macOS find the PIV application by SELECT whatever
// the ATR. The ATR names no vendor, so no client mistakes the card for a
// YubiKey or a CAC. QEMU 7.2's ccid-card-passthru accepts it (checked in
// internal/piv/interop against a real QEMU).
var atr = func() [16]byte {
	a := [16]byte{0x3B, 0x8B, 0x80, 0x01, 0x80, 0xF9, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00}
	var tck byte
	for _, b := range a[1:15] {
		tck ^= b
	}
	a[15] = tck
	return a
}()

// ATR returns the Answer To Reset of the emulated PIV card (a new slice each
// call). A bridge announces it when it inserts the card.
func ATR() []byte { return append([]byte(nil), atr[:]...) }
