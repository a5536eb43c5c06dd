//go:build cgo

package certsrc_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/pkcs11"
	"github.com/vscardkit/vscardkit/certsrc"
	"github.com/vscardkit/vscardkit/internal/harness"
)

var (
	oidPIVCardAuth    = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 6, 8}
	oidSmartcardLogon = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 2}
)

// pivToken is a softhsm2 token laid out like a PIV card: one identity per
// slot, plus a CA certificate the default mapping must skip.
type pivToken struct {
	h                         *harness.SoftHSM
	auth, sign, keyMgmt, card *harness.Identity
	ca                        *harness.Identity
}

func newPIVToken(t *testing.T) *pivToken {
	t.Helper()
	h := harness.NewSoftHSM(t, "alice")
	h.Setenv(t)
	p := &pivToken{h: h}
	p.auth = h.AddIdentity(t, harness.IdentitySpec{Alg: harness.RSA2048, ID: []byte{0x01}, Label: "PIV AUTH",
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		UnknownEKU: []asn1.ObjectIdentifier{oidSmartcardLogon}})
	p.sign = h.AddIdentity(t, harness.IdentitySpec{Alg: harness.P256, ID: []byte{0x02}, Label: "SIGN",
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}})
	p.keyMgmt = h.AddIdentity(t, harness.IdentitySpec{Alg: harness.RSA2048, ID: []byte{0x03}, Label: "KEY MGMT",
		KeyUsage: x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}})
	p.card = h.AddIdentity(t, harness.IdentitySpec{Alg: harness.P384, ID: []byte{0x04}, Label: "CARD AUTH",
		KeyUsage: x509.KeyUsageDigitalSignature, UnknownEKU: []asn1.ObjectIdentifier{oidPIVCardAuth}})
	p.ca = h.AddIdentity(t, harness.IdentitySpec{Alg: harness.P256, ID: []byte{0x0c}, Label: "CA",
		KeyUsage: x509.KeyUsageCertSign, IsCA: true, NoKey: true})
	return p
}

