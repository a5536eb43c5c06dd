// Package certsrc presents the X.509 certificates and private keys of a
// PKCS#11 token (a smart card, an HSM, softhsm2) by PIV key slot: a Store
// holds a certificate for each of the slots 9A, 9C, 9D and 9E it fills,
// and that certificate's private key as a crypto.Signer (an *RSAKey, also
// a crypto.Decrypter, or an *ECKey) whose operations run in the token, so
// the keys never leave it. vscclient-go's emulated PIV card keeps its keys
// in a Store.
//
// # Naming the token
//
// A token is named by a PKCS#11 URI (RFC 7512), for example
//
//	pkcs11:token=alice?module-path=/usr/lib/softhsm/libsofthsm2.so
//	pkcs11:serial=3859a7231fec329f?module-name=opensc-pkcs11
//
// ParseURI reads every attribute RFC 7512 defines; the token is matched by
// token, manufacturer, serial and model (against CK_TOKEN_INFO, padding
// removed), slot-id, slot-description and slot-manufacturer, and the module
// by library-manufacturer, library-description and library-version.
// id and object restrict the certificates considered to those with that
// CKA_ID or CKA_LABEL; type is accepted and has no effect (a slot always
// needs a certificate and its private key). The module comes from
// module-path or module-name (see URI.ModuleFile). Exactly one initialised
// token must match.
//
// A URI with pin-value is refused (ErrPINValue): a PIN given on a command
// line can be read from the process list and shell history. The PIN
// reaches the token only through Login (in vscclient-go, from the guest's
// VERIFY). pin-source is parsed and kept but not read by this package.
//
// # Certificates, keys and slots
//
// Open reads the token's X.509 certificate objects (no login needed, as
// certificates are public objects). A certificate's private key is the
// private key object with the same CKA_ID; it is looked up at its first use
// after Login (private objects are invisible before), and checked against
// the certificate: same modulus for RSA, same curve for EC. Key types are
// those of PIV: RSA 1024, 2048 and 3072, ECDSA P-256 and P-384.
//
// Config.Slots places certificates explicitly; ParseSlotMapping reads the
// command-line form: 9a=id:01, 9c=label:Signing, 9e=none. Slots not named
// there are filled by the default mapping, from the certificates not yet
// placed that have a CKA_ID, are not CA certificates (basicConstraints
// cA) and hold a PIV key type. A certificate qualifies for
//
//   - 9A, PIV Authentication: keyUsage digitalSignature, and extended key
//     usage clientAuth, anyExtendedKeyUsage, Microsoft smartcardLogon
//     (1.3.6.1.4.1.311.20.2.2) or PKINIT client (1.3.6.1.5.2.3.4), or no
//     extended key usage at all;
//   - 9C, Digital Signature: keyUsage nonRepudiation (contentCommitment);
//   - 9D, Key Management: keyUsage keyEncipherment or keyAgreement;
//   - 9E, Card Authentication: extended key usage id-PIV-cardAuth
//     (2.16.840.1.101.3.6.8).
//
// A certificate without a keyUsage extension has every key usage. Slots are
// filled in the order 9A, 9C, 9D, 9E; each takes, among the qualifying
// certificates not already placed, the one that qualifies for the fewest
// slots (the most specialised), then the lowest CKA_ID (bytewise), then
// the lowest label, then the lowest DER encoding. A certificate fills at
// most one slot by default, so a token with a single all-purpose
// certificate presents it in 9A only. Store.Slots reports the result.
//
// # Private-key operations
//
// Store.PrivateKey returns the key of a slot; its operations need Login
// first (unless the token's key object is not private).
//
// An *RSAKey signs as crypto.Signer asks: PKCS #1 v1.5 with the token's
// CKM_RSA_PKCS over the DigestInfo of any hash crypto/rsa knows (or, with
// hash 0, over the caller's bytes as they are), and PSS, for
// *rsa.PSSOptions, with the token's CKM_RSA_PKCS_PSS. Where the token does
// not offer the mechanism (it does not list it, refuses it, or, for PSS,
// has no name for the hash or refuses the parameters), the block is padded
// here (EMSA-PKCS1-v1_5, EMSA-PSS) and raised to d with CKM_RSA_X_509. It
// decrypts as crypto.Decrypter asks: PKCS #1 v1.5 (CKM_RSA_PKCS) and OAEP
// (CKM_RSA_PKCS_OAEP) where the token does it, the padding always checked
// in the token. RSAKey.Raw is the bare private-key function with
// CKM_RSA_X_509, for a caller that pads, as PIV clients do: C_Decrypt for
// the Key Management slot (and for keys without CKA_SIGN), C_Sign
// otherwise. On a token that does not list CKM_RSA_X_509 (or refuses it
// for the key), Raw signs an EMSA-PKCS1-v1_5 signature block with
// CKM_RSA_PKCS over its DigestInfo, which gives the same result; other
// blocks (PSS, key management) then fail with ErrUnsupportedKey.
//
// An *ECKey signs with CKM_ECDSA, the token's r||s returned as the ASN.1
// signature crypto.Signer has, and ECKey.ECDH agrees with
// CKM_ECDH1_DERIVE (CKD_NULL, the peer's uncompressed point), deriving a
// session CKK_GENERIC_SECRET with CKA_TOKEN false, CKA_SENSITIVE false,
// CKA_EXTRACTABLE true and CKA_VALUE_LEN the field size, whose CKA_VALUE is
// the x coordinate; the object is destroyed at once. Keys with
// CKA_ALWAYS_AUTHENTICATE are refused (they would need the PIN at every
// use, which a Store does not keep).
//
// # PIN and tries left
//
// Login calls C_Login(CKU_USER). The PIN goes to the module without a Go
// copy, is not stored, and appears in no log or error. ChangePIN calls
// C_SetPIN in a read-write session. If the application
// is already logged in (CKR_USER_ALREADY_LOGGED_IN, for example through
// another Store on the same token), Login logs out and verifies the PIN
// again, so a wrong PIN is never accepted; a wrong PIN always leaves the
// Store logged out, as a failed VERIFY does on a card.
//
// PKCS#11 reports no retry counter, only flags, so the tries left are
// modelled: a token nominally allows Config.PINRetries tries
// (DefaultPINRetries, 3, unless set). The Store counts the wrong PINs since
// the last successful login and reports
//
//   - 0 and blocked (ErrPINBlocked) when CKF_USER_PIN_LOCKED is set or
//     C_Login answers CKR_PIN_LOCKED;
//   - 1 when CKF_USER_PIN_FINAL_TRY is set;
//   - otherwise nominal minus the failures counted (at least one failure
//     when CKF_USER_PIN_COUNT_LOW is set, which a new Store may find), but
//     never less than 1: only the token's flags can say that no try is
//     left, so a token that never locks (softhsm2) reads 3, 2, 1, 1, ...
//     and never looks blocked when it is not.
//
// A successful login resets the count. With a negative Config.PINRetries
// the count is reported as unknown (-1) unless the flags say 1 or 0. A wrong
// PIN is an error wrapping a *PINError (match it with errors.As);
// CKR_PIN_LEN_RANGE and CKR_PIN_INVALID are reported the same way without
// counting a try.
//
// # Sessions and removal
//
// A Store holds one read-only session. When the token goes away
// (CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED, CKR_DEVICE_REMOVED,
// CKR_TOKEN_NOT_PRESENT, ..., or a CKR_GENERAL_ERROR or stale handle
// after which the token no longer answers C_GetTokenInfo, which is what
// softhsm2 does when its token directory is deleted), calls fail with
// ErrTokenRemoved and the login state is lost. The next call looks for the
// same token (same label, serial, manufacturer and model) and opens a new
// session; as softhsm2 only finds tokens at C_Initialize, a Store that is
// the module's only user re-initialises the module to look. Logout of a
// token that went away succeeds. Certificates are read at Open and stay
// available.
//
// Errors start with "certsrc:", wrap the sentinels of this package (and
// rsa.ErrDecryption, errors.ErrUnsupported, context errors where they
// say so) and, for a failed PKCS#11 call, the pkcs11.Error of
// github.com/miekg/pkcs11 carrying its CKR_ code.
//
// # Modules and concurrency
//
// A process can load and initialise a PKCS#11 module only once, so the
// Stores of a process share each module (by real file path): the first
// calls C_Initialize, the last Close calls C_Finalize and unloads it. If
// something else in the process initialised the module first, certsrc
// never finalises it. Login state is per application in PKCS#11: two Stores
// on one token share it. softhsm2 reads SOFTHSM2_CONF when the module is
// initialised. A Store is safe for concurrent use; calls are serialised.
//
// # Building without cgo
//
// The PKCS#11 binding (github.com/miekg/pkcs11) needs cgo. Without it the
// package still builds, for every system: ParseURI, URI.ModuleFile,
// ParseSlot, ParseSlotMapping and the types work, and Open fails with
// ErrNoPKCS11Support. Module files are found as each system names them
// (URI.ModuleFile): shared objects on Linux and the BSDs, .dylib (or .so)
// on macOS, DLLs on Windows, which has no p11-kit configuration to read.
//
// # References
//
//   - RFC 7512, The PKCS #11 URI Scheme.
//   - p11-kit, PKCS#11 URIs and module configuration:
//     https://p11-glue.github.io/p11-glue/p11-kit/manual/
//   - OASIS PKCS #11 Cryptographic Token Interface Base Specification
//     v2.40 (C_Login, CK_TOKEN_INFO flags) and Current Mechanisms
//     Specification v2.40 (CKM_RSA_X_509, CKM_RSA_PKCS, CKM_RSA_PKCS_PSS,
//     CKM_RSA_PKCS_OAEP, CKM_ECDSA, CKM_ECDH1_DERIVE).
//   - NIST SP 800-73-4, Interfaces for Personal Identity Verification,
//     part 1 (key references 9A, 9C, 9D, 9E) and SP 800-78-4 (algorithms).
//   - RFC 5280 section 4.2.1.3 and 4.2.1.12 (key usage, extended key
//     usage); RFC 8017 (RSA, EMSA-PKCS1-v1_5, EMSA-PSS).
//   - softhsm2.conf(5).
package certsrc
