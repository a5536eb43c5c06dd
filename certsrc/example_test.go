package certsrc_test

import (
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"log"

	"github.com/vscardkit/vscardkit/certsrc"
	"github.com/vscardkit/vscardkit/internal/piv"
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

// Open a token, see what it presents, log in with the PIN the guest sent
// and sign in the token.
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

	pinFromVerify := []byte("123456")
	if err := s.Login(pinFromVerify); err != nil {
		var wrong *piv.PINError
		if errors.As(err, &wrong) {
			fmt.Println("wrong PIN,", wrong.Retries, "tries left")
		}
		log.Fatal(err)
	}
	key, err := s.PrivateKey(certsrc.SlotSignature)
	if err != nil {
		log.Fatal(err)
	}
	if ec, ok := key.(piv.ECKey); ok {
		digest := sha256.Sum256([]byte("document"))
		sig, err := ec.Sign(nil, digest[:], crypto.SHA256)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("signature: %x\n", sig)
	}
}
