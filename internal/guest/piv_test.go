package guest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/apdu"
)

// miniPIV is a test-only PIV card with one key, in slot 9A: just enough of
// NIST SP 800-73-4 for OpenSC's PIV driver to list the certificate and key,
// log in and sign, so that the guest's piv scenario can be checked before
// the project's own PIV applet exists. It is not that applet.
type miniPIV struct {
	key  crypto.Signer
	cert []byte
	pin  []byte

	mu       sync.Mutex
	verified bool
	tries    int
	chain    []byte // command data of an unfinished chain
	split    apdu.Splitter
	signed   [][]byte // the challenges signed
}

func newMiniPIV(t testing.TB, key crypto.Signer, pin string) *miniPIV {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "vscardkit guest test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return &miniPIV{key: key, cert: der, pin: []byte(pin), tries: 3}
}

var pivAID = []byte{0xa0, 0x00, 0x00, 0x03, 0x08}

// answer is the card's APDU handler (the responder's answer function).
func (c *miniPIV) answer(raw []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	cmd, err := apdu.Parse(raw)
	if err != nil {
		return apdu.SWWrongLength.Bytes()
	}
	if apdu.IsGetResponse(cmd) {
		r, _ := c.split.Next(cmd)
		return r
	}
	c.split.Reset()
	if cmd.CLA&0x10 != 0 { // command chaining: collect, answer 9000
		c.chain = append(c.chain, cmd.Data...)
		return apdu.SWOK.Bytes()
	}
	if c.chain != nil {
		cmd.Data = append(c.chain, cmd.Data...)
		c.chain = nil
	}
	data, sw := c.handle(cmd)
	return c.split.Start(data, sw)
}

func (c *miniPIV) handle(cmd apdu.Command) ([]byte, apdu.SW) {
	switch cmd.INS {
	case 0xa4: // SELECT
		if cmd.P1 == 0x04 && len(cmd.Data) >= len(pivAID) && bytes.HasPrefix(cmd.Data, pivAID) {
			// Selecting the PIV application while it is selected keeps the
			// PIN verified (SP 800-73-4 part 2, 3.1.1): OpenSC re-selects
			// it at the start of each transaction when the card has no
			// discovery object, and would otherwise lose its login.
			// Application property template: the AID's PIX and the
			// coexistent tag allocation authority.
			return tlv(0x61, append(tlv(0x4f, []byte{0x00, 0x00, 0x10, 0x00, 0x01, 0x00}),
				tlv(0x79, tlv(0x4f, pivAID))...)), apdu.SWOK
		}
		return nil, apdu.SWFileNotFound
	case 0xcb: // GET DATA
		if bytes.Equal(cmd.Data, []byte{0x5c, 0x03, 0x5f, 0xc1, 0x05}) { // X.509 certificate for 9A
			body := append(tlv(0x70, c.cert), tlv(0x71, []byte{0})...)
			body = append(body, tlv(0xfe, nil)...)
			return tlv(0x53, body), apdu.SWOK
		}
		return nil, apdu.SWFileNotFound
	case 0x20: // VERIFY
		if cmd.P2 != 0x80 {
			return nil, apdu.SWReferencedDataNotFound
		}
		if len(cmd.Data) == 0 {
			if c.verified {
				return nil, apdu.SWOK
			}
			return nil, apdu.SWWarningCounter | apdu.SW(c.tries)
		}
		if c.tries == 0 {
			return nil, apdu.SWAuthMethodBlocked
		}
		if bytes.Equal(bytes.TrimRight(cmd.Data, "\xff"), c.pin) {
			c.verified, c.tries = true, 3
			return nil, apdu.SWOK
		}
		c.tries--
		return nil, apdu.SWWarningCounter | apdu.SW(c.tries)
	case 0x87: // GENERAL AUTHENTICATE
		if cmd.P2 != 0x9a {
			return nil, apdu.SWReferencedDataNotFound
		}
		if !c.verified {
			return nil, apdu.SWSecurityNotSatisfied
		}
		outer, ok := parseTLV(cmd.Data)[0x7c]
		if !ok {
			return nil, apdu.SWIncorrectData
		}
		challenge, ok := parseTLV(outer)[0x81]
		if !ok {
			return nil, apdu.SWIncorrectData
		}
		sig, err := c.sign(challenge)
		if err != nil {
			return nil, apdu.SWIncorrectData
		}
		c.signed = append(c.signed, challenge)
		return tlv(0x7c, tlv(0x82, sig)), apdu.SWOK
	}
	return nil, apdu.SWINSNotSupported
}

