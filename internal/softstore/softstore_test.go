package softstore_test

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/vscardkit/vscardkit/internal/piv"
	"github.com/vscardkit/vscardkit/internal/softstore"
)

var (
	pairsOnce sync.Once
	pairs     map[piv.Slot]softstore.KeyPair
	pairsErr  error
)

// testPairs: 9A P-256, 9C RSA 2048, 9D P-384, 9E RSA 1024.
func testPairs(t *testing.T) map[piv.Slot]softstore.KeyPair {
	t.Helper()
	pairsOnce.Do(func() {
		pairs = map[piv.Slot]softstore.KeyPair{}
		for slot, alg := range map[piv.Slot]softstore.Algorithm{
			piv.SlotAuthentication:     softstore.P256,
			piv.SlotSignature:          softstore.RSA2048,
			piv.SlotKeyManagement:      softstore.P384,
			piv.SlotCardAuthentication: softstore.RSA1024,
		} {
			kp, err := softstore.NewKeyPair(slot, alg, "test "+slot.String())
			if err != nil {
				pairsErr = err
				return
			}
			pairs[slot] = kp
		}
	})
	if pairsErr != nil {
		t.Fatal(pairsErr)
	}
	return pairs
}

func TestGenerate(t *testing.T) {
	s, err := softstore.Generate(softstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	der, err := s.Certificate(piv.SlotAuthentication)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() || cert.Subject.CommonName != softstore.GeneratedCommonName {
		t.Fatalf("certificate %v, key %T", cert.Subject, cert.PublicKey)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if cert.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("key usage %v", cert.KeyUsage)
	}
	for _, slot := range []piv.Slot{piv.SlotSignature, piv.SlotKeyManagement, piv.SlotCardAuthentication} {
		if _, err := s.Certificate(slot); !errors.Is(err, piv.ErrNotFound) {
			t.Errorf("Certificate(%v): %v", slot, err)
		}
		if _, err := s.PrivateKey(slot); !errors.Is(err, piv.ErrNotFound) {
			t.Errorf("PrivateKey(%v): %v", slot, err)
		}
	}
	if len(s.Serial()) != 16 || !bytes.Equal(s.Serial(), s.Serial()) {
		t.Errorf("serial %X", s.Serial())
	}
	s2, _ := softstore.Generate(softstore.Options{})
	if bytes.Equal(s.Serial(), s2.Serial()) {
		t.Error("two generated stores share a serial")
	}

	key, _ := s.PrivateKey(piv.SlotAuthentication)
	ec := key.(piv.ECKey)
	digest := sha256.Sum256([]byte("x"))
	if _, err := ec.Sign(rand.Reader, digest[:], crypto.SHA256); !errors.Is(err, piv.ErrNotLoggedIn) {
		t.Fatalf("Sign before Login: %v", err)
	}
	if err := s.Login([]byte(softstore.DefaultPIN)); err != nil {
		t.Fatal(err)
	}
	sig, err := ec.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil || !ecdsa.VerifyASN1(pub, digest[:], sig) {
		t.Fatalf("signature: %v", err)
	}
	if err := s.Logout(); err != nil {
		t.Fatal(err)
	}
	if _, err := ec.Sign(rand.Reader, digest[:], crypto.SHA256); !errors.Is(err, piv.ErrNotLoggedIn) {
		t.Fatalf("Sign after Logout: %v", err)
	}
}

func TestPIN(t *testing.T) {
	s, err := softstore.New(testPairs(t), softstore.Options{PIN: "24681357", MaxTries: 3})
	if err != nil {
		t.Fatal(err)
	}
	status := func() piv.PINStatus { st, _ := s.PINStatus(); return st }
	if st := status(); st.LoggedIn || st.Retries != 3 || st.Blocked {
		t.Fatalf("initial status %+v", st)
	}
	var pe *piv.PINError
	if err := s.Login([]byte(softstore.DefaultPIN)); !errors.As(err, &pe) || pe.Retries != 2 {
		t.Fatalf("wrong PIN: %v", err)
	}
	if err := s.Login([]byte("24681357")); err != nil {
		t.Fatal(err)
	}
	if st := status(); !st.LoggedIn || st.Retries != 3 {
		t.Fatalf("after the right PIN: %+v", st)
	}
	for want := 2; want >= 0; want-- {
		err := s.Login([]byte("0000"))
		if !errors.As(err, &pe) || pe.Retries != want {
			t.Fatalf("wrong PIN, want %d left: %v", want, err)
		}
		if bytes.Contains([]byte(err.Error()), []byte("0000")) {
			t.Fatalf("error %q contains the PIN", err)
		}
	}
	if st := status(); st.LoggedIn || !st.Blocked || st.Retries != 0 {
		t.Fatalf("after three wrong PINs: %+v", st)
	}
	if err := s.Login([]byte("24681357")); !errors.Is(err, piv.ErrPINBlocked) {
		t.Fatalf("right PIN when blocked: %v", err)
	}

	for _, bad := range []string{"123456789", "12\xff34"} {
		if _, err := softstore.New(testPairs(t), softstore.Options{PIN: bad}); !errors.Is(err, piv.ErrPINFormat) {
			t.Errorf("PIN %q: %v", bad, err)
		}
	}
}

func TestChangePIN(t *testing.T) {
	s, _ := softstore.New(testPairs(t), softstore.Options{})
	var pe *piv.PINError
	if err := s.ChangePIN([]byte("000000"), []byte("654321")); !errors.As(err, &pe) || pe.Retries != 2 {
		t.Fatalf("wrong old PIN: %v", err)
	}
	if err := s.ChangePIN([]byte("123456"), []byte("123456789")); !errors.Is(err, piv.ErrPINFormat) {
		t.Fatalf("nine-byte new PIN: %v", err)
	}
	if st, _ := s.PINStatus(); st.Retries != 2 {
		t.Fatalf("a refused new PIN counted: %+v", st)
	}
	if err := s.ChangePIN([]byte("123456"), []byte("654321")); err != nil {
		t.Fatal(err)
	}
	if err := s.Login([]byte("123456")); !errors.As(err, &pe) {
		t.Fatalf("old PIN after the change: %v", err)
	}
	if err := s.Login([]byte("654321")); err != nil {
		t.Fatalf("new PIN: %v", err)
	}
}

func TestRSARaw(t *testing.T) {
	p := testPairs(t)
	s, _ := softstore.New(p, softstore.Options{})
	priv := p[piv.SlotSignature].Key.(*rsa.PrivateKey)
	key, _ := s.PrivateKey(piv.SlotSignature)
	rk := key.(piv.RSAKey)

	msg := []byte("wrapped key")
	//lint:ignore SA1019 the card decrypts PKCS #1 v1.5, which PIV clients send (OpenSC CKM_RSA_PKCS, piv-go): the test needs such a ciphertext
	ct, _ := rsa.EncryptPKCS1v15(rand.Reader, &priv.PublicKey, msg)
	if _, err := rk.RSARaw(ct); !errors.Is(err, piv.ErrNotLoggedIn) {
		t.Fatalf("RSARaw before Login: %v", err)
	}
	s.Login([]byte(softstore.DefaultPIN))
	block, err := rk.RSARaw(ct)
	if err != nil {
		t.Fatal(err)
	}
	if len(block) != 256 || block[0] != 0 || block[1] != 2 || !bytes.HasSuffix(block, append([]byte{0}, msg...)) {
		t.Fatalf("decrypted block %X", block)
	}
	// Many random blocks: the result raised to e gives the block back, and
	// equals the unblinded textbook result.
	for range 20 {
		c, _ := rand.Int(rand.Reader, priv.N)
		in := c.FillBytes(make([]byte, 256))
		out, err := rk.RSARaw(in)
		if err != nil {
			t.Fatal(err)
		}
		want := new(big.Int).Exp(c, priv.D, priv.N)
		if new(big.Int).SetBytes(out).Cmp(want) != 0 {
			t.Fatal("RSARaw differs from c^d mod n")
		}
	}
	for _, bad := range [][]byte{ct[1:], append(ct, 0), priv.N.Bytes()} {
		if _, err := rk.RSARaw(bad); err == nil {
			t.Errorf("RSARaw accepted a %d-byte block %X...", len(bad), bad[:4])
		}
	}

	// 9E needs no PIN.
	s.Logout()
	k9e, _ := s.PrivateKey(piv.SlotCardAuthentication)
	if _, err := k9e.(piv.RSAKey).RSARaw(make([]byte, 128)); err != nil {
		t.Fatalf("9E without Login: %v", err)
	}
}

func TestECDH(t *testing.T) {
	p := testPairs(t)
	s, _ := softstore.New(p, softstore.Options{})
	s.Login([]byte(softstore.DefaultPIN))
	key, _ := s.PrivateKey(piv.SlotKeyManagement)
	ek := key.(piv.ECKey)
	peer, _ := ecdh.P384().GenerateKey(rand.Reader)
	ours, _ := p[piv.SlotKeyManagement].Key.(*ecdsa.PrivateKey).PublicKey.ECDH()
	got, err := ek.ECDH(peer.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := peer.ECDH(ours)
	if !bytes.Equal(got, want) {
		t.Fatal("shared secrets differ")
	}
	other, _ := ecdh.P256().GenerateKey(rand.Reader)
	if _, err := ek.ECDH(other.PublicKey()); err == nil {
		t.Fatal("ECDH with a P-256 peer on a P-384 key worked")
	}
	if _, err := ek.ECDH(nil); err == nil {
		t.Fatal("ECDH with no peer worked")
	}
}

func TestNewErrors(t *testing.T) {
	p := testPairs(t)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := softstoreKeyPairP521(t)
	for _, tc := range []struct {
		name  string
		slots map[piv.Slot]softstore.KeyPair
	}{
		{"none", nil},
		{"retired slot", map[piv.Slot]softstore.KeyPair{0x82: p[piv.SlotAuthentication]}},
		{"key of another certificate", map[piv.Slot]softstore.KeyPair{piv.SlotAuthentication: {Certificate: p[piv.SlotAuthentication].Certificate, Key: p384}}},
		{"no key", map[piv.Slot]softstore.KeyPair{piv.SlotAuthentication: {Certificate: p[piv.SlotAuthentication].Certificate}}},
		{"not a certificate", map[piv.Slot]softstore.KeyPair{piv.SlotAuthentication: {Certificate: []byte("x"), Key: p384}}},
		{"P-521", map[piv.Slot]softstore.KeyPair{piv.SlotAuthentication: p521}},
	} {
		if _, err := softstore.New(tc.slots, softstore.Options{}); err == nil {
			t.Errorf("%s: New succeeded", tc.name)
		} else if tc.name != "none" && !errors.Is(err, softstore.ErrBadKeyPair) {
			t.Errorf("%s: %v does not wrap ErrBadKeyPair", tc.name, err)
		}
	}
	if _, err := softstore.NewKeyPair(piv.SlotAuthentication, "DSA", "x"); err == nil {
		t.Error("NewKeyPair made a DSA key")
	}
}

func softstoreKeyPairP521(t *testing.T) (softstore.KeyPair, error) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	return softstore.KeyPair{Certificate: der, Key: k}, nil
}

func writePEM(t *testing.T, path, typ string, der []byte, headers map[string]string) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Headers: headers, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoad(t *testing.T) {
	p := testPairs(t)
	dir := t.TempDir()
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(p[piv.SlotAuthentication].Key)
	writePEM(t, filepath.Join(dir, "9a.crt"), "CERTIFICATE", p[piv.SlotAuthentication].Certificate, nil)
	writePEM(t, filepath.Join(dir, "9a.key"), "PRIVATE KEY", pkcs8, nil)
	writePEM(t, filepath.Join(dir, "9c.crt"), "CERTIFICATE", p[piv.SlotSignature].Certificate, nil)
	writePEM(t, filepath.Join(dir, "9c.key"), "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(p[piv.SlotSignature].Key.(*rsa.PrivateKey)), nil)
	sec1, _ := x509.MarshalECPrivateKey(p[piv.SlotKeyManagement].Key.(*ecdsa.PrivateKey))
	writePEM(t, filepath.Join(dir, "9d.crt"), "CERTIFICATE", p[piv.SlotKeyManagement].Certificate, nil)
	writePEM(t, filepath.Join(dir, "9d.key"), "EC PRIVATE KEY", sec1, nil)

	s, err := softstore.Load(dir, softstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, slot := range []piv.Slot{piv.SlotAuthentication, piv.SlotSignature, piv.SlotKeyManagement} {
		der, err := s.Certificate(slot)
		if err != nil || !bytes.Equal(der, p[slot].Certificate) {
			t.Errorf("slot %v: certificate differs (%v)", slot, err)
		}
		if _, err := s.PrivateKey(slot); err != nil {
			t.Errorf("slot %v: %v", slot, err)
		}
	}
	if _, err := s.Certificate(piv.SlotCardAuthentication); !errors.Is(err, piv.ErrNotFound) {
		t.Errorf("9E: %v", err)
	}
	s2, _ := softstore.Load(dir, softstore.Options{})
	if !bytes.Equal(s.Serial(), s2.Serial()) {
		t.Error("the same files gave two serials")
	}
	s3, _ := softstore.Load(dir, softstore.Options{Serial: []byte("mine")})
	if string(s3.Serial()) != "mine" {
		t.Errorf("Options.Serial ignored: %q", s3.Serial())
	}

	// Broken directories.
	for _, tc := range []struct {
		name  string
		setup func(dir string)
	}{
		{"empty", func(string) {}},
		{"certificate without key", func(d string) {
			writePEM(t, filepath.Join(d, "9a.crt"), "CERTIFICATE", p[piv.SlotAuthentication].Certificate, nil)
		}},
		{"key without certificate", func(d string) {
			writePEM(t, filepath.Join(d, "9e.key"), "PRIVATE KEY", pkcs8, nil)
		}},
		{"mismatched", func(d string) {
			writePEM(t, filepath.Join(d, "9a.crt"), "CERTIFICATE", p[piv.SlotSignature].Certificate, nil)
			writePEM(t, filepath.Join(d, "9a.key"), "PRIVATE KEY", pkcs8, nil)
		}},
		{"encrypted key", func(d string) {
			writePEM(t, filepath.Join(d, "9a.crt"), "CERTIFICATE", p[piv.SlotAuthentication].Certificate, nil)
			writePEM(t, filepath.Join(d, "9a.key"), "EC PRIVATE KEY", sec1, map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"})
		}},
		{"key is a certificate", func(d string) {
			writePEM(t, filepath.Join(d, "9a.crt"), "CERTIFICATE", p[piv.SlotAuthentication].Certificate, nil)
			writePEM(t, filepath.Join(d, "9a.key"), "CERTIFICATE", p[piv.SlotAuthentication].Certificate, nil)
		}},
		{"not PEM", func(d string) {
			os.WriteFile(filepath.Join(d, "9a.crt"), p[piv.SlotAuthentication].Certificate, 0o600)
			writePEM(t, filepath.Join(d, "9a.key"), "PRIVATE KEY", pkcs8, nil)
		}},
		{"huge file", func(d string) {
			os.WriteFile(filepath.Join(d, "9a.crt"), make([]byte, 2<<20), 0o600)
			writePEM(t, filepath.Join(d, "9a.key"), "PRIVATE KEY", pkcs8, nil)
		}},
	} {
		d := t.TempDir()
		tc.setup(d)
		if _, err := softstore.Load(d, softstore.Options{}); err == nil {
			t.Errorf("%s: Load succeeded", tc.name)
		}
	}
}
