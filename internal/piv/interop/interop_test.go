package interop_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	pivgo "github.com/go-piv/piv-go/v2/piv"

	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/piv"
	"github.com/vscardkit/vscardkit/internal/softstore"
	"github.com/vscardkit/vscardkit/internal/vpcd"
)

// openscModule is OpenSC's PKCS#11 module as Debian's opensc-pkcs11
// installs it.
const openscModule = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"

const pin = softstore.DefaultPIN

// Two cards: card 0 (vpcd slot 0) has RSA in 9A and 9D, card 1 has EC
// keys everywhere, so that every operation PIV has is tried once.
var (
	keysOnce sync.Once
	keys     [2]map[piv.Slot]softstore.KeyPair
	keysErr  error
)

func cardKeys(t *testing.T) [2]map[piv.Slot]softstore.KeyPair {
	t.Helper()
	keysOnce.Do(func() {
		algs := [2]map[piv.Slot]softstore.Algorithm{
			{
				piv.SlotAuthentication:     softstore.RSA2048,
				piv.SlotSignature:          softstore.P256,
				piv.SlotKeyManagement:      softstore.RSA2048,
				piv.SlotCardAuthentication: softstore.P384,
			},
			{
				piv.SlotAuthentication:     softstore.P384,
				piv.SlotSignature:          softstore.RSA2048,
				piv.SlotKeyManagement:      softstore.P256,
				piv.SlotCardAuthentication: softstore.RSA2048,
			},
		}
		for i, m := range algs {
			keys[i] = map[piv.Slot]softstore.KeyPair{}
			for slot, alg := range m {
				kp, err := softstore.NewKeyPair(slot, alg, "vscardkit interop "+slot.String())
				if err != nil {
					keysErr = err
					return
				}
				keys[i][slot] = kp
			}
		}
	})
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return keys
}

// rig is a private pcscd with both cards inserted.
type rig struct {
	p      *harness.PCSCD
	keys   [2]map[piv.Slot]softstore.KeyPair
	stores [2]*softstore.Store
	cards  [2]*recorder
	home   string
}

// recorder is the applet with a log of the commands it answered (test PINs
// only).
type recorder struct {
	*piv.Applet
	mu  sync.Mutex
	log []exchange
}

type exchange struct {
	cmd []byte
	sw  uint16
}

func (r *recorder) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	resp, err := r.Applet.Transmit(ctx, cmd)
	if err == nil && len(resp) >= 2 {
		r.mu.Lock()
		r.log = append(r.log, exchange{bytes.Clone(cmd), uint16(resp[len(resp)-2])<<8 | uint16(resp[len(resp)-1])})
		r.mu.Unlock()
	}
	return resp, err
}

// take returns the commands answered since the last take.
func (r *recorder) take() []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.log
	r.log = nil
	return out
}

func startRig(t *testing.T, inProcess bool) *rig {
	t.Helper()
	harness.LookPath(t, harness.OpenSCPeer, "pkcs11-tool")
	harness.RequireFile(t, harness.OpenSCPeer, openscModule)
	r := &rig{keys: cardKeys(t), home: t.TempDir()}
	r.p = harness.StartPCSCD(t, harness.PCSCDOptions{InProcess: inProcess})
	for i := range 2 {
		s, err := softstore.New(r.keys[i], softstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		r.stores[i] = s
		r.cards[i] = &recorder{Applet: piv.New(s, piv.Options{})}
		card, err := vpcd.Dial(context.Background(), r.p.VPCDAddr(i), vpcd.Config{Handler: r.cards[i]})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			card.Close()
			card.Wait()
		})
		harness.WaitFor(t, 15*time.Second, "the card in reader "+r.p.Readers[i], func() bool {
			_, err := r.run(t, "opensc-tool", "-r", string(rune('0'+i)), "--atr")
			return err == nil
		})
	}
	return r
}

// run runs an OpenSC tool against the rig's pcscd.
func (r *rig) run(t *testing.T, tool string, args ...string) (string, error) {
	t.Helper()
	return r.runEnv(t, nil, tool, args...)
}

