package faults_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/apdu"
	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/vscard/vscardtest"
)

// verifyPIN is VERIFY of softhsm2's user PIN, padded with FF.
func verifyPIN() []byte {
	pin := append([]byte(harness.SoftHSMUserPIN), bytes.Repeat([]byte{0xFF}, 8-len(harness.SoftHSMUserPIN))...)
	return append([]byte{0x00, 0x20, 0x00, 0x80, 0x08}, pin...)
}

// signAPDU is GENERAL AUTHENTICATE with the 9A P-256 key over digest.
func signAPDU(digest []byte) []byte {
	inner := append([]byte{0x82, 0x00, 0x81, byte(len(digest))}, digest...)
	data := append([]byte{0x7C, byte(len(inner))}, inner...)
	return append(append([]byte{0x00, 0x87, 0x11, 0x9A, byte(len(data))}, data...), 0x00)
}

// signature returns the signature in a GENERAL AUTHENTICATE answer
// (7C { 82 sig } 9000).
func signature(resp []byte) ([]byte, error) {
	r := apdu.Response(resp)
	d := r.Data()
	if r.SW() != apdu.SWOK || len(d) < 4 || d[0] != 0x7C || d[2] != 0x82 || int(d[3]) != len(d)-4 {
		return nil, fmt.Errorf("answer %X", resp)
	}
	return d[4:], nil
}

// The softhsm2 token's files taken away while the guest is logged in and
// signing: the signature fails with an error status (the host is told, the
// client does not crash), and once the files are back, VERIFY and a
// signature work again.
func TestTokenRemovedMidOperation(t *testing.T) {
	h := harness.NewSoftHSM(t, "faults")
	id := h.AddIdentity(t, harness.IdentitySpec{Alg: harness.P256, ID: []byte{1}, Label: "auth", KeyUsage: x509.KeyUsageDigitalSignature})
	srv := vscardtest.NewServer()
	defer srv.Close()
	p := startClient(t, h.Env(), append([]string{"--card", h.URI(""), "--slot", "9a=id:01"}, hostPort(srv.Addr())...)...)
	mem := sample(t, p.PID())
	waitEvent(t, srv, 20*time.Second, vscardtest.EventCardInserted)
	digest := sha256.Sum256([]byte("faults"))
	sign := func() ([]byte, error) {
		resp, err := srv.Transmit(ctxT(t, 20*time.Second), signAPDU(digest[:]))
		if err != nil {
			return nil, err
		}
		return signature(resp)
	}
	check := func(sig []byte) {
		t.Helper()
		if !ecdsa.VerifyASN1(id.Public().(*ecdsa.PublicKey), digest[:], sig) {
			t.Fatalf("signature %X does not verify", sig)
		}
	}
	transmitOK(t, srv, selectPIV)
	transmitOK(t, srv, verifyPIN())
	for range 3 {
		sig, err := sign()
		if err != nil {
			t.Fatal(err)
		}
		check(sig)
	}
	srv.Events()

	h.RemoveToken(t, "")
	_, err := sign()
	if err == nil {
		t.Fatal("a signature with the token's files gone succeeded")
	}
	saw := "signature: " + err.Error()
	resp, err := srv.Transmit(ctxT(t, 20*time.Second), verifyPIN())
	saw += fmt.Sprintf("; VERIFY: %X %v; events %s", resp, err, kinds(srv.Events()))
	h.RestoreToken(t, "")
	back := time.Now()
	var sig []byte
	harness.WaitFor(t, 20*time.Second, "a signature once the token is back", func() bool {
		if resp, err := srv.Transmit(ctxT(t, 20*time.Second), verifyPIN()); err != nil || !hasSW(resp, apdu.SWOK) {
			return false
		}
		sig, err = sign()
		return err == nil
	})
	recovered := time.Since(back)
	check(sig)
	finish(t, p)
	mem.Stop()
	report(t, row{fault: "softhsm2 token files removed mid-operation (logged in, signing)", hostSaw: saw, recovered: recovered, peak: mem.Peak()})
}
