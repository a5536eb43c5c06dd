package certsrc_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"github.com/vscardkit/vscardkit/certsrc"
	"github.com/vscardkit/vscardkit/internal/piv"
)

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

// The PIV applet over a Store on softhsm2: what a guest's PIV middleware
// would do, APDU by APDU.
func TestAppletOverStore(t *testing.T) {
	p := newPIVToken(t)
	s := openStore(t, p.h.URI(""), certsrc.Config{})
	a := piv.New(s, piv.Options{})
	aid := []byte{0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00}
	if _, sw := transmit(t, a, append(append([]byte{0x00, 0xA4, 0x04, 0x00, byte(len(aid))}, aid...), 0x00)); sw != 0x9000 {
		t.Fatalf("SELECT: %04X", sw)
	}

	// GET DATA of the Digital Signature certificate (5FC10A).
	resp, sw := transmit(t, a, []byte{0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x0A, 0x00})
	if sw != 0x9000 || !bytes.Equal(untlv(untlv(resp, 0x53), 0x70), p.sign.Cert.Raw) {
		t.Fatalf("GET DATA 5FC10A: %04X, %d bytes; want the 9C certificate", sw, len(resp))
	}

	pin := func(s string) []byte {
		b := bytes.Repeat([]byte{0xFF}, 8)
		copy(b, s)
		return append([]byte{0x00, 0x20, 0x00, 0x80, 0x08}, b...)
	}
	if _, sw := transmit(t, a, pin("999999")); sw != 0x63C2 {
		t.Errorf("VERIFY with a wrong PIN: %04X, want 63C2 (2 tries left)", sw)
	}
	if _, sw := transmit(t, a, pin(p.h.PIN)); sw != 0x9000 {
		t.Fatalf("VERIFY: %04X", sw)
	}

	// GENERAL AUTHENTICATE: ECDSA P-256 (algorithm 11) with 9C.
	digest := sha256.Sum256([]byte("signed through the applet"))
	body := tlv(0x7C, append([]byte{0x82, 0x00}, tlv(0x81, digest[:])...))
	resp, sw = transmit(t, a, append(append([]byte{0x00, 0x87, 0x11, 0x9C, byte(len(body))}, body...), 0x00))
	sig := untlv(untlv(resp, 0x7C), 0x82)
	if sw != 0x9000 || !ecdsa.VerifyASN1(p.sign.Public().(*ecdsa.PublicKey), digest[:], sig) {
		t.Fatalf("GENERAL AUTHENTICATE 9C: %04X, signature %x does not verify", sw, sig)
	}

	// Card Authentication needs no PIN on a PIV card; here the key is a
	// private PKCS#11 object, so once the PIN is reset the token refuses,
	// and the applet says 6982.
	a.Reset()
	transmit(t, a, append(append([]byte{0x00, 0xA4, 0x04, 0x00, byte(len(aid))}, aid...), 0x00))
	if err := s.Logout(); err != nil {
		t.Fatal(err)
	}
	d384 := make([]byte, 48)
	body = tlv(0x7C, append([]byte{0x82, 0x00}, tlv(0x81, d384)...))
	if _, sw := transmit(t, a, append(append([]byte{0x00, 0x87, 0x14, 0x9E, byte(len(body))}, body...), 0x00)); sw != 0x6982 {
		t.Errorf("GENERAL AUTHENTICATE 9E without login: %04X, want 6982", sw)
	}

	// Key agreement on the applet path, with the P-384 9E key (its token
	// object has CKA_DERIVE), after VERIFY.
	if _, sw := transmit(t, a, pin(p.h.PIN)); sw != 0x9000 {
		t.Fatalf("VERIFY: %04X", sw)
	}
	peer, _ := ecdh.P384().GenerateKey(rand.Reader)
	body = tlv(0x7C, append([]byte{0x82, 0x00}, tlv(0x85, peer.PublicKey().Bytes())...))
	resp, sw = transmit(t, a, append(append([]byte{0x00, 0x87, 0x14, 0x9E, byte(len(body))}, body...), 0x00))
	mine, _ := p.card.Public().(*ecdsa.PublicKey).ECDH()
	want, _ := peer.ECDH(mine)
	if got := untlv(untlv(resp, 0x7C), 0x82); sw != 0x9000 || !bytes.Equal(got, want) {
		t.Errorf("GENERAL AUTHENTICATE 9E key agreement: %04X, %x; want %x", sw, got, want)
	}
}
