// Package guest holds vscardkit's end-to-end tests with a real Linux guest:
// QEMU boots the minimal guest of package internal/guest with the smartcard
// exactly as libvirt 9 makes it for <smartcard mode='passthrough'
// type='tcp'> (the QEMU arguments come from xmlconfig with
// Config.LibvirtChardev, so the chardev has no nodelay), the built
// vscclient-go connects with the client command xmlconfig prints, and the
// guest's own PC/SC stack (pcscd, libccid, OpenSC) uses the card. Every
// check reads what the guest printed (its VSCARD-* marker lines):
//
//   - TestPKCS11Card: --card pkcs11: on a softhsm2 token; in the guest
//     pkcs11-tool lists the PIV certificates, logs in with the PIN and
//     signs a challenge, and the host verifies the signature with the
//     token's public key;
//   - TestSoftCard: --card soft, the same, plus raw APDUs showing that the
//     PIN stays verified across a SELECT of the selected PIV application,
//     and the guest-timed latency of 200 SELECTs;
//   - TestPCSCCard: --card pcsc: with internal/testcard behind a private
//     pcscd and vpcd; raw APDUs in the guest (a 1000-byte response that
//     vscclient-go splits with 61xx and OpenSC collects with GET RESPONSE
//     included), the card pulled and put back while the guest watches with
//     pcsc_scan, and QEMU gone and back on the same port while
//     vscclient-go runs;
//   - TestPCSCCardT1Only: a host card that offers T=1 only works in the
//     guest, although QEMU 7.2's usb-ccid offers T=0 only: vscclient-go
//     announces its ATR with T=0 offered first;
//   - TestQEMUArgvIsLibvirts: the argv the tests boot holds the USB
//     controller, usb-ccid, chardev and ccid-card-passthru options that a
//     real libvirtd generates (virsh domxml-to-native) for xmlconfig's
//     domain;
//   - BenchmarkGuestAPDULatency: the guest-timed cost of one APDU with
//     vscclient-go under libvirt's chardev, beside the floor measured in the
//     same iteration (a chardev with nodelay=on and a minimal client that
//     answers 90 00), and their ratio.
//
// The non-test part is what internal/cmd/demo-vm shares with the tests: the
// smartcard configuration (Smartcard) and the checks of the guest's PIV
// results (Certificate, VerifySignature).
//
// The tests need root (the guest image builder runs apt-get download),
// QEMU, pcscd, vsmartcard-vpcd, softhsm2, OpenSC, busybox-static and
// libvirtd, and skip (or, under make test, fail) when one is missing.
//
// References:
//   - QEMU USB CCID emulation: https://www.qemu.org/docs/master/system/devices/ccid.html
//   - libvirt domain XML, smartcard devices:
//     https://libvirt.org/formatdomain.html#smartcard-devices
//   - OpenSC opensc-tool(1), pkcs11-tool(1); pcsc-tools pcsc_scan(1)
//   - NIST SP 800-73-4 part 2 (SELECT, VERIFY, GENERAL AUTHENTICATE):
//     https://doi.org/10.6028/NIST.SP.800-73-4
//   - PKCS #11 Current Mechanisms v2.40 (CKM_RSA_PKCS, CKM_ECDSA: the
//     signature formats pkcs11-tool writes)
package guest
