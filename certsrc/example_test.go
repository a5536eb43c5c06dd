package certsrc_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log"

	"github.com/vscardkit/vscardkit/certsrc"
)

func ExampleParseURI() {
	u, err := certsrc.ParseURI("pkcs11:token=Alice%27s%20card;id=%01?module-path=/usr/lib/softhsm/libsofthsm2.so")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("token %q, id %x, module %s\n", u.Token, u.ID, u.ModulePath)
	fmt.Println(u)

	_, err = certsrc.ParseURI("pkcs11:token=alice?pin-value=123456")
	fmt.Println(errors.Is(err, certsrc.ErrPINValue))
	// Output:
	// token "Alice's card", id 01, module /usr/lib/softhsm/libsofthsm2.so
	// pkcs11:token=Alice%27s%20card;id=%01?module-path=/usr/lib/softhsm/libsofthsm2.so
	// true
}

func ExampleParseSlotMapping() {
	cfg := certsrc.Config{Slots: make(map[certsrc.Slot]certsrc.Selector)}
	for _, flag := range []string{"9a=id:01", "9c=label:Signing key", "9e=none"} {
		slot, sel, err := certsrc.ParseSlotMapping(flag)
		if err != nil {
			log.Fatal(err)
		}
		cfg.Slots[slot] = sel
		fmt.Printf("slot %s: %s\n", slot, sel)
	}
	// Output:
	// slot 9A: id:01
	// slot 9C: label:Signing key
	// slot 9E: none
}

func ExampleParseSlot() {
	for _, name := range []string{"9a", "9E", "9b"} {
		slot, err := certsrc.ParseSlot(name)
		if err != nil {
			fmt.Println(name, "is not a slot a Store fills:", errors.Is(err, certsrc.ErrMapping))
			continue
		}
		fmt.Printf("%s is key reference %#02x\n", slot, byte(slot))
	}
	fmt.Println(certsrc.Slots)
	// Output:
	// 9A is key reference 0x9a
	// 9E is key reference 0x9e
	// 9b is not a slot a Store fills: true
	// [9A 9C 9D 9E]
}

// Open a token, see what it presents, log in with a PIN and sign in the
// token with the key of the Digital Signature slot, a crypto.Signer.
func ExampleOpen() {
	u, err := certsrc.ParseURI("pkcs11:token=alice?module-path=/usr/lib/softhsm/libsofthsm2.so")
	if err != nil {
		log.Fatal(err)
	}
	s, err := certsrc.Open(context.Background(), u, certsrc.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	for _, in := range s.Slots() {
		fmt.Printf("%s: id %x %q, %s (%s)\n", in.Slot, in.ID, in.Label, in.Certificate.Subject, in.Reason)
	}

	if err := s.Login([]byte("123456")); err != nil {
		var wrong *certsrc.PINError
		if errors.As(err, &wrong) {
			fmt.Println("wrong PIN,", wrong.Retries, "tries left")
		}
		log.Fatal(err)
	}
	key, err := s.PrivateKey(certsrc.SlotSignature)
	if err != nil {
		log.Fatal(err) // errors.Is(err, certsrc.ErrNotFound): the slot is empty
	}
	digest := sha256.Sum256([]byte("document"))
	sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256) // ECDSA: ASN.1 DER; RSA: PKCS #1 v1.5
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("signature: %x\n", sig)
}
