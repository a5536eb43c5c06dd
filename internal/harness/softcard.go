package harness

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vscardkit/vscardkit/internal/piv"
	"github.com/vscardkit/vscardkit/internal/softstore"
)

// WriteKeyPair makes a key pair for slot and writes it as soft:DIR reads
// it (<slot>.crt, <slot>.key), returning the certificate.
func WriteKeyPair(t testing.TB, dir string, slot piv.Slot, alg softstore.Algorithm, cn string) *x509.Certificate {
	t.Helper()
	kp, err := softstore.NewKeyPair(slot, alg, cn)
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(kp.Key)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, strings.ToLower(slot.String()))
	for ext, blk := range map[string]*pem.Block{
		".crt": {Type: "CERTIFICATE", Bytes: kp.Certificate},
		".key": {Type: "PRIVATE KEY", Bytes: key},
	} {
		if err := os.WriteFile(base+ext, pem.EncodeToMemory(blk), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := x509.ParseCertificate(kp.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
