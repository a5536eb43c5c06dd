//go:build cgo

package tokenstore_test

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
	"testing"

	"github.com/vscardkit/vscardkit/certsrc"
	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/piv"
	"github.com/vscardkit/vscardkit/internal/tokenstore"
)

var (
	oidPIVCardAuth    = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 6, 8}
	oidSmartcardLogon = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 2}
)

// pivToken is a softhsm2 token laid out like a PIV card: one identity per
// slot.
type pivToken struct {
	h                         *harness.SoftHSM
	auth, sign, keyMgmt, card *harness.Identity
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
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment})
	p.keyMgmt = h.AddIdentity(t, harness.IdentitySpec{Alg: harness.RSA2048, ID: []byte{0x03}, Label: "KEY MGMT",
		KeyUsage: x509.KeyUsageKeyEncipherment})
	p.card = h.AddIdentity(t, harness.IdentitySpec{Alg: harness.P384, ID: []byte{0x04}, Label: "CARD AUTH",
		KeyUsage: x509.KeyUsageDigitalSignature, UnknownEKU: []asn1.ObjectIdentifier{oidPIVCardAuth}})
	return p
}

func openStore(t *testing.T, uri string, cfg certsrc.Config) *certsrc.Store {
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

// transmit sends cmd to the applet, following 61xx with GET RESPONSE, and
// returns the data and the status word.
func transmit(t *testing.T, a *piv.Applet, cmd []byte) ([]byte, uint16) {
	t.Helper()
	var data []byte
	for {
		r, err := a.Transmit(context.Background(), cmd)
		if err != nil || len(r) < 2 {
			t.Fatalf("Transmit(% X): %x, %v", cmd[:4], r, err)
		}
		data = append(data, r[:len(r)-2]...)
		sw1, sw2 := r[len(r)-2], r[len(r)-1]
		if sw1 != 0x61 {
			return data, uint16(sw1)<<8 | uint16(sw2)
		}
		cmd = []byte{0x00, 0xC0, 0x00, 0x00, sw2}
	}
}

// tlv encodes one BER-TLV with a short or long length.
func tlv(tag byte, v []byte) []byte {
	switch n := len(v); {
	case n < 0x80:
		return append([]byte{tag, byte(n)}, v...)
	case n < 0x100:
		return append([]byte{tag, 0x81, byte(n)}, v...)
	default:
		return append([]byte{tag, 0x82, byte(n >> 8), byte(n)}, v...)
	}
}

// untlv returns the value of the first TLV in b with tag (one-byte tags).
func untlv(b []byte, tag byte) []byte {
	for len(b) >= 2 {
		tg, n, hdr := b[0], int(b[1]), 2
		switch b[1] {
		case 0x81:
			n, hdr = int(b[2]), 3
		case 0x82:
			n, hdr = int(b[2])<<8|int(b[3]), 4
		}
		if hdr+n > len(b) {
			return nil
		}
		if tg == tag {
			return b[hdr : hdr+n]
		}
		b = b[hdr+n:]
	}
	return nil
}

var aid = []byte{0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00}

func selectPIV(t *testing.T, a *piv.Applet) {
	t.Helper()
	if _, sw := transmit(t, a, append(append([]byte{0x00, 0xA4, 0x04, 0x00, byte(len(aid))}, aid...), 0x00)); sw != 0x9000 {
		t.Fatalf("SELECT: %04X", sw)
	}
}

// pinBlock is a PIN padded with FF to 8 bytes.
func pinBlock(s string) []byte {
	b := bytes.Repeat([]byte{0xFF}, 8)
	copy(b, s)
	return b
}

func verify(pin string) []byte { return append([]byte{0x00, 0x20, 0x00, 0x80, 0x08}, pinBlock(pin)...) }

// generalAuthenticate sends GENERAL AUTHENTICATE with input under tag,
// as a CLA 10 chain of 255-byte pieces when it is longer (as OpenSC and
// piv-go do), and returns the response's 82 and the status word.
func generalAuthenticate(t *testing.T, a *piv.Applet, alg, slot byte, tag byte, input []byte) ([]byte, uint16) {
	t.Helper()
	body := tlv(0x7C, append([]byte{0x82, 0x00}, tlv(tag, input)...))
	for len(body) > 255 {
		if _, sw := transmit(t, a, append([]byte{0x10, 0x87, alg, slot, 0xFF}, body[:255]...)); sw != 0x9000 {
			return nil, sw
		}
		body = body[255:]
	}
	resp, sw := transmit(t, a, append(append([]byte{0x00, 0x87, alg, slot, byte(len(body))}, body...), 0x00))
	return untlv(untlv(resp, 0x7C), 0x82), sw
}

// The PIV applet over a token: what a guest's PIV middleware would do,
// APDU by APDU, with the status words the applet has always answered.
func TestAppletOverStore(t *testing.T) {
	p := newPIVToken(t)
	s := openStore(t, p.h.URI(""), certsrc.Config{})
	a := piv.New(tokenstore.New(s), piv.Options{})
	selectPIV(t, a)

	// GET DATA of the Digital Signature certificate (5FC10A).
	resp, sw := transmit(t, a, []byte{0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x0A, 0x00})
	if sw != 0x9000 || !bytes.Equal(untlv(untlv(resp, 0x53), 0x70), p.sign.Cert.Raw) {
		t.Fatalf("GET DATA 5FC10A: %04X, %d bytes; want the 9C certificate", sw, len(resp))
	}

	// A wrong PIN: certsrc's PINError is the applet's 63Cx.
	if _, sw := transmit(t, a, verify("999999")); sw != 0x63C2 {
		t.Errorf("VERIFY with a wrong PIN: %04X, want 63C2 (2 tries left)", sw)
	}
	if _, sw := transmit(t, a, []byte{0x00, 0x20, 0x00, 0x80}); sw != 0x63C2 {
		t.Errorf("VERIFY status: %04X, want 63C2", sw)
	}
	if _, sw := transmit(t, a, verify(p.h.PIN)); sw != 0x9000 {
		t.Fatalf("VERIFY: %04X", sw)
	}

	// GENERAL AUTHENTICATE: ECDSA P-256 (algorithm 11) with 9C.
	digest := sha256.Sum256([]byte("signed through the applet"))
	sig, sw := generalAuthenticate(t, a, 0x11, 0x9C, 0x81, digest[:])
	if sw != 0x9000 || !ecdsa.VerifyASN1(p.sign.Public().(*ecdsa.PublicKey), digest[:], sig) {
		t.Fatalf("GENERAL AUTHENTICATE 9C: %04X, signature %x does not verify", sw, sig)
	}

	// RSA 2048 (algorithm 07) with 9A: the client's PKCS #1 v1.5 block,
	// raised to d in the token.
	pub := p.auth.Public().(*rsa.PublicKey)
	info := append([]byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}, digest[:]...)
	block := append(append([]byte{0, 1}, bytes.Repeat([]byte{0xff}, pub.Size()-3-len(info))...), 0)
	block = append(block, info...)
	if sig, sw := generalAuthenticate(t, a, 0x07, 0x9A, 0x81, block); sw != 0x9000 || rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) != nil {
		t.Errorf("GENERAL AUTHENTICATE 9A: %04X, the RSA signature does not verify", sw)
	}

	// Key management with 9D: the ciphertext in, the padded block out.
	kpub := p.keyMgmt.Public().(*rsa.PublicKey)
	msg := []byte("a wrapped session key")
	//lint:ignore SA1019 the card decrypts PKCS #1 v1.5, which PIV clients send (OpenSC CKM_RSA_PKCS, piv-go): the test needs such a ciphertext
	ct, err := rsa.EncryptPKCS1v15(rand.Reader, kpub, msg)
	if err != nil {
		t.Fatal(err)
	}
	if pt, sw := generalAuthenticate(t, a, 0x07, 0x9D, 0x81, ct); sw != 0x9000 || pt[1] != 2 || !bytes.HasSuffix(pt, append([]byte{0}, msg...)) {
		t.Errorf("GENERAL AUTHENTICATE 9D decryption: %04X, %x", sw, pt)
	}

	// Card Authentication needs no PIN on a PIV card; here the key is a
	// private PKCS#11 object, so once the PIN is reset the token refuses:
	// certsrc's ErrNotLoggedIn is the applet's 6982.
	a.Reset()
	selectPIV(t, a)
	if err := s.Logout(); err != nil {
		t.Fatal(err)
	}
	if _, sw := generalAuthenticate(t, a, 0x14, 0x9E, 0x81, make([]byte, 48)); sw != 0x6982 {
		t.Errorf("GENERAL AUTHENTICATE 9E without login: %04X, want 6982", sw)
	}

	// Key agreement on the applet path, with the P-384 9E key (its token
	// object has CKA_DERIVE), after VERIFY.
	if _, sw := transmit(t, a, verify(p.h.PIN)); sw != 0x9000 {
		t.Fatalf("VERIFY: %04X", sw)
	}
	peer, _ := ecdh.P384().GenerateKey(rand.Reader)
	got, sw := generalAuthenticate(t, a, 0x14, 0x9E, 0x85, peer.PublicKey().Bytes())
	mine, _ := p.card.Public().(*ecdsa.PublicKey).ECDH()
	want, _ := peer.ECDH(mine)
	if sw != 0x9000 || !bytes.Equal(got, want) {
		t.Errorf("GENERAL AUTHENTICATE 9E key agreement: %04X, %x; want %x", sw, got, want)
	}

	// CHANGE REFERENCE DATA: a new PIN the token refuses (certsrc's
	// ErrPINFormat) is 6A80; a wrong old PIN 63Cx; then a real change.
	change := func(old, new string) uint16 {
		_, sw := transmit(t, a, append([]byte{0x00, 0x24, 0x00, 0x80, 0x10}, append(pinBlock(old), pinBlock(new)...)...))
		return sw
	}
	if sw := change(p.h.PIN, "12"); sw != 0x6A80 {
		t.Errorf("CHANGE REFERENCE DATA to a 2-digit PIN: %04X, want 6A80", sw)
	}
	if sw := change("000000", "24681357"); sw != 0x63C2 {
		t.Errorf("CHANGE REFERENCE DATA with a wrong old PIN: %04X, want 63C2", sw)
	}
	if sw := change(p.h.PIN, "24681357"); sw != 0x9000 {
		t.Errorf("CHANGE REFERENCE DATA: %04X", sw)
	}
	if _, sw := transmit(t, a, verify("24681357")); sw != 0x9000 {
		t.Errorf("VERIFY with the new PIN: %04X", sw)
	}
}