// runEnv is run with more environment variables.
func (r *rig) runEnv(t *testing.T, env []string, tool string, args ...string) (string, error) {
	t.Helper()
	path := harness.LookPath(t, harness.OpenSCPeer, tool)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(append(os.Environ(), r.p.Env(), "HOME="+r.home), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// pkcs11 runs pkcs11-tool on card i (the PKCS#11 slot of reader i) and fails
// the test when it fails.
func (r *rig) pkcs11(t *testing.T, card int, args ...string) string {
	t.Helper()
	all := append([]string{"--module", openscModule, "--slot-index", string(rune('0' + card))}, args...)
	out, err := r.run(t, "pkcs11-tool", all...)
	if err != nil {
		t.Fatalf("pkcs11-tool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (r *rig) cert(t *testing.T, card int, slot piv.Slot) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(r.keys[card][slot].Certificate)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOpenSC uses the cards through OpenSC's PIV driver and PKCS#11 module,
// as a guest's Firefox or ssh would.
func TestOpenSC(t *testing.T) {
	r := startRig(t, false)

	t.Run("driver", func(t *testing.T) {
		// The ATR's historical bytes make OpenSC's PIV driver take the card
		// as SC_CARD_TYPE_PIV_II_HIST (14002), a PIV card without known
		// bugs: no card_issues workarounds.
		out, err := r.runEnv(t, []string{"OPENSC_DEBUG=3"}, "opensc-tool", "-r", "0", "--name")
		if err != nil || !strings.Contains(out, "Personal Identity Verification Card") {
			t.Fatalf("opensc-tool --name: %v\n%s", err, out)
		}
		if !strings.Contains(out, "PIV card-type=14002 card_issues=0x00000000") {
			t.Errorf("OpenSC did not take the card as a bug-free PIV card:\n%s", grepLines(out, "card-type", "card_issues"))
		}
		// The token serial is the CHUID's GUID: 16 bytes, different cards
		// have different ones, the same card keeps its own.
		serial := func(reader string) string {
			out, err := r.run(t, "opensc-tool", "-r", reader, "--serial")
			if err != nil {
				t.Fatalf("opensc-tool --serial: %v\n%s", err, out)
			}
			return strings.TrimSpace(out)
		}
		s0, s1 := serial("0"), serial("1")
		if s0 == s1 || s0 != serial("0") || strings.Count(s0, " ") < 15 {
			t.Errorf("serials %q and %q", s0, s1)
		}
	})

	t.Run("list", func(t *testing.T) {
		out := r.pkcs11(t, 0, "--list-token-slots")
		if !strings.Contains(out, "token initialized") && !strings.Contains(out, "token label") {
			t.Fatalf("no token:\n%s", out)
		}
		out = r.pkcs11(t, 0, "--list-objects")
		for _, label := range []string{
			"Certificate for PIV Authentication",
			"Certificate for Digital Signature",
			"Certificate for Key Management",
			"Certificate for Card Authentication",
		} {
			if !strings.Contains(out, label) {
				t.Errorf("-O lacks %q:\n%s", label, out)
			}
		}
		// With the PIN, the private keys show up too.
		out = r.pkcs11(t, 0, "--login", "--pin", pin, "--list-objects", "--type", "privkey")
		for _, label := range []string{"PIV AUTH key", "SIGN key", "KEY MAN key", "CARD AUTH key"} {
			if !strings.Contains(out, label) {
				t.Errorf("-O --login lacks %q:\n%s", label, out)
			}
		}
	})

	data := []byte("signed by a virtual PIV card through OpenSC")
	digest := sha256.Sum256(data)
	in := writeFile(t, "data", data)
	digestIn := writeFile(t, "digest", digest[:])

	t.Run("RSA-PKCS", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "sig")
		r.pkcs11(t, 0, "--login", "--pin", pin, "--sign", "--id", "01", "--mechanism", "SHA256-RSA-PKCS", "--input-file", in, "--output-file", out)
		pub := r.cert(t, 0, piv.SlotAuthentication).PublicKey.(*rsa.PublicKey)
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], readFile(t, out)); err != nil {
			t.Fatalf("SHA256-RSA-PKCS signature: %v", err)
		}
		// Raw PKCS #1 v1.5 over the caller's bytes.
		r.pkcs11(t, 0, "--login", "--pin", pin, "--sign", "--id", "01", "--mechanism", "RSA-PKCS", "--input-file", digestIn, "--output-file", out)
		if err := rsa.VerifyPKCS1v15(pub, 0, digest[:], readFile(t, out)); err != nil {
			t.Fatalf("RSA-PKCS signature: %v", err)
		}
	})

	t.Run("RSA-PSS", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "sig")
		r.pkcs11(t, 0, "--login", "--pin", pin, "--sign", "--id", "01", "--mechanism", "SHA256-RSA-PKCS-PSS", "--input-file", in, "--output-file", out)
		pub := r.cert(t, 0, piv.SlotAuthentication).PublicKey.(*rsa.PublicKey)
		if err := rsa.VerifyPSS(pub, crypto.SHA256, digest[:], readFile(t, out), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}); err != nil {
			t.Fatalf("PSS signature: %v", err)
		}
	})

	t.Run("ECDSA with PIN always", func(t *testing.T) {
		// 9C is CKA_ALWAYS_AUTHENTICATE: pkcs11-tool logs in again for the
		// signature (a second VERIFY), which the card requires.
		out := filepath.Join(t.TempDir(), "sig")
		r.cards[0].take()
		r.pkcs11(t, 0, "--login", "--pin", pin, "--sign", "--id", "02", "--mechanism", "ECDSA", "--signature-format", "openssl", "--input-file", digestIn, "--output-file", out)
		pub := r.cert(t, 0, piv.SlotSignature).PublicKey.(*ecdsa.PublicKey)
		if !ecdsa.VerifyASN1(pub, digest[:], readFile(t, out)) {
			t.Fatal("P-256 signature does not verify")
		}
		// The card saw: a VERIFY (C_Login), another VERIFY (the
		// context-specific login), then the signature.
		var verifies int
		signed := false
		for _, e := range r.cards[0].take() {
			switch {
			case len(e.cmd) > 5 && e.cmd[1] == 0x20 && e.cmd[3] == 0x80 && e.sw == 0x9000:
				verifies++
			case len(e.cmd) > 4 && e.cmd[1] == 0x87 && e.cmd[3] == 0x9C:
				signed = e.sw == 0x9000
				if verifies < 2 {
					t.Errorf("signature with 9C after %d VERIFY, want 2", verifies)
				}
			}
		}
		if !signed {
			t.Error("the card made no 9C signature")
		}
		objs := r.pkcs11(t, 0, "--login", "--pin", pin, "--list-objects", "--type", "privkey", "--id", "02")
		if !strings.Contains(objs, "always authenticate") {
			t.Errorf("9C is not marked always-authenticate:\n%s", objs)
		}
	})

	t.Run("ECDSA P-384 (9E)", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "sig")
		d384 := writeFile(t, "d384", bytes.Repeat([]byte{0x42}, 48))
		// pkcs11-tool logs in before any signature; the card does not ask
		// for the PIN for 9E (piv-go checks that, below).
		r.pkcs11(t, 0, "--login", "--pin", pin, "--sign", "--id", "04", "--mechanism", "ECDSA", "--signature-format", "openssl", "--input-file", d384, "--output-file", out)
		pub := r.cert(t, 0, piv.SlotCardAuthentication).PublicKey.(*ecdsa.PublicKey)
		if !ecdsa.VerifyASN1(pub, bytes.Repeat([]byte{0x42}, 48), readFile(t, out)) {
			t.Fatal("P-384 signature does not verify")
		}
	})

	t.Run("decrypt", func(t *testing.T) {
		pub := r.cert(t, 0, piv.SlotKeyManagement).PublicKey.(*rsa.PublicKey)
		msg := []byte("a wrapped session key")
		//lint:ignore SA1019 the card decrypts PKCS #1 v1.5, which PIV clients send (OpenSC CKM_RSA_PKCS, piv-go): the test needs such a ciphertext
		ct, err := rsa.EncryptPKCS1v15(rand.Reader, pub, msg)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "pt")
		r.pkcs11(t, 0, "--login", "--pin", pin, "--decrypt", "--id", "03", "--mechanism", "RSA-PKCS", "--input-file", writeFile(t, "ct", ct), "--output-file", out)
		if got := readFile(t, out); !bytes.Equal(got, msg) {
			t.Fatalf("decrypted %q, want %q", got, msg)
		}
	})

	t.Run("ECDH", func(t *testing.T) {
		peer, _ := ecdh.P256().GenerateKey(rand.Reader)
		spki, err := x509.MarshalPKIXPublicKey(peer.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "secret")
		r.pkcs11(t, 1, "--login", "--pin", pin, "--derive", "--id", "03", "--mechanism", "ECDH1-DERIVE", "--input-file", writeFile(t, "peer.der", spki), "--output-file", out)
		ours, _ := r.cert(t, 1, piv.SlotKeyManagement).PublicKey.(*ecdsa.PublicKey).ECDH()
		want, _ := peer.ECDH(ours)
		if got := readFile(t, out); !bytes.Equal(got, want) {
			t.Fatalf("shared secret %X, want %X", got, want)
		}
	})

	t.Run("random", func(t *testing.T) {
		// C_GenerateRandom: GENERAL AUTHENTICATE 9B 81 00 challenges.
		out := filepath.Join(t.TempDir(), "random")
		r.pkcs11(t, 0, "--generate-random", "40", "--output-file", out)
		if got := readFile(t, out); len(got) != 40 || bytes.Equal(got, make([]byte, 40)) {
			t.Fatalf("random bytes %X", got)
		}
	})

	t.Run("wrong PIN", func(t *testing.T) {
		out, err := r.run(t, "pkcs11-tool", "--module", openscModule, "--slot-index", "1", "--login", "--pin", "000000", "--list-objects")
		if err == nil || !strings.Contains(out, "CKR_PIN_INCORRECT") {
			t.Fatalf("wrong PIN: %v\n%s", err, out)
		}
		if st, _ := r.stores[1].PINStatus(); st.Retries != 2 {
			t.Fatalf("store has %d tries left after one wrong PIN", st.Retries)
		}
		r.pkcs11(t, 1, "--login", "--pin", pin, "--list-objects")
		if st, _ := r.stores[1].PINStatus(); st.Retries != 3 {
			t.Fatalf("store has %d tries left after the right PIN", st.Retries)
		}
	})
}

