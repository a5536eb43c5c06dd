package softstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"time"

	"github.com/vscardkit/vscardkit/internal/piv"
)

// Algorithm is a key type NewKeyPair can make.
type Algorithm string

// The key types PIV knows (SP 800-78-5).
const (
	RSA1024 Algorithm = "RSA-1024"
	RSA2048 Algorithm = "RSA-2048"
	RSA3072 Algorithm = "RSA-3072"
	RSA4096 Algorithm = "RSA-4096"
	P256    Algorithm = "P-256"
	P384    Algorithm = "P-384"
)

// GeneratedCommonName is the subject of the certificate Generate makes.
const GeneratedCommonName = "vscardkit PIV Authentication"

// Generate returns a store with one fresh key pair: an ECDSA P-256 key in 9A
// (PIV Authentication) and a self-signed certificate for it. A new key is
// made at every call.
func Generate(opts Options) (*Store, error) {
	kp, err := NewKeyPair(piv.SlotAuthentication, P256, GeneratedCommonName)
	if err != nil {
		return nil, err
	}
	return New(map[piv.Slot]KeyPair{piv.SlotAuthentication: kp}, opts)
}

// NewKeyPair makes a fresh key of type alg and a self-signed certificate for
// it, valid from an hour ago for ten years, with subject CN=commonName and
// the key usage PIV gives slot: digital signature for 9A and 9E, plus
// non-repudiation for 9C, key (and data) encipherment for an RSA 9D, key
// agreement for an EC 9D.
func NewKeyPair(slot piv.Slot, alg Algorithm, commonName string) (KeyPair, error) {
	var key crypto.Signer
	var err error
	switch alg {
	case RSA1024, RSA2048, RSA3072, RSA4096:
		bits := map[Algorithm]int{RSA1024: 1024, RSA2048: 2048, RSA3072: 3072, RSA4096: 4096}[alg]
		key, err = rsa.GenerateKey(rand.Reader, bits)
	case P256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case P384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	default:
		return KeyPair{}, fmt.Errorf("softstore: unknown algorithm %q", alg)
	}
	if err != nil {
		return KeyPair{}, fmt.Errorf("softstore: generating a %s key: %w", alg, err)
	}
	_, isRSA := key.(*rsa.PrivateKey)
	var usage x509.KeyUsage
	switch slot {
	case piv.SlotSignature:
		usage = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
	case piv.SlotKeyManagement:
		if isRSA {
			usage = x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment
		} else {
			usage = x509.KeyUsageKeyAgreement
		}
	default:
		usage = x509.KeyUsageDigitalSignature
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return KeyPair{}, fmt.Errorf("softstore: certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     usage,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("softstore: self-signing a certificate: %w", err)
	}
	return KeyPair{Certificate: der, Key: key}, nil
}