// sign is the card's private key operation: raw RSA on the padded block the
// host sent, or ECDSA over the hash the host sent.
func (c *miniPIV) sign(in []byte) ([]byte, error) {
	switch k := c.key.(type) {
	case *rsa.PrivateKey:
		m := new(big.Int).SetBytes(in)
		if m.Cmp(k.N) >= 0 {
			return nil, errors.New("input too large")
		}
		s := new(big.Int).Exp(m, k.D, k.N)
		return s.FillBytes(make([]byte, k.Size())), nil
	case *ecdsa.PrivateKey:
		return ecdsa.SignASN1(rand.Reader, k, in)
	}
	return nil, errors.New("unsupported key")
}

func (c *miniPIV) challenges() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.signed...)
}

// tlv encodes a BER-TLV with a one-byte tag.
func tlv(tag byte, v []byte) []byte {
	out := []byte{tag}
	switch n := len(v); {
	case n < 0x80:
		out = append(out, byte(n))
	case n < 0x100:
		out = append(out, 0x81, byte(n))
	default:
		out = append(out, 0x82, byte(n>>8), byte(n))
	}
	return append(out, v...)
}

// parseTLV decodes a sequence of one-byte-tag BER-TLVs into a map; it stops
// at the first malformed one.
func parseTLV(b []byte) map[byte][]byte {
	m := map[byte][]byte{}
	for len(b) >= 2 {
		tag, n, rest := b[0], int(b[1]), b[2:]
		switch b[1] {
		case 0x81:
			if len(rest) < 1 {
				return m
			}
			n, rest = int(rest[0]), rest[1:]
		case 0x82:
			if len(rest) < 2 {
				return m
			}
			n, rest = int(rest[0])<<8|int(rest[1]), rest[2:]
		}
		if n > len(rest) {
			return m
		}
		m[tag] = rest[:n]
		b = rest[n:]
	}
	return m
}

func TestPIV(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		key  crypto.Signer
	}{{"rsa2048", rsaKey}, {"p256", ecKey}} {
		t.Run(tc.name, func(t *testing.T) { testPIV(t, tc.key) })
	}
}

func testPIV(t *testing.T, key crypto.Signer) {
	t.Parallel()
	ctx := t.Context()
	const pin = "246810"
	card := newMiniPIV(t, key, pin)
	challenge := bytes.Repeat([]byte{0x5a, 0xa5}, 16)
	params := map[string]string{"pin": pin, "challenge": hex.EncodeToString(challenge), "timeout": "100"}
	vm, _ := withClient(t, ctx, "piv", params, false, clientConfig{ack: ackQuick, atr: pivATR}, card.answer)
	res, err := vm.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Values["challenge"] != hex.EncodeToString(challenge) {
		t.Fatalf("challenge = %s, want %x", res.Values["challenge"], challenge)
	}
	sig, err := hex.DecodeString(res.Values["signature"])
	if err != nil || len(sig) == 0 {
		t.Fatalf("signature = %q: %v", res.Values["signature"], err)
	}
	switch k := key.Public().(type) {
	case *rsa.PublicKey:
		if res.Values["keytype"] != "rsa" || res.Values["mechanism"] != "RSA-PKCS" {
			t.Errorf("keytype %s mechanism %s, want rsa RSA-PKCS", res.Values["keytype"], res.Values["mechanism"])
		}
		// RSA-PKCS without a hash: PKCS #1 v1.5 padding of the raw bytes.
		if err := rsa.VerifyPKCS1v15(k, 0, challenge, sig); err != nil {
			t.Errorf("the guest's signature does not verify: %v", err)
		}
	case *ecdsa.PublicKey:
		if res.Values["keytype"] != "ec" || res.Values["mechanism"] != "ECDSA" {
			t.Errorf("keytype %s mechanism %s, want ec ECDSA", res.Values["keytype"], res.Values["mechanism"])
		}
		// PKCS #11 ECDSA signatures are r||s.
		if len(sig) != 64 {
			t.Fatalf("ECDSA signature of %d bytes, want 64", len(sig))
		}
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if !ecdsa.Verify(k, challenge, r, s) {
			t.Error("the guest's ECDSA signature does not verify")
		}
	}
	if n := len(card.challenges()); n != 1 {
		t.Errorf("the card signed %d times, want 1", n)
	}
	for _, m := range res.Markers {
		if bytes.Contains([]byte(m.Value), []byte(pin)) {
			t.Errorf("the PIN appears in the guest's output: %s %s", m.Kind, m.Name)
		}
	}
}