func openStore(t testing.TB, uri string, cfg certsrc.Config) *certsrc.Store {
	t.Helper()
	u, err := certsrc.ParseURI(uri)
	if err != nil {
		t.Fatalf("ParseURI(%q): %v", uri, err)
	}
	s, err := certsrc.Open(context.Background(), u, cfg)
	if err != nil {
		t.Fatalf("Open(%q): %v", uri, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func login(t testing.TB, s *certsrc.Store, pin string) {
	t.Helper()
	if err := s.Login([]byte(pin)); err != nil {
		t.Fatalf("Login: %v", err)
	}
}

func TestOpenDefaultMapping(t *testing.T) {
	p := newPIVToken(t)
	s := openStore(t, p.h.URI(""), certsrc.Config{})
	want := map[certsrc.Slot]*harness.Identity{
		certsrc.SlotAuthentication: p.auth, certsrc.SlotSignature: p.sign,
		certsrc.SlotKeyManagement: p.keyMgmt, certsrc.SlotCardAuthentication: p.card,
	}
	infos := s.Slots()
	if len(infos) != 4 {
		t.Fatalf("Slots() = %d slots, want 4: %+v", len(infos), infos)
	}
	for _, in := range infos {
		id := want[in.Slot]
		if !bytes.Equal(in.ID, id.ID) || in.Label != id.Label || !in.Certificate.Equal(id.Cert) {
			t.Errorf("slot %s holds id %x %q, want id %x %q", in.Slot, in.ID, in.Label, id.ID, id.Label)
		}
		cert, err := s.Certificate(in.Slot)
		if err != nil || !bytes.Equal(cert.Raw, id.Cert.Raw) {
			t.Errorf("Certificate(%s) = %v, %v; want %s", in.Slot, cert.Subject, err, id.Cert.Subject)
		}
		key, err := s.PrivateKey(in.Slot)
		if err != nil {
			t.Fatalf("PrivateKey(%s): %v", in.Slot, err)
		}
		switch id.Key.(type) {
		case *rsa.PrivateKey:
			if _, ok := key.(*certsrc.RSAKey); !ok {
				t.Errorf("PrivateKey(%s) is a %T, want a *certsrc.RSAKey", in.Slot, key)
			}
		case *ecdsa.PrivateKey:
			if _, ok := key.(*certsrc.ECKey); !ok {
				t.Errorf("PrivateKey(%s) is a %T, want a *certsrc.ECKey", in.Slot, key)
			}
		}
		if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(id.Public()) {
			t.Errorf("PrivateKey(%s).Public() differs from the certificate's key", in.Slot)
		}
	}
	if ti := s.Token(); ti.Label != "alice" || ti.Model != "SoftHSM v2" || ti.Serial == "" {
		t.Errorf("Token() = %+v", ti)
	}
}

func TestOpenExplicitMapping(t *testing.T) {
	p := newPIVToken(t)
	var cfg certsrc.Config
	cfg.Slots = make(map[certsrc.Slot]certsrc.Selector)
	for _, flag := range []string{"9a=label:SIGN", "9c=id:01", "9e=none"} {
		slot, sel, err := certsrc.ParseSlotMapping(flag)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Slots[slot] = sel
	}
	s := openStore(t, p.h.URI(""), cfg)
	got := make(map[certsrc.Slot]string)
	for _, in := range s.Slots() {
		got[in.Slot] = in.Label
	}
	want := map[certsrc.Slot]string{certsrc.SlotAuthentication: "SIGN", certsrc.SlotSignature: "PIV AUTH", certsrc.SlotKeyManagement: "KEY MGMT"}
	if len(got) != len(want) || got[certsrc.SlotAuthentication] != "SIGN" || got[certsrc.SlotSignature] != "PIV AUTH" || got[certsrc.SlotKeyManagement] != "KEY MGMT" {
		t.Errorf("mapping = %v, want %v", got, want)
	}
	if _, err := s.Certificate(certsrc.SlotCardAuthentication); !errors.Is(err, certsrc.ErrNotFound) {
		t.Errorf("Certificate(9E) of an emptied slot: %v, want ErrNotFound", err)
	}
	if _, err := s.PrivateKey(certsrc.SlotCardAuthentication); !errors.Is(err, certsrc.ErrNotFound) {
		t.Errorf("PrivateKey(9E) of an emptied slot: %v, want ErrNotFound", err)
	}
	// The explicit 9A key (an EC key) signs.
	login(t, s, p.h.PIN)
	k, _ := s.PrivateKey(certsrc.SlotAuthentication)
	digest := sha256.Sum256([]byte("explicit"))
	sig, err := k.Sign(nil, digest[:], crypto.SHA256)
	if err != nil || !ecdsa.VerifyASN1(p.sign.Public().(*ecdsa.PublicKey), digest[:], sig) {
		t.Errorf("explicitly mapped key: sign %v, or the signature does not verify", err)
	}

	// A selector that matches nothing fails Open.
	u, _ := certsrc.ParseURI(p.h.URI(""))
	_, err = certsrc.Open(context.Background(), u, certsrc.Config{Slots: map[certsrc.Slot]certsrc.Selector{certsrc.SlotSignature: {Label: "nope"}}})
	if !errors.Is(err, certsrc.ErrMapping) || !errors.Is(err, certsrc.ErrNotFound) {
		t.Errorf("Open with a selector matching nothing: %v", err)
	}
}

func TestURIObjectFilter(t *testing.T) {
	p := newPIVToken(t)
	s := openStore(t, "pkcs11:token=alice;id=%03?module-path="+p.h.Module, certsrc.Config{})
	infos := s.Slots()
	if len(infos) != 1 || infos[0].Slot != certsrc.SlotKeyManagement || infos[0].Label != "KEY MGMT" {
		t.Errorf("Slots() with id=%%03 = %+v", infos)
	}
	s.Close()
	s = openStore(t, "pkcs11:token=alice;object=SIGN?module-path="+p.h.Module, certsrc.Config{})
	if infos := s.Slots(); len(infos) != 1 || infos[0].Label != "SIGN" {
		t.Errorf("Slots() with object=SIGN = %+v", infos)
	}
}

// pkcs1v15Block is EMSA-PKCS1-v1_5 of a SHA-256 digest (RFC 8017 9.2), as
// a PIV client sends it for signing.
func pkcs1v15Block(k int, digest []byte) []byte {
	prefix := []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}
	t := append(prefix, digest...)
	b := make([]byte, k)
	b[1] = 0x01
	for i := 2; i < k-len(t)-1; i++ {
		b[i] = 0xff
	}
	copy(b[k-len(t):], t)
	return b
}

// pssBlock is EMSA-PSS-ENCODE of a SHA-256 digest with a 32-byte salt and
// MGF1-SHA-256 (RFC 8017 9.1.1).
func pssBlock(t *testing.T, modBits int, mHash []byte) []byte {
	emBits := modBits - 1
	emLen := (emBits + 7) / 8
	hLen, sLen := 32, 32
	salt := make([]byte, sLen)
	rand.Read(salt)
	mp := append(append(make([]byte, 8), mHash...), salt...)
	h := sha256.Sum256(mp)
	db := make([]byte, emLen-hLen-1)
	db[len(db)-sLen-1] = 0x01
	copy(db[len(db)-sLen:], salt)
	// MGF1
	var mask []byte
	for c := uint32(0); len(mask) < len(db); c++ {
		d := sha256.New()
		d.Write(h[:])
		d.Write([]byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)})
		mask = d.Sum(mask)
	}
	for i := range db {
		db[i] ^= mask[i]
	}
	db[0] &= 0xff >> (8*emLen - emBits)
	em := append(append(db, h[:]...), 0xbc)
	if len(em) != (modBits+7)/8 {
		t.Fatalf("PSS block of %d bytes for %d bits", len(em), modBits)
	}
	return em
}

