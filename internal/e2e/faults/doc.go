// Package faults holds the fault-injection tests of vscardkit and the fuzz
// targets of the parsers whose own packages cannot host them.
//
// Each fault test runs the built vscclient-go against a host (the fake
// QEMU of package vscard/vscardtest, a raw host the test drives message by
// message, fake-ccid-server, or QEMU itself) and a card (the soft PIV card,
// softhsm2 through --card pkcs11:, or the test card in a private pcscd's vpcd
// reader), injects one fault, and checks that the client neither crashes
// nor hangs (every wait has a stated bound), that its peak resident set
// (VmHWM, sampled from /proc) stays under 64 MiB, that the host is told what
// happened (an Error answer, a CardRemove, a closed connection), and that
// the next command works once the fault clears. Each prints one row of the
// fault table:
//
//	go test -v ./internal/e2e/faults | grep 'FAULT |'
//
// The faults:
//   - TestHostKilledMidAPDU: fake-ccid-server SIGKILLed while its command is
//     at a mute card;
//   - TestConnectionResetMidFrameToClient: an RST halfway through a command;
//   - TestConnectionResetMidFrameToHost, TestConnectionResetMidFrameToQEMU:
//     an RST halfway through the client's message; QEMU keeps the partial
//     message for the next connection and its card device wedges until the
//     VM restarts (no client can prevent that; vscclient-go says so);
//   - TestHostStopsReading, TestStopWhileHostStopsReading: TCP pushback,
//     the 10 s write timeout, and SIGTERM within the 2 s farewell;
//   - TestHostFloods: 2,000 messages of 64 KiB, APDUs or of an unknown type;
//   - TestPCSCDKilledMuteCard, TestPCSCDKilledMidEcho: pcscd SIGKILLed while
//     a command is at the card;
//   - TestCardPulledMidAPDU: the card removed while mute with a command;
//   - TestTokenRemovedMidOperation: softhsm2's token files moved away while
//     the guest is logged in and signing.
//
// Fuzz targets here: FuzzClient (what a host sends a vscard.Client),
// FuzzRedactor (no PIN or key in what the APDU redactor formats), FuzzATR
// (answers to reset from a PC/SC card). The other parsers have theirs in
// their packages: vscard (FuzzReadMessage, FuzzHost), internal/vpcd
// (FuzzReadFrame), internal/apdu (FuzzParse), internal/piv (FuzzTransmit:
// APDUs, chaining and the TLVs of GENERAL AUTHENTICATE), certsrc
// (FuzzParseURI), xmlconfig (FuzzAddSmartcard, which runs UpgradeDraft too)
// and internal/guest (FuzzParseMarker). scripts/fuzz.sh (make fuzz) finds
// them all.
//
// The tests need QEMU, pcscd with vsmartcard-vpcd, softhsm2 and root (for
// pcscd's mount namespace); they skip, or fail under make test, without them.
//
// References:
//   - QEMU hw/usb/ccid-card-passthru.c: the 64 KiB input buffer kept across
//     connections
//   - libcacard src/vscard_common.h: the VSCard messages
//   - proc(5): VmHWM in /proc/PID/status
package faults
