package piv_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/vscard/vscardtest"
)

// BenchmarkSignLatency measures one private-key operation as a guest's
// middleware asks for it, through the whole path but vpcd: the fake host
// (vscardtest, in this process, writing header and payload apart as QEMU
// does) -> VSCard over TCP -> vscclient-go --card pkcs11 (a subprocess) ->
// softhsm2; beside it, a direct C_SignInit + C_Sign on the same token, with
// the same key and the mechanism the card uses (CKM_RSA_X_509 on the padded
// block, CKM_ECDSA on the digest). Both run in one benchmark run, as
// sub-benchmarks reporting median-µs and p90-µs; the ratio of the medians is
// what the path costs.
//
// The card's RSA 2048 signature is what OpenSC sends: a chained GENERAL
// AUTHENTICATE (266 bytes of data) and a 264-byte answer fetched with GET
// RESPONSE, so 4 round trips; the P-256 one is a single round trip.
func BenchmarkSignLatency(b *testing.B) {
	h := harness.NewSoftHSM(b, "bench")
	rsaKey := h.AddIdentity(b, harness.IdentitySpec{Alg: harness.RSA2048, ID: []byte{0x01}, Label: "bench rsa",
		KeyUsage: x509.KeyUsageDigitalSignature})
	ecKey := h.AddIdentity(b, harness.IdentitySpec{Alg: harness.P256, ID: []byte{0x02}, Label: "bench p256",
		KeyUsage: x509.KeyUsageDigitalSignature})
	block := pkcs1v15Block(b, rsaKey.Cert.PublicKey.(*rsa.PublicKey).Size())

	srv := vscardtest.NewServer()
	defer srv.Close()
	host, port, _ := net.SplitHostPort(srv.Addr())
	cmd := exec.Command(filepath.Join(harness.Commands(b), "vscclient-go"),
		"--card", h.URI(""), "--slot", "9a=id:01", "--slot", "9e=id:02", host, port)
	cmd.Env = h.Env()
	harness.Start(b, "vscclient-go", cmd)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := srv.WaitEvent(ctx, vscardtest.EventCardInserted); err != nil {
		b.Fatal(err)
	}
	gc := &guest{srv: srv}
	if _, err := gc.command(ctx, mustHex(selectPIV)); err != nil {
		b.Fatal(err)
	}
	if _, err := gc.command(ctx, mustHex(verifyAPDU(h.PIN))); err != nil {
		b.Fatal(err)
	}

	h.Setenv(b) // softhsm2 reads SOFTHSM2_CONF at C_Initialize
	tok := openDirect(b, h)
	// Looked up once, as certsrc does at a key's first use.
	rsaHandle, ecHandle := tok.key(b, rsaKey.ID), tok.key(b, ecKey.ID)

	rsaPub := rsaKey.Cert.PublicKey.(*rsa.PublicKey)
	ecPub := ecKey.Cert.PublicKey.(*ecdsa.PublicKey)
	ops := []struct {
		name      string
		card      func() ([]byte, error)
		direct    func() ([]byte, error)
		verify    func(sig []byte) error // the card's signature
		verifyRaw func(sig []byte) error // the token's
	}{
		{
			name:   "RSA2048",
			card:   func() ([]byte, error) { return gc.authenticate(ctx, 0x07, 0x9A, block) },
			direct: func() ([]byte, error) { return tok.sign(pkcs11.CKM_RSA_X_509, rsaHandle, block) },
			verify: func(sig []byte) error {
				return rsa.VerifyPKCS1v15(rsaPub, crypto.SHA256, digest[:], sig)
			},
			verifyRaw: func(sig []byte) error {
				return rsa.VerifyPKCS1v15(rsaPub, crypto.SHA256, digest[:], sig)
			},
		},
		{
			name:   "P256",
			card:   func() ([]byte, error) { return gc.authenticate(ctx, 0x11, 0x9E, digest[:]) },
			direct: func() ([]byte, error) { return tok.sign(pkcs11.CKM_ECDSA, ecHandle, digest[:]) },
			verify: func(sig []byte) error {
				if !ecdsa.VerifyASN1(ecPub, digest[:], sig) {
					return fmt.Errorf("ECDSA signature does not verify")
				}
				return nil
			},
			verifyRaw: func(sig []byte) error {
				n := len(sig) / 2
				if len(sig) != 64 || !ecdsa.Verify(ecPub, digest[:], new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])) {
					return fmt.Errorf("raw ECDSA signature %X does not verify", sig)
				}
				return nil
			},
		},
	}
	for _, op := range ops {
		// Both paths must give valid signatures before they are timed.
		if sig, err := op.card(); err != nil {
			b.Fatalf("%s through vscclient-go: %v", op.name, err)
		} else if err := op.verify(sig); err != nil {
			b.Fatalf("%s through vscclient-go: %v", op.name, err)
		}
		if sig, err := op.direct(); err != nil {
			b.Fatalf("%s with C_Sign: %v", op.name, err)
		} else if err := op.verifyRaw(sig); err != nil {
			b.Fatalf("%s with C_Sign: %v", op.name, err)
		}
		b.Run(op.name+"/vscclient-go", func(b *testing.B) {
			harness.BenchRoundTrips(b, func() error { _, err := op.card(); return err })
		})
		b.Run(op.name+"/C_Sign", func(b *testing.B) {
			harness.BenchRoundTrips(b, func() error { _, err := op.direct(); return err })
		})
	}
}

