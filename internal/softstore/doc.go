// Package softstore is a piv.Store held in memory, in pure Go: the card
// contents for tests, demos, and hosts without a PKCS#11 token.
//
// A Store holds up to four key pairs, one per PIV key slot (9A, 9C, 9D, 9E),
// each an X.509 certificate and its private key: RSA (1024, 2048, 3072 or
// 4096 bits) or ECDSA on P-256 or P-384. It comes from one of:
//
//   - Generate: one fresh key pair in 9A (PIV Authentication), ECDSA P-256,
//     with a self-signed certificate (CN "vscardkit PIV Authentication"),
//     new at every start.
//   - Load: PEM files in a directory, named after the slot: 9a.crt and
//     9a.key, 9c.crt and 9c.key, 9d.crt and 9d.key, 9e.crt and 9e.key. A
//     .crt holds one CERTIFICATE block; a .key holds the private key as
//     PRIVATE KEY (PKCS #8), RSA PRIVATE KEY (PKCS #1) or EC PRIVATE KEY
//     (SEC 1), unencrypted. A slot with neither file is empty; a slot with
//     only one of them, or whose key does not match its certificate, is an
//     error. At least one slot must be filled.
//   - New: key pairs the caller made (NewKeyPair makes one with a
//     self-signed certificate).
//
// The PIN is DefaultPIN ("123456") unless Options.PIN says otherwise. It is
// kept only as an HMAC-SHA-256 under a random per-store key, never in clear.
// After Options.MaxTries wrong PINs in a row (default 3) the PIN is blocked
// for the life of the Store; a right PIN resets the count. Key operations on
// 9A, 9C and 9D need a logged-in PIN (piv.ErrNotLoggedIn otherwise); 9E needs
// none, as in PIV. The Store also changes its PIN (piv.PINChanger).
//
// The RSA private-key operation is textbook math/big arithmetic (CRT when
// the key has two primes) with random blinding and a check of the result
// against the public key. math/big is not constant-time: blinding hides the
// input from timing, but the exponent's handling is not hardened against
// side channels. This store is for tests and demos; keys that matter belong
// in a token.
//
// References:
//   - NIST SP 800-73-4 part 1, section 3.3 (key references) and table 4b
//     (key access rules): https://doi.org/10.6028/NIST.SP.800-73-4
//   - RFC 8017 section 5.1.2 (RSADP with CRT) and section 5.2 (blinding, in
//     the notes on timing attacks)
package softstore