func TestRSARaw(t *testing.T) {
	h := harness.NewSoftHSM(t, "rsa")
	h.Setenv(t)
	ids := map[certsrc.Slot]*harness.Identity{
		certsrc.SlotAuthentication: h.AddIdentity(t, harness.IdentitySpec{Alg: harness.RSA2048, ID: []byte{1}, Label: "2048",
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}),
		certsrc.SlotSignature: h.AddIdentity(t, harness.IdentitySpec{Alg: harness.RSA1024, ID: []byte{2}, Label: "1024",
			KeyUsage: x509.KeyUsageContentCommitment}),
		certsrc.SlotCardAuthentication: h.AddIdentity(t, harness.IdentitySpec{Alg: harness.RSA3072, ID: []byte{3}, Label: "3072",
			KeyUsage: x509.KeyUsageDigitalSignature, UnknownEKU: []asn1.ObjectIdentifier{oidPIVCardAuth}}),
		certsrc.SlotKeyManagement: h.AddIdentity(t, harness.IdentitySpec{Alg: harness.RSA2048, ID: []byte{4}, Label: "decrypt",
			KeyUsage: x509.KeyUsageKeyEncipherment}),
	}
	s := openStore(t, h.URI(""), certsrc.Config{})
	login(t, s, h.PIN)
	digest := sha256.Sum256([]byte("message to sign"))
	for slot, id := range ids {
		pub := id.Public().(*rsa.PublicKey)
		k := pub.Size()
		key, err := s.PrivateKey(slot)
		if err != nil {
			t.Fatalf("PrivateKey(%s): %v", slot, err)
		}
		rk := key.(*certsrc.RSAKey)
		sig, err := rk.Raw(pkcs1v15Block(k, digest[:]))
		if err != nil {
			t.Fatalf("%s: Raw(PKCS#1 v1.5 block): %v", slot, err)
		}
		if len(sig) != k {
			t.Errorf("%s: result of %d bytes, want %d", slot, len(sig), k)
		}
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
			t.Errorf("%s (%d bits): PKCS#1 v1.5 signature does not verify: %v", slot, pub.N.BitLen(), err)
		}
		sig, err = rk.Raw(pssBlock(t, pub.N.BitLen(), digest[:]))
		if err != nil {
			t.Fatalf("%s: Raw(PSS block): %v", slot, err)
		}
		if err := rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
			t.Errorf("%s (%d bits): PSS signature does not verify: %v", slot, pub.N.BitLen(), err)
		}
		// Key management: the client sends the ciphertext, the card
		// returns the padded plaintext block.
		msg := []byte("session key 0123456789abcdef")
		//lint:ignore SA1019 the card decrypts PKCS #1 v1.5, which PIV clients send (OpenSC CKM_RSA_PKCS, piv-go): the test needs such a ciphertext
		ct, err := rsa.EncryptPKCS1v15(rand.Reader, pub, msg)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := rk.Raw(ct)
		if err != nil {
			t.Fatalf("%s: Raw(ciphertext): %v", slot, err)
		}
		if pt[0] != 0 || pt[1] != 2 || !bytes.HasSuffix(pt, append([]byte{0}, msg...)) {
			t.Errorf("%s: decrypted block %x does not carry the message", slot, pt)
		}

		// Bad input is refused before the token sees it.
		if _, err := rk.Raw(make([]byte, k-1)); !errors.Is(err, certsrc.ErrBadInput) {
			t.Errorf("%s: short block: %v, want ErrBadInput", slot, err)
		}
		if _, err := rk.Raw(bytes.Repeat([]byte{0xff}, k)); !errors.Is(err, certsrc.ErrBadInput) {
			t.Errorf("%s: block above the modulus: %v, want ErrBadInput", slot, err)
		}
	}
}

