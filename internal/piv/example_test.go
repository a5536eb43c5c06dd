package piv_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"log"

	"github.com/vscardkit/vscardkit/internal/apdu"
	"github.com/vscardkit/vscardkit/internal/piv"
	"github.com/vscardkit/vscardkit/internal/softstore"
)

// A PIV card over a software store: select it, read its certificate, verify
// the PIN and sign a digest, as a client would.
func Example() {
	store, err := softstore.Generate(softstore.Options{}) // P-256 key in 9A, PIN 123456
	if err != nil {
		log.Fatal(err)
	}
	card := piv.New(piv.NewPINGuard(store, piv.GuardOptions{}), piv.Options{})

	// send transmits a command and follows 61xx with GET RESPONSE.
	send := func(name, cmd string) []byte {
		b, _ := hex.DecodeString(cmd)
		var data []byte
		for {
			resp, err := card.Transmit(context.Background(), b)
			if err != nil {
				log.Fatal(err)
			}
			r := apdu.Response(resp)
			data = append(data, r.Data()...)
			if r.SW()&0xFF00 != apdu.SWBytesRemaining {
				fmt.Printf("%-12s %v\n", name, r.SW())
				return data
			}
			b = []byte{0x00, 0xC0, 0x00, 0x00, 0x00} // GET RESPONSE
		}
	}

	send("SELECT", "00A4040005A000000308")
	obj := send("GET DATA 9A", "00CB3FFF055C035FC105")
	send("PIN status", "00200080")
	send("VERIFY", "0020008008313233343536FFFF")
	digest := sha256.Sum256([]byte("hello, PIV"))
	tmpl := send("SIGN", "0087119A267C2482008120"+hex.EncodeToString(digest[:]))

	// 53 { 70 certificate ... } and 7C { 82 signature }: DER, so
	// encoding/asn1 reads them.
	cert, err := x509.ParseCertificate(inner(inner(obj)))
	if err != nil {
		log.Fatal(err)
	}
	sig := inner(inner(tmpl))
	fmt.Println("signature verifies:", ecdsa.VerifyASN1(cert.PublicKey.(*ecdsa.PublicKey), digest[:], sig))
	// Output:
	// SELECT       9000
	// GET DATA 9A  9000
	// PIN status   63C3
	// VERIFY       9000
	// SIGN         9000
	// signature verifies: true
}

// inner returns the value of the first TLV in b.
func inner(b []byte) []byte {
	var v asn1.RawValue
	if _, err := asn1.Unmarshal(b, &v); err != nil {
		log.Fatal(err)
	}
	return v.Bytes
}
