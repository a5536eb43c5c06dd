package guest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/hex"
	"math/big"
	"sync"
	"testing"

	"github.com/vscardkit/vscardkit/internal/apdu"
	"github.com/vscardkit/vscardkit/internal/piv"
	"github.com/vscardkit/vscardkit/internal/softstore"
)

// pivCard is the project's PIV applet over a software store with one key,
// in slot 9A, served by the test's VSCard client; it counts the signatures
// it makes.
type pivCard struct {
	applet *piv.Applet

	mu    sync.Mutex
	signs int // GENERAL AUTHENTICATE commands answered with a signature
}

func newPIVCard(t testing.TB, alg softstore.Algorithm, pin string) (*pivCard, softstore.KeyPair) {
	t.Helper()
	kp, err := softstore.NewKeyPair(piv.SlotAuthentication, alg, "vscardkit guest test")
	if err != nil {
		t.Fatal(err)
	}
	store, err := softstore.New(map[piv.Slot]softstore.KeyPair{piv.SlotAuthentication: kp}, softstore.Options{PIN: pin})
	if err != nil {
		t.Fatal(err)
	}
	return &pivCard{applet: piv.New(store, piv.Options{})}, kp
}

// answer is the card's APDU handler (the responder's answer function).
func (c *pivCard) answer(raw []byte) []byte {
	resp, err := c.applet.Transmit(context.Background(), raw)
	if err != nil {
		return apdu.SWUnknown.Bytes()
	}
	// The last (or only) piece of a GENERAL AUTHENTICATE that the applet
	// answered with data is a signature made.
	if cmd, err := apdu.Parse(raw); err == nil && cmd.INS == 0x87 && cmd.CLA&0x10 == 0 {
		if sw := apdu.Response(resp).SW(); sw == apdu.SWOK || sw.SW1() == apdu.SWBytesRemaining.SW1() {
			c.mu.Lock()
			c.signs++
			c.mu.Unlock()
		}
	}
	return resp
}

func (c *pivCard) signatures() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.signs
}

func TestPIV(t *testing.T) {
	for _, tc := range []struct {
		name string
		alg  softstore.Algorithm
	}{{"rsa2048", softstore.RSA2048}, {"p256", softstore.P256}} {
		t.Run(tc.name, func(t *testing.T) { testPIV(t, tc.alg) })
	}
}

func testPIV(t *testing.T, alg softstore.Algorithm) {
	t.Parallel()
	ctx := t.Context()
	const pin = "246810"
	card, kp := newPIVCard(t, alg, pin)
	challenge := bytes.Repeat([]byte{0x5a, 0xa5}, 16)
	params := map[string]string{"pin": pin, "challenge": hex.EncodeToString(challenge), "timeout": "100"}
	vm, _ := withClient(t, ctx, "piv", params, false, clientConfig{ack: ackQuick, atr: piv.ATR()}, card.answer)
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
	switch k := kp.Key.Public().(type) {
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
	if n := card.signatures(); n != 1 {
		t.Errorf("the card signed %d times, want 1", n)
	}
	for _, m := range res.Markers {
		if bytes.Contains([]byte(m.Value), []byte(pin)) {
			t.Errorf("the PIN appears in the guest's output: %s %s", m.Kind, m.Name)
		}
	}
}