func TestECDSAAndECDH(t *testing.T) {
	p := newPIVToken(t)
	s := openStore(t, p.h.URI(""), certsrc.Config{})
	login(t, s, p.h.PIN)
	for _, slot := range []certsrc.Slot{certsrc.SlotSignature, certsrc.SlotCardAuthentication} {
		key, _ := s.PrivateKey(slot)
		ek := key.(*certsrc.ECKey)
		pub := ek.Public().(*ecdsa.PublicKey)
		size := (pub.Curve.Params().BitSize + 7) / 8
		for i := 0; i < 20; i++ { // r or s with a leading zero byte now and then
			digest := make([]byte, size)
			rand.Read(digest)
			sig, err := ek.Sign(rand.Reader, digest, crypto.Hash(0))
			if err != nil {
				t.Fatalf("%s: Sign: %v", slot, err)
			}
			if !ecdsa.VerifyASN1(pub, digest, sig) {
				t.Fatalf("%s (%s): signature does not verify", slot, pub.Curve.Params().Name)
			}
		}
		if _, err := ek.Sign(nil, nil, nil); !errors.Is(err, certsrc.ErrBadInput) {
			t.Errorf("%s: empty digest: %v, want ErrBadInput", slot, err)
		}

		// ECDH against Go's crypto/ecdh.
		mine, err := pub.ECDH()
		if err != nil {
			t.Fatal(err)
		}
		peer, err := mine.Curve().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ek.ECDH(peer.PublicKey())
		if err != nil {
			t.Fatalf("%s: ECDH: %v", slot, err)
		}
		want, err := peer.ECDH(mine)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: ECDH = %x, want %x", slot, got, want)
		}
		other := ecdh.P256()
		if mine.Curve() == ecdh.P256() {
			other = ecdh.P384()
		}
		wrong, _ := other.GenerateKey(rand.Reader)
		if _, err := ek.ECDH(wrong.PublicKey()); !errors.Is(err, certsrc.ErrBadInput) {
			t.Errorf("%s: ECDH with a key on another curve: %v, want ErrBadInput", slot, err)
		}
	}
}

