// Package interop checks the emulated PIV card (package piv, over a
// softstore.Store) with independent clients: it serves the applet as a vpcd
// card to a private pcscd and uses it through OpenSC's PKCS#11 module
// (pkcs11-tool) and through piv-go, verifying every signature, decryption and
// key agreement with Go's crypto against the public keys. The package has
// only tests; they need root, pcscd, vsmartcard-vpcd, OpenSC and
// libpcsclite-dev (piv-go is cgo), and skip (or, under make test, fail) when
// one is missing.
//
// References:
//   - OpenSC pkcs11-tool(1); OpenSC 0.23 src/libopensc/card-piv.c
//   - piv-go v2: https://pkg.go.dev/github.com/go-piv/piv-go/v2/piv
//   - vsmartcard vpcd: https://frankmorgner.github.io/vsmartcard/virtualsmartcard/README.html
package interop
