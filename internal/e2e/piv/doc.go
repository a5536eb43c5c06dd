// Package piv holds the end-to-end tests of the emulated PIV card along the
// whole product path, with independent clients at the far end:
//
//	OpenSC (pkcs11-tool, opensc-tool) or piv-go
//	  -> a private pcscd with vsmartcard's vpcd reader (harness.StartPCSCD)
//	  -> fake-ccid-server --vpcd (the fake QEMU host, the built binary)
//	  -> VSCard over TCP
//	  -> vscclient-go --card pkcs11:URI | soft | soft:DIR (the built binary)
//	  -> softhsm2 (certsrc) or the in-memory store (softstore)
//
// The fake host hands the client's card to pcscd, so the host's OpenSC and
// piv-go act as a guest's middleware would. Every signature, decryption and
// certificate is checked with Go's crypto against the token's public keys;
// the PIN's retry counter and vscclient-go's PIN guard are checked with raw
// VERIFY APDUs; the logs of both programs (at debug level, every APDU
// traced) are checked for the PIN and for a session key the card decrypted.
// BenchmarkSignLatency compares a signature through the path (minus vpcd)
// with a direct C_Sign on the same token.
//
// The package has only tests. They need root, pcscd, vsmartcard-vpcd,
// softhsm2, OpenSC and libpcsclite-dev (piv-go is cgo), and skip (or, under
// make test, fail) when one is missing.
//
// References:
//   - NIST SP 800-73-4 part 2 (VERIFY 63Cx and 6983, GENERAL AUTHENTICATE):
//     https://doi.org/10.6028/NIST.SP.800-73-4
//   - OpenSC pkcs11-tool(1) and opensc-tool(1); OpenSC 0.23
//     src/libopensc/card-piv.c
//   - piv-go v2: https://pkg.go.dev/github.com/go-piv/piv-go/v2/piv
//   - vsmartcard vpcd:
//     https://frankmorgner.github.io/vsmartcard/virtualsmartcard/README.html
//   - OASIS PKCS #11 Current Mechanisms Specification v2.40 (CKM_RSA_X_509,
//     CKM_ECDSA)
package piv
