package softstore_test

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log"

	"github.com/vscardkit/vscardkit/internal/piv"
	"github.com/vscardkit/vscardkit/internal/softstore"
)

// A fresh store: one P-256 key pair in 9A and the default PIN, 123456, with
// three tries.
func ExampleGenerate() {
	store, err := softstore.Generate(softstore.Options{})
	if err != nil {
		log.Fatal(err)
	}
	der, _ := store.Certificate(piv.SlotAuthentication)
	cert, _ := x509.ParseCertificate(der)
	fmt.Println(cert.Subject.CommonName, cert.PublicKeyAlgorithm)

	var wrong *piv.PINError
	if errors.As(store.Login([]byte("000000")), &wrong) {
		fmt.Println("wrong PIN,", wrong.Retries, "tries left")
	}
	fmt.Println("right PIN:", store.Login([]byte("123456")))
	// Output:
	// vscardkit PIV Authentication ECDSA
	// wrong PIN, 2 tries left
	// right PIN: <nil>
}