func TestNotLoggedIn(t *testing.T) {
	p := newPIVToken(t)
	s := openStore(t, p.h.URI(""), certsrc.Config{})
	key, _ := s.PrivateKey(certsrc.SlotSignature)
	digest := sha256.Sum256(nil)
	if _, err := key.Sign(nil, digest[:], nil); !errors.Is(err, certsrc.ErrNotLoggedIn) {
		t.Errorf("Sign before Login: %v, want ErrNotLoggedIn", err)
	}
	login(t, s, p.h.PIN)
	if _, err := key.Sign(nil, digest[:], nil); err != nil {
		t.Errorf("Sign after Login: %v", err)
	}
	if err := s.Logout(); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	if _, err := key.Sign(nil, digest[:], nil); !errors.Is(err, certsrc.ErrNotLoggedIn) {
		t.Errorf("Sign after Logout: %v, want ErrNotLoggedIn", err)
	}
	if st, err := s.PINStatus(); err != nil || st.LoggedIn {
		t.Errorf("PINStatus after Logout = %+v, %v", st, err)
	}
	if err := s.Logout(); err != nil {
		t.Errorf("second Logout: %v", err)
	}
}

func TestWrongPIN(t *testing.T) {
	h := harness.NewSoftHSM(t, "pin")
	h.Setenv(t)
	h.AddIdentity(t, harness.IdentitySpec{Alg: harness.P256, ID: []byte{1}, Label: "k", KeyUsage: x509.KeyUsageDigitalSignature})
	s := openStore(t, h.URI(""), certsrc.Config{})

	st, err := s.PINStatus()
	if err != nil || st != (certsrc.PINStatus{Retries: certsrc.DefaultPINRetries}) {
		t.Fatalf("PINStatus = %+v, %v; want %d retries, not logged in", st, err, certsrc.DefaultPINRetries)
	}
	const wrong = "987654"
	// softhsm2 never locks a PIN: the count floors at 1 (see the package
	// documentation) and the token stays usable.
	for i, want := range []int{2, 1, 1, 1} {
		err := s.Login([]byte(wrong))
		var pe *certsrc.PINError
		if !errors.As(err, &pe) || pe.Retries != want {
			t.Fatalf("wrong PIN #%d: %v; want a *certsrc.PINError with %d retries", i+1, err, want)
		}
		var ce pkcs11.Error
		if !errors.As(err, &ce) || ce != pkcs11.CKR_PIN_INCORRECT {
			t.Errorf("wrong PIN #%d: %v does not carry CKR_PIN_INCORRECT", i+1, err)
		}
		if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), h.PIN) {
			t.Fatalf("the error repeats a PIN: %v", err)
		}
		if st, err := s.PINStatus(); err != nil || st.Retries != want || st.LoggedIn || st.Blocked {
			t.Errorf("PINStatus after wrong PIN #%d = %+v, %v", i+1, st, err)
		}
	}
	login(t, s, h.PIN)
	if st, err := s.PINStatus(); err != nil || st != (certsrc.PINStatus{LoggedIn: true, Retries: certsrc.DefaultPINRetries}) {
		t.Errorf("PINStatus after the right PIN = %+v, %v", st, err)
	}
	// A wrong PIN while logged in logs out (as VERIFY does on a card).
	if err := s.Login([]byte(wrong)); err == nil {
		t.Fatal("wrong PIN while logged in was accepted")
	}
	if st, _ := s.PINStatus(); st.LoggedIn || st.Retries != 2 {
		t.Errorf("PINStatus after a wrong PIN while logged in = %+v", st)
	}
	if err := s.Login(nil); !errors.Is(err, certsrc.ErrBadInput) {
		t.Errorf("empty PIN: %v, want ErrBadInput", err)
	}
	s.Close()

	// The token remembers that a wrong PIN was tried
	// (CKF_USER_PIN_COUNT_LOW): a new Store starts one below nominal.
	s = openStore(t, h.URI(""), certsrc.Config{PINRetries: 10})
	if st, err := s.PINStatus(); err != nil || st.Retries != 9 {
		t.Errorf("fresh Store after a failure: PINStatus = %+v, %v; want 9 retries", st, err)
	}
	login(t, s, h.PIN)
	if st, _ := s.PINStatus(); st.Retries != 10 {
		t.Errorf("after the right PIN: %+v, want 10 retries", st)
	}
	s.Close()

	s = openStore(t, h.URI(""), certsrc.Config{PINRetries: -1})
	var pe *certsrc.PINError
	if err := s.Login([]byte(wrong)); !errors.As(err, &pe) || pe.Retries != -1 {
		t.Errorf("wrong PIN with an unknown count: %v, want retries -1", err)
	}
}