// An empty slot: certsrc's ErrNotFound is the applet's ErrNotFound, 6A82
// for the certificate and 6A88 for the key.
func TestAppletEmptySlot(t *testing.T) {
	p := newPIVToken(t)
	s := openStore(t, p.h.URI(""), certsrc.Config{Slots: map[certsrc.Slot]certsrc.Selector{certsrc.SlotCardAuthentication: {None: true}}})
	ts := tokenstore.New(s)
	if _, err := ts.Certificate(piv.SlotCardAuthentication); !errors.Is(err, piv.ErrNotFound) || !errors.Is(err, certsrc.ErrNotFound) {
		t.Errorf("Certificate of an empty slot: %v, want piv's and certsrc's ErrNotFound", err)
	}
	if _, err := ts.PrivateKey(piv.SlotCardAuthentication); !errors.Is(err, piv.ErrNotFound) {
		t.Errorf("PrivateKey of an empty slot: %v, want piv.ErrNotFound", err)
	}
	a := piv.New(ts, piv.Options{})
	selectPIV(t, a)
	if _, sw := transmit(t, a, []byte{0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x01, 0x00}); sw != 0x6A82 {
		t.Errorf("GET DATA of the empty 9E certificate: %04X, want 6A82", sw)
	}
	if _, sw := generalAuthenticate(t, a, 0x14, 0x9E, 0x81, make([]byte, 48)); sw != 0x6A88 {
		t.Errorf("GENERAL AUTHENTICATE with the empty 9E: %04X, want 6A88", sw)
	}
}