// TestPivGo uses the cards through piv-go, an independent PIV client.
func TestPivGo(t *testing.T) {
	r := startRig(t, true)
	open := func(t *testing.T, card int) *pivgo.YubiKey {
		t.Helper()
		names, err := pivgo.Cards()
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if n == r.p.Readers[card] {
				yk, err := pivgo.Open(n)
				if err != nil {
					t.Fatalf("piv-go Open: %v", err)
				}
				t.Cleanup(func() { yk.Close() })
				return yk
			}
		}
		t.Fatalf("reader %q not in %q", r.p.Readers[card], names)
		return nil
	}
	slots := map[piv.Slot]pivgo.Slot{
		piv.SlotAuthentication:     pivgo.SlotAuthentication,
		piv.SlotSignature:          pivgo.SlotSignature,
		piv.SlotKeyManagement:      pivgo.SlotKeyManagement,
		piv.SlotCardAuthentication: pivgo.SlotCardAuthentication,
	}
	digest := sha256.Sum256([]byte("signed by a virtual PIV card through piv-go"))

	t.Run("card 0", func(t *testing.T) {
		yk := open(t, 0)
		if v := yk.Version(); v.Major != 0 || v.Minor != 1 {
			t.Errorf("version %+v", v)
		}
		certs := map[piv.Slot]*x509.Certificate{}
		for ours, theirs := range slots {
			c, err := yk.Certificate(theirs)
			if err != nil {
				t.Fatalf("Certificate(%v): %v", ours, err)
			}
			if !bytes.Equal(c.Raw, r.keys[0][ours].Certificate) {
				t.Fatalf("Certificate(%v) differs from the store's", ours)
			}
			certs[ours] = c
		}
		if n, err := yk.Retries(); err != nil || n != 3 {
			t.Fatalf("Retries = %d, %v", n, err)
		}

		// 9E first, before any VERIFY: no PIN (piv-go's PINPolicyNever).
		k, err := yk.PrivateKey(pivgo.SlotCardAuthentication, certs[piv.SlotCardAuthentication].PublicKey, pivgo.KeyAuth{})
		if err != nil {
			t.Fatal(err)
		}
		d384 := bytes.Repeat([]byte{0x33}, 48)
		sig, err := k.(crypto.Signer).Sign(rand.Reader, d384, crypto.SHA384)
		if err != nil {
			t.Fatalf("9E P-384 without PIN: %v", err)
		}
		if !ecdsa.VerifyASN1(certs[piv.SlotCardAuthentication].PublicKey.(*ecdsa.PublicKey), d384, sig) {
			t.Fatal("9E signature does not verify")
		}
		if st, _ := r.stores[0].PINStatus(); st.LoggedIn {
			t.Fatal("the store was logged in for 9E")
		}

		auth := pivgo.KeyAuth{PIN: pin}
		k, err = yk.PrivateKey(pivgo.SlotAuthentication, certs[piv.SlotAuthentication].PublicKey, auth)
		if err != nil {
			t.Fatal(err)
		}
		rsaPub := certs[piv.SlotAuthentication].PublicKey.(*rsa.PublicKey)
		sig, err = k.(crypto.Signer).Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			t.Fatalf("9A PKCS #1 v1.5: %v", err)
		}
		if err := rsa.VerifyPKCS1v15(rsaPub, crypto.SHA256, digest[:], sig); err != nil {
			t.Fatalf("9A PKCS #1 v1.5 signature: %v", err)
		}
		pss := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
		sig, err = k.(crypto.Signer).Sign(rand.Reader, digest[:], pss)
		if err != nil {
			t.Fatalf("9A PSS: %v", err)
		}
		if err := rsa.VerifyPSS(rsaPub, crypto.SHA256, digest[:], sig, pss); err != nil {
			t.Fatalf("9A PSS signature: %v", err)
		}

		// 9C twice: piv-go verifies before each use ("PIN always").
		k, err = yk.PrivateKey(pivgo.SlotSignature, certs[piv.SlotSignature].PublicKey, auth)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			sig, err := k.(crypto.Signer).Sign(rand.Reader, digest[:], crypto.SHA256)
			if err != nil {
				t.Fatalf("9C signature %d: %v", i, err)
			}
			if !ecdsa.VerifyASN1(certs[piv.SlotSignature].PublicKey.(*ecdsa.PublicKey), digest[:], sig) {
				t.Fatalf("9C signature %d does not verify", i)
			}
		}

		k, err = yk.PrivateKey(pivgo.SlotKeyManagement, certs[piv.SlotKeyManagement].PublicKey, auth)
		if err != nil {
			t.Fatal(err)
		}
		msg := []byte("a wrapped session key")
		//lint:ignore SA1019 the card decrypts PKCS #1 v1.5, which PIV clients send (OpenSC CKM_RSA_PKCS, piv-go): the test needs such a ciphertext
		ct, _ := rsa.EncryptPKCS1v15(rand.Reader, certs[piv.SlotKeyManagement].PublicKey.(*rsa.PublicKey), msg)
		pt, err := k.(crypto.Decrypter).Decrypt(rand.Reader, ct, nil)
		if err != nil || !bytes.Equal(pt, msg) {
			t.Fatalf("9D decrypt: %q, %v", pt, err)
		}

		// A wrong PIN, then the right one.
		var ae pivgo.AuthErr
		if err := yk.VerifyPIN("000000"); !errors.As(err, &ae) || ae.Retries != 2 {
			t.Fatalf("wrong PIN: %v", err)
		}
		if err := yk.VerifyPIN(pin); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("card 1", func(t *testing.T) {
		yk := open(t, 1)
		cert := func(s piv.Slot) *x509.Certificate {
			c, err := yk.Certificate(slots[s])
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		auth := pivgo.KeyAuth{PIN: pin}

		km := cert(piv.SlotKeyManagement)
		k, err := yk.PrivateKey(pivgo.SlotKeyManagement, km.PublicKey, auth)
		if err != nil {
			t.Fatal(err)
		}
		peer, _ := ecdh.P256().GenerateKey(rand.Reader)
		secret, err := k.(*pivgo.ECDSAPrivateKey).ECDH(peer.PublicKey())
		if err != nil {
			t.Fatalf("9D ECDH: %v", err)
		}
		ours, _ := km.PublicKey.(*ecdsa.PublicKey).ECDH()
		if want, _ := peer.ECDH(ours); !bytes.Equal(secret, want) {
			t.Fatal("ECDH secrets differ")
		}

		pa := cert(piv.SlotAuthentication)
		k, err = yk.PrivateKey(pivgo.SlotAuthentication, pa.PublicKey, auth)
		if err != nil {
			t.Fatal(err)
		}
		d384 := sha512.Sum384([]byte("P-384"))
		sig, err := k.(crypto.Signer).Sign(rand.Reader, d384[:], crypto.SHA384)
		if err != nil || !ecdsa.VerifyASN1(pa.PublicKey.(*ecdsa.PublicKey), d384[:], sig) {
			t.Fatalf("9A P-384: %v", err)
		}

		sg := cert(piv.SlotSignature)
		k, err = yk.PrivateKey(pivgo.SlotSignature, sg.PublicKey, auth)
		if err != nil {
			t.Fatal(err)
		}
		sig, err = k.(crypto.Signer).Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			t.Fatalf("9C RSA: %v", err)
		}
		if err := rsa.VerifyPKCS1v15(sg.PublicKey.(*rsa.PublicKey), crypto.SHA256, digest[:], sig); err != nil {
			t.Fatalf("9C RSA signature: %v", err)
		}
	})
}

// grepLines returns the lines of out that contain any of words.
func grepLines(out string, words ...string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				keep = append(keep, l)
				break
			}
		}
	}
	return strings.Join(keep, "\n")
}
