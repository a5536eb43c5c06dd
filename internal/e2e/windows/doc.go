// Package windows holds vscardkit's end-to-end tests of the Windows build of
// vscclient-go, the client a Windows desk runs in a VDI setup. The tests
// build vscclient-go.exe as make dist ships it (cgo with mingw-w64, so
// that PKCS#11 modules load as DLLs) and run it under Wine against the
// real peers of the other end-to-end tests:
//
//   - TestWindowsBuild: the .exe imports only DLLs every Windows has (the
//     archive needs nothing beside it), and its --help says a restart
//     re-arms the PIN guard (Windows has no SIGHUP); the CGO_ENABLED=0
//     build compiles and, when it does, announces a card to QEMU too
//     (skipped, saying so, while package certsrc needs cgo);
//   - TestSoftCardQEMU: `vscclient-go.exe --card soft --connect tcp://...`
//     against a real QEMU's chardev: QEMU acknowledges the card's ATR, and
//     Ctrl-C (SIGINT to Wine, CTRL_C_EVENT to the program) makes the client
//     remove card and reader and exit 0;
//   - TestGuestSoftCard: the whole path: a booted Linux guest's pcscd and
//     OpenSC list the certificate of a soft:Z:\...\DIR card (a Windows path),
//     log in and sign; the host verifies the signature with the key it
//     wrote;
//   - TestTLSQEMU: certificates from `vscclient-go config tls-certs` on the
//     "VM host", QEMU with verify-peer=on: with the client certificate the
//     card is announced over TLS, without one the log says what to do;
//   - TestPCSCUnderWine: Wine 8's winscard.dll is a stub with no PC/SC
//     service behind it: `vscclient-go.exe readers` fails saying there is
//     no PC/SC service, and `--card pcsc` says so, waits for one without
//     crashing or spinning, and leaves on Ctrl-C;
//   - TestUnixSocketQEMU: --connect unix:Z:\...\sock to QEMU's unix-socket
//     chardev; skipped, saying so, under a Wine without AF_UNIX (Wine 8),
//     after checking that the client names the socket and retries.
//
// Wine runs in a private prefix per test binary (harness.StartWine, whose
// first wineboot takes several seconds; the tests log it). The tests need
// Wine (wine, wine64), mingw-w64 (gcc-mingw-w64-x86-64), QEMU and, for the
// guest, root and the guest image builder's programs; they skip (or, under
// make test, fail) when one is missing.
//
// References:
//   - Wine's console Ctrl-C: a SIGINT to a Wine process becomes a
//     CTRL_C_EVENT (dlls/ntdll/unix/signal_x86_64.c, int_handler)
//   - Go's os/signal on Windows: CTRL_C_EVENT is os.Interrupt
//   - QEMU TLS credentials (tls-creds-x509, verify-peer):
//     https://www.qemu.org/docs/master/system/tls.html
package windows
