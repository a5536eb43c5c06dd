package softstore

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sync"

	"github.com/vscardkit/vscardkit/internal/piv"
)

// rsaKey is a piv.RSAKey.
type rsaKey struct {
	s    *Store
	slot piv.Slot
	priv *rsa.PrivateKey
}

func (k *rsaKey) Public() crypto.PublicKey { return &k.priv.PublicKey }

// RSARaw computes block^d mod n, blinded: it raises r^e * block for a random
// r, then divides by r, and checks the result against the public key.
func (k *rsaKey) RSARaw(block []byte) ([]byte, error) {
	if err := k.s.checkAccess(k.slot); err != nil {
		return nil, err
	}
	n := k.priv.N
	size := k.priv.Size()
	if len(block) != size {
		return nil, fmt.Errorf("softstore: RSA block of %d bytes for a %d-byte modulus", len(block), size)
	}
	c := new(big.Int).SetBytes(block)
	if c.Cmp(n) >= 0 {
		return nil, errors.New("softstore: RSA block not smaller than the modulus")
	}
	e := big.NewInt(int64(k.priv.E))

	var r, rInv *big.Int
	for {
		var err error
		r, err = rand.Int(rand.Reader, n)
		if err != nil {
			return nil, fmt.Errorf("softstore: blinding: %w", err)
		}
		if r.Sign() == 0 {
			continue
		}
		if rInv = new(big.Int).ModInverse(r, n); rInv != nil {
			break
		}
	}
	blinded := new(big.Int).Exp(r, e, n)
	blinded.Mul(blinded, c).Mod(blinded, n)

	m := k.decrypt(blinded)
	m.Mul(m, rInv).Mod(m, n)

	if new(big.Int).Exp(m, e, n).Cmp(c) != 0 {
		return nil, errors.New("softstore: RSA result failed its check")
	}
	return m.FillBytes(make([]byte, size)), nil
}

// decrypt is RSADP (RFC 8017 section 5.1.2), with the CRT for two-prime keys.
func (k *rsaKey) decrypt(c *big.Int) *big.Int {
	p := k.priv.Precomputed
	if len(k.priv.Primes) != 2 || p.Dp == nil || p.Dq == nil || p.Qinv == nil {
		return new(big.Int).Exp(c, k.priv.D, k.priv.N)
	}
	P, Q := k.priv.Primes[0], k.priv.Primes[1]
	m1 := new(big.Int).Exp(c, p.Dp, P)
	m2 := new(big.Int).Exp(c, p.Dq, Q)
	h := m1.Sub(m1, m2)
	h.Mul(h, p.Qinv).Mod(h, P)
	h.Mul(h, Q)
	return h.Add(h, m2)
}

// ecKey is a piv.ECKey.
type ecKey struct {
	s    *Store
	slot piv.Slot
	priv *ecdsa.PrivateKey

	once    sync.Once // converts priv for ECDH at first use (it costs a scalar multiplication)
	ecdh    *ecdh.PrivateKey
	ecdhErr error
}

func (k *ecKey) Public() crypto.PublicKey { return &k.priv.PublicKey }

// Sign signs digest with ECDSA and returns the DER signature; opts is
// ignored (the digest is used as given).
func (k *ecKey) Sign(r io.Reader, digest []byte, _ crypto.SignerOpts) ([]byte, error) {
	if err := k.s.checkAccess(k.slot); err != nil {
		return nil, err
	}
	if r == nil {
		r = rand.Reader
	}
	sig, err := ecdsa.SignASN1(r, k.priv, digest)
	if err != nil {
		return nil, fmt.Errorf("softstore: ECDSA: %w", err)
	}
	return sig, nil
}

// ECDH returns the shared secret with peer, which must be on the key's curve.
func (k *ecKey) ECDH(peer *ecdh.PublicKey) ([]byte, error) {
	if err := k.s.checkAccess(k.slot); err != nil {
		return nil, err
	}
	k.once.Do(func() { k.ecdh, k.ecdhErr = k.priv.ECDH() })
	if k.ecdhErr != nil {
		return nil, fmt.Errorf("softstore: ECDH: %w", k.ecdhErr)
	}
	if peer == nil || peer.Curve() != k.ecdh.Curve() {
		return nil, errors.New("softstore: ECDH peer key on another curve")
	}
	secret, err := k.ecdh.ECDH(peer)
	if err != nil {
		return nil, fmt.Errorf("softstore: ECDH: %w", err)
	}
	return secret, nil
}
