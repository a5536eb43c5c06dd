package piv_test

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"testing"

	"github.com/vscardkit/vscardkit/internal/apdu"
	"github.com/vscardkit/vscardkit/internal/piv"
	"github.com/vscardkit/vscardkit/internal/softstore"
)

// BenchmarkGetDataCertificate reads the 9A certificate (RSA 2048, in pieces
// with GET RESPONSE), as a client does at every connection.
func BenchmarkGetDataCertificate(b *testing.B) {
	c := newCard(b, newStore(b, subset(mainKeys(b), piv.SlotAuthentication), softstore.Options{}), piv.Options{})
	for b.Loop() {
		if _, sw := c.getData("5FC105"); sw != apdu.SWOK {
			b.Fatal(sw)
		}
	}
}

// BenchmarkSignECDSA is VERIFY then a P-256 signature with 9C, what each
// "PIN always" signature costs the card (not the transport).
func BenchmarkSignECDSA(b *testing.B) {
	c := newCard(b, newStore(b, subset(mainKeys(b), piv.SlotSignature), softstore.Options{}), piv.Options{})
	d := sha256.Sum256([]byte("x"))
	cmd, _ := apdu.Command{INS: 0x87, P1: 0x11, P2: 0x9C, Data: dynAuth(0x81, d[:]), Ne: 256}.Bytes()
	verify := verifyCmd("123456")
	ctx := context.Background()
	for b.Loop() {
		c.a.Transmit(ctx, verify)
		if r, _ := c.a.Transmit(ctx, cmd); apdu.Response(r).SW() != apdu.SWOK {
			b.Fatal(apdu.Response(r).SW())
		}
	}
}

// BenchmarkSignRSA2048 is a PKCS #1 v1.5 signature with 9A (RSA 2048),
// chained in two pieces as OpenSC sends it.
func BenchmarkSignRSA2048(b *testing.B) {
	pairs := mainKeys(b)
	c := newCard(b, newStore(b, subset(pairs, piv.SlotAuthentication), softstore.Options{}), piv.Options{})
	c.verify("123456")
	d := sha256.Sum256([]byte("x"))
	block := pkcs1v15Block(&pairs[piv.SlotAuthentication].Key.(*rsa.PrivateKey).PublicKey, d[:])
	data := dynAuth(0x81, block)
	for b.Loop() {
		if _, sw := c.exchange(0, 0x87, 0x07, 0x9A, data); sw != apdu.SWOK {
			b.Fatal(sw)
		}
	}
}