// pkcs1v15Block is the EMSA-PKCS1-v1_5 encoding of digest (SHA-256) for a
// modulus of size bytes: what a PIV client sends to be signed with raw RSA.
func pkcs1v15Block(b *testing.B, size int) []byte {
	prefix := mustHex("3031300D060960864801650304020105000420") // DigestInfo, SHA-256
	t := append(prefix, digest[:]...)
	if size < len(t)+11 {
		b.Fatalf("modulus of %d bytes too short", size)
	}
	block := append([]byte{0x00, 0x01}, bytes.Repeat([]byte{0xFF}, size-len(t)-3)...)
	return append(append(block, 0x00), t...)
}

// guest plays a guest's PIV middleware on the fake host.
type guest struct{ srv *vscardtest.Server }

// command sends one command, follows 61xx with GET RESPONSE, and returns
// the whole response data; a final status other than 9000 is an error.
func (g *guest) command(ctx context.Context, cmd []byte) ([]byte, error) {
	var data []byte
	for {
		r, err := g.srv.Transmit(ctx, cmd)
		if err != nil {
			return nil, err
		}
		if len(r) < 2 {
			return nil, fmt.Errorf("response %X without a status word", r)
		}
		data = append(data, r[:len(r)-2]...)
		sw1, sw2 := r[len(r)-2], r[len(r)-1]
		switch {
		case sw1 == 0x61:
			cmd = []byte{0x00, 0xC0, 0x00, 0x00, sw2}
		case sw1 == 0x90 && sw2 == 0x00:
			return data, nil
		default:
			return nil, fmt.Errorf("command %X: status %02X%02X", cmd[:4], sw1, sw2)
		}
	}
}

// authenticate signs input with GENERAL AUTHENTICATE (algorithm alg, key
// slot) as OpenSC does: 7C { 82 00, 81 input }, chained in pieces of 255
// bytes, and returns the signature (tag 82 of the answer).
func (g *guest) authenticate(ctx context.Context, alg, slot byte, input []byte) ([]byte, error) {
	inner := append([]byte{0x82, 0x00}, tlv(0x81, input)...)
	data := tlv(0x7C, inner)
	for len(data) > 255 {
		cmd := append([]byte{0x10, 0x87, alg, slot, 0xFF}, data[:255]...)
		if _, err := g.command(ctx, cmd); err != nil {
			return nil, err
		}
		data = data[255:]
	}
	cmd := append(append([]byte{0x00, 0x87, alg, slot, byte(len(data))}, data...), 0x00)
	resp, err := g.command(ctx, cmd)
	if err != nil {
		return nil, err
	}
	v, ok := untlv(resp, 0x7C)
	if !ok {
		return nil, fmt.Errorf("answer %X: no 7C template", resp)
	}
	sig, ok := untlv(v, 0x82)
	if !ok {
		return nil, fmt.Errorf("answer %X: no 82 response", resp)
	}
	return sig, nil
}