func TestSerial(t *testing.T) {
	p := newPIVToken(t)
	p.h.InitToken(t, "bob")
	a := tokenstore.New(openStore(t, p.h.URI(""), certsrc.Config{}))
	a2 := tokenstore.New(openStore(t, p.h.URI(""), certsrc.Config{}))
	bs := openStore(t, p.h.URI("bob"), certsrc.Config{})
	b := tokenstore.New(bs)
	if len(a.Serial()) == 0 || !bytes.Equal(a.Serial(), a2.Serial()) {
		t.Errorf("Serial of one token differs between Stores: %x %x", a.Serial(), a2.Serial())
	}
	if bytes.Equal(a.Serial(), b.Serial()) {
		t.Errorf("two tokens share a Serial: %x", a.Serial())
	}
	// The layout the CHUID's GUID has always been derived from.
	ti := bs.Token()
	var want []byte
	for _, f := range []string{ti.Manufacturer, ti.Model, ti.Serial, ti.Label} {
		want = append(append(want, byte(len(f))), f...)
	}
	if !bytes.Equal(b.Serial(), want) {
		t.Errorf("Serial = %q, want %q", b.Serial(), want)
	}
	if _, err := b.PrivateKey(piv.SlotAuthentication); !errors.Is(err, piv.ErrNotFound) {
		t.Errorf("a token without certificates: PrivateKey(9A): %v, want piv.ErrNotFound", err)
	}
}
