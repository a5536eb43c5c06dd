package guest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"

	"github.com/vscardkit/vscardkit/xmlconfig"
)

// Smartcard returns the smartcard of the tests' and the demo's guests: a
// passthrough smartcard on TCP 127.0.0.1:port, whose QEMU arguments
// (QEMUArgs) are the ones libvirt 9 generates for it, key for key: usb-ccid
// on port 1 of libvirt's bus usb.0 (boot with guest.BootOptions.LibvirtUSB)
// and a chardev without nodelay. ClientArgs is the vscclient-go command
// line that connects to it.
func Smartcard(port int) xmlconfig.Config {
	return xmlconfig.Config{
		Port:           port,
		Controller:     &xmlconfig.CCIDController{USBPort: "1"},
		LibvirtChardev: true,
	}
}

// Errors of the PIV result checks, matchable with errors.Is.
var (
	// ErrNoResult is wrapped when the guest's results lack a value the
	// check needs.
	ErrNoResult = errors.New("guest: the guest printed no such result")
	// ErrBadSignature is wrapped when the guest's signature does not
	// verify.
	ErrBadSignature = errors.New("guest: the guest's signature does not verify")
)

// resultHex decodes the hex result key of a piv scenario.
func resultHex(res map[string]string, key string) ([]byte, error) {
	v, ok := res[key]
	if !ok || v == "" {
		return nil, fmt.Errorf("%w: %s", ErrNoResult, key)
	}
	b, err := hex.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("guest: result %s: %w", key, err)
	}
	return b, nil
}

// Certificate parses the certificate the guest's piv scenario read from
// the card with pkcs11-tool (result cert).
func Certificate(res map[string]string) (*x509.Certificate, error) {
	der, err := resultHex(res, "cert")
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("guest: the certificate the guest read: %w", err)
	}
	return cert, nil
}

// VerifySignature checks the signature the guest's piv scenario made
// (results keytype, mechanism, challenge, signature) with pub: for RSA
// keys, pkcs11-tool's RSA-PKCS, a PKCS #1 v1.5 signature of the challenge's
// bytes as they are (no DigestInfo); for EC keys, ECDSA over the challenge
// taken as the hash, written as r||s. The error wraps ErrBadSignature when
// the signature is wrong, ErrNoResult when a result is missing.
func VerifySignature(pub crypto.PublicKey, res map[string]string) error {
	challenge, err := resultHex(res, "challenge")
	if err != nil {
		return err
	}
	sig, err := resultHex(res, "signature")
	if err != nil {
		return err
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if res["keytype"] != "rsa" || res["mechanism"] != "RSA-PKCS" {
			return fmt.Errorf("guest: an RSA key signed as keytype %q mechanism %q", res["keytype"], res["mechanism"])
		}
		if err := rsa.VerifyPKCS1v15(k, 0, challenge, sig); err != nil {
			return fmt.Errorf("%w: %v", ErrBadSignature, err)
		}
		return nil
	case *ecdsa.PublicKey:
		if res["keytype"] != "ec" || res["mechanism"] != "ECDSA" {
			return fmt.Errorf("guest: an EC key signed as keytype %q mechanism %q", res["keytype"], res["mechanism"])
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return fmt.Errorf("%w: an ECDSA signature of %d bytes, want r||s of %d", ErrBadSignature, len(sig), 2*size)
		}
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(k, challenge, r, s) {
			return ErrBadSignature
		}
		return nil
	}
	return fmt.Errorf("guest: unsupported public key %T", pub)
}