// tlv encodes a BER-TLV with a one-byte tag.
func tlv(tag byte, v []byte) []byte {
	var hdr []byte
	switch n := len(v); {
	case n < 0x80:
		hdr = []byte{tag, byte(n)}
	case n < 0x100:
		hdr = []byte{tag, 0x81, byte(n)}
	default:
		hdr = []byte{tag, 0x82, byte(n >> 8), byte(n)}
	}
	return append(hdr, v...)
}

// untlv returns the value of the TLV with tag at the start of b or among
// its siblings.
func untlv(b []byte, tag byte) ([]byte, bool) {
	for len(b) >= 2 {
		t, n, off := b[0], int(b[1]), 2
		switch b[1] {
		case 0x81:
			if len(b) < 3 {
				return nil, false
			}
			n, off = int(b[2]), 3
		case 0x82:
			if len(b) < 4 {
				return nil, false
			}
			n, off = int(b[2])<<8|int(b[3]), 4
		}
		if off+n > len(b) {
			return nil, false
		}
		if t == tag {
			return b[off : off+n], true
		}
		b = b[off+n:]
	}
	return nil, false
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// directToken is the benchmark's token opened in this process with
// miekg/pkcs11, logged in.
type directToken struct {
	ctx     *pkcs11.Ctx
	session pkcs11.SessionHandle
}

// openDirect loads softhsm2's module, opens a session on h's token and logs
// in; the cleanup logs out and unloads the module.
func openDirect(b *testing.B, h *harness.SoftHSM) *directToken {
	b.Helper()
	ctx := pkcs11.New(h.Module)
	if ctx == nil {
		b.Fatalf("cannot load %s", h.Module)
	}
	if err := ctx.Initialize(); err != nil {
		ctx.Destroy()
		b.Fatalf("C_Initialize: %v", err)
	}
	d := &directToken{ctx: ctx}
	b.Cleanup(func() {
		ctx.Logout(d.session)
		ctx.CloseSession(d.session)
		ctx.Finalize()
		ctx.Destroy()
	})
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		b.Fatalf("C_GetSlotList: %v", err)
	}
	found := false
	for _, s := range slots {
		ti, err := ctx.GetTokenInfo(s)
		if err == nil && string(bytes.TrimRight([]byte(ti.Label), " \x00")) == h.Label {
			if d.session, err = ctx.OpenSession(s, pkcs11.CKF_SERIAL_SESSION); err != nil {
				b.Fatalf("C_OpenSession: %v", err)
			}
			found = true
			break
		}
	}
	if !found {
		b.Fatalf("no token %q in %s", h.Label, h.Module)
	}
	if err := ctx.Login(d.session, pkcs11.CKU_USER, h.PIN); err != nil {
		b.Fatalf("C_Login: %v", err)
	}
	return d
}

// sign is C_SignInit + C_Sign of data with key and mech.
func (d *directToken) sign(mech uint, key pkcs11.ObjectHandle, data []byte) ([]byte, error) {
	if err := d.ctx.SignInit(d.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, key); err != nil {
		return nil, fmt.Errorf("C_SignInit: %w", err)
	}
	sig, err := d.ctx.Sign(d.session, data)
	if err != nil {
		return nil, fmt.Errorf("C_Sign: %w", err)
	}
	return sig, nil
}

// key finds the private key with CKA_ID id.
func (d *directToken) key(b *testing.B, id []byte) pkcs11.ObjectHandle {
	b.Helper()
	if err := d.ctx.FindObjectsInit(d.session, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}); err != nil {
		b.Fatalf("C_FindObjectsInit: %v", err)
	}
	hs, _, err := d.ctx.FindObjects(d.session, 2)
	d.ctx.FindObjectsFinal(d.session)
	if err != nil || len(hs) != 1 {
		b.Fatalf("finding the private key %X: %d found, %v", id, len(hs), err)
	}
	return hs[0]
}
