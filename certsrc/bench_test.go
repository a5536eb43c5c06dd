//go:build cgo

package certsrc

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"testing"

	"github.com/miekg/pkcs11"
	"github.com/vscardkit/vscardkit/internal/harness"
)

// benchToken makes a softhsm2 token with an RSA 2048 key (id 01), a P-256
// key (id 02) and a P-384 key (id 03), certificates included.
func benchToken(b *testing.B) *harness.SoftHSM {
	h := harness.NewSoftHSM(b, "bench")
	h.Setenv(b)
	h.AddIdentity(b, harness.IdentitySpec{Alg: harness.RSA2048, ID: []byte{1}, Label: "rsa",
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	h.AddIdentity(b, harness.IdentitySpec{Alg: harness.P256, ID: []byte{2}, Label: "p256",
		KeyUsage: x509.KeyUsageContentCommitment | x509.KeyUsageKeyAgreement})
	h.AddIdentity(b, harness.IdentitySpec{Alg: harness.P384, ID: []byte{3}, Label: "p384",
		KeyUsage: x509.KeyUsageDigitalSignature, UnknownEKU: []asn1.ObjectIdentifier{oidPIVCardAuth}})
	return h
}

// BenchmarkDirectSign measures C_SignInit + C_Sign on softhsm2 straight
// through miekg/pkcs11, without certsrc: the floor under the whole path.
func BenchmarkDirectSign(b *testing.B) {
	h := benchToken(b)
	mod, err := loadModule(h.Module)
	if err != nil {
		b.Fatal(err)
	}
	defer mod.release()
	ctx := mod.ctx
	var slot uint
	ids, err := ctx.GetSlotList(true)
	if err != nil {
		b.Fatal(err)
	}
	for _, id := range ids {
		if ti, err := ctx.GetTokenInfo(id); err == nil && trimPad(ti.Label) == "bench" {
			slot = id
		}
	}
	sh, err := ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		b.Fatal(err)
	}
	defer ctx.CloseSession(sh)
	if err := ctx.Login(sh, pkcs11.CKU_USER, h.PIN); err != nil {
		b.Fatal(err)
	}
	defer ctx.Logout(sh)
	find := func(id byte) pkcs11.ObjectHandle {
		if err := ctx.FindObjectsInit(sh, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_ID, []byte{id}),
		}); err != nil {
			b.Fatal(err)
		}
		hs, _, err := ctx.FindObjects(sh, 2)
		ctx.FindObjectsFinal(sh)
		if err != nil || len(hs) != 1 {
			b.Fatalf("finding key %02x: %v, %d", id, err, len(hs))
		}
		return hs[0]
	}
	block := make([]byte, 256)
	block[1] = 1 // a PKCS#1 v1.5-shaped block, less than any 2048-bit modulus
	for _, bc := range []struct {
		name  string
		id    byte
		mech  uint
		input []byte
	}{
		{"RSA2048_X509", 1, pkcs11.CKM_RSA_X_509, block},
		{"P256_ECDSA", 2, pkcs11.CKM_ECDSA, make([]byte, 32)},
		{"P384_ECDSA", 3, pkcs11.CKM_ECDSA, make([]byte, 48)},
	} {
		key := find(bc.id)
		mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(bc.mech, nil)}
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if err := ctx.SignInit(sh, mech, key); err != nil {
					b.Fatal(err)
				}
				if _, err := ctx.Sign(sh, bc.input); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStore measures the same operations through a Store (key lookup
// cached, locking, ASN.1 conversion), for comparison with
// BenchmarkDirectSign.
func BenchmarkStore(b *testing.B) {
	h := benchToken(b)
	u, err := ParseURI(h.URI(""))
	if err != nil {
		b.Fatal(err)
	}
	s, err := Open(context.Background(), u, Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.Login([]byte(h.PIN)); err != nil {
		b.Fatal(err)
	}
	key := func(slot Slot) crypto.Signer {
		k, err := s.PrivateKey(slot)
		if err != nil {
			b.Fatal(err)
		}
		return k
	}
	rk := key(SlotAuthentication).(*RSAKey)
	p256 := key(SlotSignature).(*ECKey)
	p384 := key(SlotCardAuthentication).(*ECKey)
	block := make([]byte, 256)
	block[1] = 1
	b.Run("RSA2048_Raw", func(b *testing.B) {
		for b.Loop() {
			if _, err := rk.Raw(block); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("RSA2048_SignPKCS1v15", func(b *testing.B) {
		digest := make([]byte, 32)
		for b.Loop() {
			if _, err := rk.Sign(nil, digest, crypto.SHA256); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, bc := range []struct {
		name string
		k    *ECKey
		n    int
	}{{"P256_Sign", p256, 32}, {"P384_Sign", p384, 48}} {
		b.Run(bc.name, func(b *testing.B) {
			digest := make([]byte, bc.n)
			for b.Loop() {
				if _, err := bc.k.Sign(nil, digest, crypto.Hash(0)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	peer, _ := ecdh.P256().GenerateKey(rand.Reader)
	b.Run("P256_ECDH", func(b *testing.B) {
		for b.Loop() {
			if _, err := p256.ECDH(peer.PublicKey()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