// Two Stores on one token in one process share the module and its login
// state, which PKCS#11 keeps per application: the second Login meets
// CKR_USER_ALREADY_LOGGED_IN and must still check its PIN.
func TestAlreadyLoggedIn(t *testing.T) {
	p := newPIVToken(t)
	a := openStore(t, p.h.URI(""), certsrc.Config{})
	b := openStore(t, p.h.URI(""), certsrc.Config{})
	login(t, a, p.h.PIN)
	if st, err := b.PINStatus(); err != nil || !st.LoggedIn {
		t.Errorf("the other Store's PINStatus = %+v, %v; PKCS#11 login is per application", st, err)
	}
	var pe *certsrc.PINError
	if err := b.Login([]byte("000000")); !errors.As(err, &pe) {
		t.Fatalf("wrong PIN while the application is logged in: %v, want a PINError", err)
	}
	login(t, b, p.h.PIN)
	key, _ := b.PrivateKey(certsrc.SlotSignature)
	digest := sha256.Sum256(nil)
	if _, err := key.Sign(nil, digest[:], nil); err != nil {
		t.Errorf("Sign after a re-login: %v", err)
	}
	// a's key handles died with b's logout; a finds them again.
	key, _ = a.PrivateKey(certsrc.SlotSignature)
	if _, err := key.Sign(nil, digest[:], nil); err != nil {
		t.Errorf("Sign on the first Store after the second re-logged in: %v", err)
	}
}

func TestTokenDeleted(t *testing.T) {
	p := newPIVToken(t)
	s := openStore(t, p.h.URI(""), certsrc.Config{})
	login(t, s, p.h.PIN)
	key, _ := s.PrivateKey(certsrc.SlotAuthentication)
	rk := key.(*certsrc.RSAKey)
	block := pkcs1v15Block(256, make([]byte, 32))
	if _, err := rk.Raw(block); err != nil {
		t.Fatalf("Raw: %v", err)
	}
	// Pull the token: delete its directory under the open session.
	if err := os.RemoveAll(p.h.TokenPath("")); err != nil {
		t.Fatal(err)
	}
	_, err := rk.Raw(block)
	if !errors.Is(err, certsrc.ErrTokenRemoved) {
		t.Fatalf("Raw after the token was deleted: %v, want ErrTokenRemoved", err)
	}
	var ce pkcs11.Error
	if !errors.As(err, &ce) {
		t.Errorf("the error does not carry the CKR code: %v", err)
	}
	t.Logf("softhsm2 with its token directory deleted: %v", err)
	for name, f := range map[string]func() error{
		"Raw":       func() error { _, err := rk.Raw(block); return err },
		"Login":     func() error { return s.Login([]byte(p.h.PIN)) },
		"PINStatus": func() error { _, err := s.PINStatus(); return err },
	} {
		if err := f(); !errors.Is(err, certsrc.ErrTokenRemoved) {
			t.Errorf("%s without the token: %v, want ErrTokenRemoved", name, err)
		}
	}
	if err := s.Logout(); err != nil {
		t.Errorf("Logout without the token: %v", err)
	}
	if _, err := s.Certificate(certsrc.SlotAuthentication); err != nil {
		t.Errorf("Certificate (read at Open) without the token: %v", err)
	}
}

