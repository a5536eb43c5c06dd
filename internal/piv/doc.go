// Package piv is an emulated PIV card: the PIV Card Application of NIST SP
// 800-73-4 answering command APDUs over a Store that holds the certificates,
// the keys and the PIN. The applet never sees key material; it knows nothing
// of PKCS#11 (package internal/tokenstore adapts a PKCS#11 token, opened
// with package certsrc, to Store; package internal/softstore is a Store in
// memory).
//
// # The card
//
// ATR returns the card's Answer To Reset (see atr.go for its bytes and why).
// After a reset the PIV application is selected and no PIN is verified.
// Applet.Transmit answers one command APDU; Applet.Reset is a card reset or
// removal. Whoever serves the applet calls Reset when the card is reset:
// vpcd forwards pcscd's resets (Applet has the methods of a vpcd card
// handler), but QEMU's usb-ccid answers the guest's power-on and power-off
// itself and tells the VSCard client nothing, so behind QEMU the PIN stays
// verified until the bridge resets the applet (at the latest when the
// VSCard connection ends). Every response, data and status word, is at most 258 bytes:
// longer data goes out in pieces with 61xx and GET RESPONSE, since QEMU's
// usb-ccid carries at most 374 bytes per response to the guest.
//
// Commands:
//
//   - SELECT (A4 04 00) by the PIV AID or any prefix of at least 5 bytes:
//     the application property template 61 { 4F PIX, 79 { 4F RID }, 50
//     label, AC { 80 algorithms..., 06 00 } }. Any other AID: 6A82, and the
//     PIV application stays selected. P1 00-09 (files): 6A82.
//   - GET DATA (CB 3F FF, 5C tag): CHUID 5FC102, CCC 5FC107, Discovery
//     Object 7E, Key History 5FC10C, and the certificates 5FC105 (9A),
//     5FC10A (9C), 5FC10B (9D), 5FC101 (9E) as 53 { 70 cert, 71 01 00, FE 00 }.
//     Anything else, or an empty slot: 6A82. All are free to read.
//   - VERIFY (20) for the PIV PIN (P2 80): no data asks the status (9000,
//     63Cx, 6983); data is the PIN padded with FF to 8 bytes; P1 FF resets
//     the security status.
//   - CHANGE REFERENCE DATA (24, P2 80): through the store when it is a
//     PINChanger, else 6A81. RESET RETRY COUNTER (2C): 6A81 (no PUK).
//   - GENERAL AUTHENTICATE (87): raw RSA (RSA 1024/2048/3072, and 4096 as
//     Yubico's 0x16) on the client's padded block, ECDSA (P-256, P-384) on
//     its digest, ECDH on its point; random challenges for 9B.
//   - GET RESPONSE (C0), command chaining (CLA 10) up to MaxCommandData
//     bytes, short and extended lengths.
//   - PUT DATA (DB) and GENERATE ASYMMETRIC KEY PAIR (47): 6982, as no one
//     can authenticate with the card management key.
//   - GET VERSION (FD, Yubico): 00 01 00, because piv-go's Open requires it.
//   - Anything else: 6D00; other classes 6E00 (6881, 6882 for logical
//     channels and secure messaging).
//
// Keys 9A and 9D need a verified PIN. 9C follows SP 800-73-4's "PIN Always":
// each use needs its own successful VERIFY (OpenSC marks the key
// CKA_ALWAYS_AUTHENTICATE and verifies before each signature; piv-go does so
// under its default "PIN always" policy); Options.SignaturePINOnce relaxes
// it. 9E needs no PIN.
//
// The PIN goes from the command straight to Store.Login in a buffer the
// applet clears afterwards; it is never logged, kept, or put in an error.
// GuardStore (NewPINGuard) stops a guest from blocking the token by guessing.
//
// # What clients read
//
// OpenSC 0.23 (card-piv.c, pkcs15-piv.c), checked by the integration tests:
// the ATR's historical bytes (the PIV AID makes it a PIV card with no known
// bugs); GET DATA 7E without SELECT to see whether PIV is active, else SELECT
// with the 9-byte AID; the CCC (to rule out a dual CAC card), the Key History
// and the Discovery Object (PIN policy); the CHUID (the GUID becomes the
// token serial, because the FASC-N says 9999); each certificate, first with
// Le 08 for its length; VERIFY with no data for the PIN state and the PIN
// padded with FF; GENERAL AUTHENTICATE with P1 chosen from the modulus
// length (06, 07, 05) or the curve (11, 14), 81 for signing and decryption
// and 85 for derivation, chained when longer than 255 bytes; 9B 81 00 for
// random bytes. Commands that expect data come without Le on T=0.
//
// piv-go v2, checked by the integration tests: SELECT with the 5-byte RID;
// GET VERSION (FD), which Open requires; GET DATA for the certificates;
// VERIFY with no data (sent with Le 00) to ask whether the PIN is needed;
// attestation (F9), whose 6D00 makes it assume the "PIN always" policy;
// GENERAL AUTHENTICATE with 82 00 before 81 or 85, chained in 255-byte
// pieces.
//
// Windows' inbox PIV minidriver (msclmd.dll; from Microsoft's documentation
// and field reports, not tested here): plug-and-play probing first (SELECT
// of the SC PNP AID and of MF/EF.ATR, answered 6A82), then SELECT of the
// 9-byte PIV AID, which makes the card "Identity Device (NIST SP 800-73
// [PIV])"; it needs the CHUID (the card's identity; without one it rejects
// the card), reads the Key History, the Discovery Object's PIN usage policy
// and the four certificates, then VERIFY and GENERAL AUTHENTICATE.
//
// macOS CryptoTokenKit (the built-in PIV token; from field reports, not
// tested here): SELECT of the PIV AID, the CHUID (without it: "failed to
// read CHUID record" and no token), the certificates and Key History, the
// CCC (the older PIV.tokend needs it), VERIFY and GENERAL AUTHENTICATE.
//
// References:
//   - NIST SP 800-73-4, Interfaces for Personal Identity Verification, parts
//     1 and 2: https://doi.org/10.6028/NIST.SP.800-73-4
//   - NIST SP 800-78-5, Cryptographic Algorithms and Key Sizes for PIV
//     (algorithm identifiers): https://doi.org/10.6028/NIST.SP.800-78-5
//   - ISO/IEC 7816-3 (ATR) and 7816-4 (APDUs, chaining, status words)
//   - TIG SCEPACS v2.3 (FASC-N encoding)
//   - OpenSC 0.23 src/libopensc/card-piv.c and pkcs15-piv.c:
//     https://github.com/OpenSC/OpenSC/tree/0.23.0/src/libopensc
//   - piv-go v2 piv/piv.go, key.go, pcsc.go: https://github.com/go-piv/piv-go
//   - Windows inbox smart card minidriver and the discovery process:
//     https://learn.microsoft.com/windows-hardware/drivers/smartcard/windows-inbox-smart-card-minidriver
//     and https://learn.microsoft.com/windows-hardware/drivers/smartcard/discovery-process
//   - go-piv/piv-go issue 66 and Yubico/yubico-piv-tool issue 33 (macOS needs
//     the CHUID and the CCC)
package piv