func TestTokenComesBack(t *testing.T) {
	p := newPIVToken(t)
	s := openStore(t, p.h.URI(""), certsrc.Config{})
	token := s.Token()
	login(t, s, p.h.PIN)
	key, _ := s.PrivateKey(certsrc.SlotSignature)
	ek := key.(*certsrc.ECKey)
	digest := sha256.Sum256([]byte("back"))
	if _, err := ek.Sign(nil, digest[:], nil); err != nil {
		t.Fatal(err)
	}
	p.h.RemoveToken(t, "")
	if _, err := ek.Sign(nil, digest[:], nil); !errors.Is(err, certsrc.ErrTokenRemoved) {
		t.Fatalf("Sign with the token gone: %v, want ErrTokenRemoved", err)
	}
	if _, err := s.PINStatus(); !errors.Is(err, certsrc.ErrTokenRemoved) {
		t.Fatalf("PINStatus with the token still gone: %v, want ErrTokenRemoved", err)
	}
	p.h.RestoreToken(t, "")
	st, err := s.PINStatus()
	if err != nil {
		t.Fatalf("PINStatus once the token is back: %v", err)
	}
	if st.LoggedIn {
		t.Errorf("still logged in on a new session: %+v", st)
	}
	if _, err := ek.Sign(nil, digest[:], nil); !errors.Is(err, certsrc.ErrNotLoggedIn) {
		t.Errorf("Sign on the new session before Login: %v, want ErrNotLoggedIn", err)
	}
	login(t, s, p.h.PIN)
	sig, err := ek.Sign(nil, digest[:], nil)
	if err != nil || !ecdsa.VerifyASN1(p.sign.Public().(*ecdsa.PublicKey), digest[:], sig) {
		t.Errorf("Sign once the token is back: %v", err)
	}
	if s.Token() != token {
		t.Errorf("Token() changed from %v to %v", token, s.Token())
	}
}

func TestToken(t *testing.T) {
	p := newPIVToken(t)
	p.h.InitToken(t, "bob")
	a := openStore(t, p.h.URI(""), certsrc.Config{})
	a2 := openStore(t, p.h.URI(""), certsrc.Config{})
	b := openStore(t, p.h.URI("bob"), certsrc.Config{})
	if a.Token().Serial == "" || a.Token() != a2.Token() {
		t.Errorf("Token() of one token differs between Stores: %v, %v", a.Token(), a2.Token())
	}
	if a.Token() == b.Token() || b.Token().Label != "bob" {
		t.Errorf("two tokens: %v and %v", a.Token(), b.Token())
	}
	if len(b.Slots()) != 0 {
		t.Errorf("empty token: Slots() = %+v", b.Slots())
	}
}

func TestOpenErrors(t *testing.T) {
	p := newPIVToken(t)
	p.h.InitToken(t, "bob")
	mod := p.h.Module
	tests := []struct {
		uri  string
		want error
	}{
		{"pkcs11:token=alice", certsrc.ErrNoModule},
		{"pkcs11:token=alice?module-path=/nonexistent/lib.so", certsrc.ErrNoModule},
		{"pkcs11:token=alice?module-path=" + p.h.Conf, certsrc.ErrNoModule}, // not a shared library
		{"pkcs11:token=alice?module-name=no-such-module", certsrc.ErrNoModule},
		{"pkcs11:token=carol?module-path=" + mod, certsrc.ErrTokenNotFound},
		{"pkcs11:token=alice;serial=0000?module-path=" + mod, certsrc.ErrTokenNotFound},
		{"pkcs11:token=alice;x-vendor=1?module-path=" + mod, certsrc.ErrTokenNotFound},
		{"pkcs11:token=alice;library-manufacturer=Nobody?module-path=" + mod, certsrc.ErrTokenNotFound},
		{"pkcs11:?module-path=" + mod, certsrc.ErrAmbiguousToken},
		{"pkcs11:manufacturer=SoftHSM%20project?module-path=" + mod, certsrc.ErrAmbiguousToken},
	}
	for _, tt := range tests {
		u, err := certsrc.ParseURI(tt.uri)
		if err != nil {
			t.Fatalf("ParseURI(%q): %v", tt.uri, err)
		}
		s, err := certsrc.Open(context.Background(), u, certsrc.Config{})
		if !errors.Is(err, tt.want) {
			t.Errorf("Open(%q) = %v; want an error wrapping %v", tt.uri, err, tt.want)
		}
		if s != nil {
			s.Close()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	u, _ := certsrc.ParseURI(p.h.URI(""))
	if _, err := certsrc.Open(ctx, u, certsrc.Config{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Open with a cancelled context: %v", err)
	}
	// Every failed Open released the module: a working one still opens.
	openStore(t, p.h.URI(""), certsrc.Config{})
}

func TestOpenByModuleName(t *testing.T) {
	p := newPIVToken(t)
	u, _ := certsrc.ParseURI("pkcs11:token=alice?module-name=SoftHSM2")
	f, err := u.ModuleFile()
	if err != nil {
		harness.Missing(t, "p11-kit's softhsm2.module", err)
	}
	t.Logf("module-name=SoftHSM2 -> %s", f)
	s := openStore(t, u.String(), certsrc.Config{})
	if len(s.Slots()) != 4 {
		t.Errorf("Slots() = %+v", s.Slots())
	}
	// Loaded through another path, the same file is the same module.
	s2 := openStore(t, p.h.URI(""), certsrc.Config{})
	if s.Token() != s2.Token() {
		t.Errorf("two paths to one module see different tokens")
	}
}

func TestClose(t *testing.T) {
	p := newPIVToken(t)
	s := openStore(t, p.h.URI(""), certsrc.Config{})
	login(t, s, p.h.PIN)
	key, _ := s.PrivateKey(certsrc.SlotSignature)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	digest := sha256.Sum256(nil)
	if _, err := key.Sign(nil, digest[:], nil); !errors.Is(err, certsrc.ErrClosed) {
		t.Errorf("Sign after Close: %v, want ErrClosed", err)
	}
	if err := s.Login([]byte(p.h.PIN)); !errors.Is(err, certsrc.ErrClosed) {
		t.Errorf("Login after Close: %v, want ErrClosed", err)
	}
	// The module was finalised and unloaded; it loads again.
	s = openStore(t, p.h.URI(""), certsrc.Config{})
	login(t, s, p.h.PIN)
}

func TestConcurrentUse(t *testing.T) {
	p := newPIVToken(t)
	s := openStore(t, p.h.URI(""), certsrc.Config{})
	login(t, s, p.h.PIN)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for _, slot := range []certsrc.Slot{certsrc.SlotAuthentication, certsrc.SlotSignature, certsrc.SlotKeyManagement, certsrc.SlotCardAuthentication} {
		key, _ := s.PrivateKey(slot)
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 10; i++ {
					var err error
					switch k := key.(type) {
					case *certsrc.RSAKey:
						_, err = k.Raw(pkcs1v15Block(256, make([]byte, 32)))
					case *certsrc.ECKey:
						d := sha256.Sum256(nil)
						_, err = k.Sign(nil, d[:], nil)
					}
					if err != nil {
						errs <- err
						return
					}
					if i == 5 {
						s.PINStatus()
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestChangePIN(t *testing.T) {
	h := harness.NewSoftHSM(t, "change")
	h.Setenv(t)
	h.AddIdentity(t, harness.IdentitySpec{Alg: harness.P256, ID: []byte{1}, Label: "k", KeyUsage: x509.KeyUsageDigitalSignature})
	s := openStore(t, h.URI(""), certsrc.Config{})
	var pe *certsrc.PINError
	if err := s.ChangePIN([]byte("000000"), []byte("24681357")); !errors.As(err, &pe) || pe.Retries != 2 {
		t.Fatalf("ChangePIN with a wrong old PIN: %v, want a PINError with 2 tries left", err)
	}
	if err := s.ChangePIN([]byte(h.PIN), []byte("12")); !errors.Is(err, certsrc.ErrPINFormat) {
		t.Errorf("ChangePIN to a 2-digit PIN: %v, want ErrPINFormat", err)
	}
	if err := s.ChangePIN([]byte(h.PIN), []byte("24681357")); err != nil {
		t.Fatalf("ChangePIN: %v", err)
	}
	if st, _ := s.PINStatus(); st.Retries != certsrc.DefaultPINRetries {
		t.Errorf("after a verified change, PINStatus = %+v", st)
	}
	if err := s.Login([]byte(h.PIN)); !errors.As(err, &pe) {
		t.Errorf("Login with the old PIN: %v, want a PINError", err)
	}
	login(t, s, "24681357")
}
