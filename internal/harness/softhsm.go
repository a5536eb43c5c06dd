package harness

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// SoftHSMPeer names softhsm2 in Missing messages; OpenSCPeer names OpenSC's
// pkcs11-tool, which the harness writes objects with.
const (
	SoftHSMPeer = "softhsm2"
	OpenSCPeer  = "opensc (pkcs11-tool)"
)

// The PINs NewSoftHSM initialises tokens with.
const (
	SoftHSMSOPIN   = "12345678"
	SoftHSMUserPIN = "123456"
)

// softhsmModules are where distributions install softhsm2's module
// (Debian: the first is a symlink to the second).
var softhsmModules = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
	"/usr/lib/pkcs11/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
}

// SoftHSMModule returns the path of softhsm2's PKCS#11 module.
func SoftHSMModule() (string, error) {
	for _, p := range softhsmModules {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("libsofthsm2.so is in none of %s", strings.Join(softhsmModules, ", "))
}

// SoftHSM is a softhsm2 token store in a temporary directory, with one
// initialised token to begin with. softhsm2 reads its configuration from
// the file SOFTHSM2_CONF names when the module is initialised: a process
// that loads the module needs Env (a child) or Setenv (the test itself).
type SoftHSM struct {
	Module   string // the PKCS#11 module, libsofthsm2.so
	Dir      string // the temporary directory
	Conf     string // the softhsm2.conf SOFTHSM2_CONF must name
	TokenDir string // its directories.tokendir
	Label    string // the first token's label
	SOPIN    string // the SO PIN of every token
	PIN      string // the user PIN of every token

	pkcs11Tool string
	tokens     map[string]string // label -> token directory
	used       map[string]int    // keys of each algorithm AddIdentity used
}

// NewSoftHSM creates a softhsm2 configuration and token directory under
// t.TempDir() and initialises a token labelled label with SoftHSMSOPIN and
// SoftHSMUserPIN. A missing softhsm2 or pkcs11-tool is reported with
// Missing.
func NewSoftHSM(t testing.TB, label string) *SoftHSM {
	t.Helper()
	mod, err := SoftHSMModule()
	if err != nil {
		Missing(t, SoftHSMPeer, err)
	}
	LookPath(t, SoftHSMPeer, "softhsm2-util")
	h := &SoftHSM{
		Module:     mod,
		Dir:        t.TempDir(),
		Label:      label,
		SOPIN:      SoftHSMSOPIN,
		PIN:        SoftHSMUserPIN,
		pkcs11Tool: LookPath(t, OpenSCPeer, "pkcs11-tool"),
		tokens:     make(map[string]string),
	}
	h.Conf = filepath.Join(h.Dir, "softhsm2.conf")
	h.TokenDir = filepath.Join(h.Dir, "tokens")
	if err := os.Mkdir(h.TokenDir, 0o700); err != nil {
		t.Fatalf("harness: %v", err)
	}
	conf := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", h.TokenDir)
	if err := os.WriteFile(h.Conf, []byte(conf), 0o600); err != nil {
		t.Fatalf("harness: %v", err)
	}
	h.InitToken(t, label)
	return h
}

// Env returns the environment of the current process with SOFTHSM2_CONF
// naming this store's configuration, for child processes.
func (h *SoftHSM) Env() []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "SOFTHSM2_CONF=") })
	return append(env, "SOFTHSM2_CONF="+h.Conf)
}

// Setenv sets SOFTHSM2_CONF for the test's own process (restored when the
// test ends), so that a module loaded in-process finds this store. Do it
// before the module is initialised; tests that call it cannot be parallel.
func (h *SoftHSM) Setenv(t testing.TB) {
	t.Helper()
	t.Setenv("SOFTHSM2_CONF", h.Conf)
}

// URI returns the PKCS#11 URI of the token labelled label (the first
// token when label is ""), with module-path.
func (h *SoftHSM) URI(label string) string {
	if label == "" {
		label = h.Label
	}
	return "pkcs11:token=" + pctEncode(label, "") + "?module-path=" + pctEncode(h.Module, "/")
}

// pctEncode percent-encodes all but RFC 3986 unreserved characters and
// those in keep.
func pctEncode(s, keep string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 || strings.IndexByte(keep, c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// InitToken initialises another token labelled label in the same store.
func (h *SoftHSM) InitToken(t testing.TB, label string) {
	t.Helper()
	before := h.tokenDirs(t)
	h.run(t, "softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", h.SOPIN, "--pin", h.PIN)
	for _, d := range h.tokenDirs(t) {
		if !slices.Contains(before, d) {
			h.tokens[label] = filepath.Join(h.TokenDir, d)
			return
		}
	}
	t.Fatalf("harness: softhsm2-util created no token directory for %q in %s", label, h.TokenDir)
}

func (h *SoftHSM) tokenDirs(t testing.TB) []string {
	ents, err := os.ReadDir(h.TokenDir)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// TokenPath returns the directory softhsm2 keeps the token labelled label
// in ("" for the first token). Deleting it is how a test pulls the token.
func (h *SoftHSM) TokenPath(label string) string {
	if label == "" {
		label = h.Label
	}
	return h.tokens[label]
}

// RemoveToken moves the token's directory out of the token store, as if
// the token were pulled; RestoreToken puts it back.
func (h *SoftHSM) RemoveToken(t testing.TB, label string) {
	t.Helper()
	p := h.TokenPath(label)
	if err := os.Rename(p, filepath.Join(h.Dir, "removed-"+filepath.Base(p))); err != nil {
		t.Fatalf("harness: removing token: %v", err)
	}
}

// RestoreToken puts back a token RemoveToken took away.
func (h *SoftHSM) RestoreToken(t testing.TB, label string) {
	t.Helper()
	p := h.TokenPath(label)
	if err := os.Rename(filepath.Join(h.Dir, "removed-"+filepath.Base(p)), p); err != nil {
		t.Fatalf("harness: restoring token: %v", err)
	}
}

// run runs a softhsm2/OpenSC tool with SOFTHSM2_CONF set, failing t with
// its output when it fails.
func (h *SoftHSM) run(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = h.Env()
	cmd.Dir = h.Dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("harness: %s %s: %v\n%s", name, args[0], err, out)
	}
	return string(out)
}

// tool runs pkcs11-tool on the token labelled label, logged in as the user.
func (h *SoftHSM) tool(t testing.TB, label string, args ...string) string {
	t.Helper()
	if label == "" {
		label = h.Label
	}
	base := []string{"--module", h.Module, "--token-label", label, "--login", "--pin", h.PIN}
	return h.run(t, h.pkcs11Tool, append(base, args...)...)
}

// writeTemp writes data to a file of its own in h.Dir (mode 0600) and
// returns its path; the file is removed when the test ends.
func (h *SoftHSM) writeTemp(t testing.TB, pattern string, data []byte) string {
	t.Helper()
	f, err := os.CreateTemp(h.Dir, pattern)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Cleanup(func() { os.Remove(f.Name()) })
	return f.Name()
}

// KeyUse says which of sign, decrypt and derive a private key may do
// (CKA_SIGN, CKA_DECRYPT, CKA_DERIVE) when ImportKey writes it.
type KeyUse struct {
	Sign, Decrypt, Derive bool
}

// ImportKey writes key (RSA or ECDSA) to the token labelled label ("" for
// the first) as a private key object and a public key object, both with
// CKA_ID id and CKA_LABEL objLabel, using pkcs11-tool. The private key is
// CKA_PRIVATE and CKA_SENSITIVE, so it is only visible after login.
// pkcs11-tool also sets CKA_DECRYPT and CKA_UNWRAP on every private key it
// writes, whatever use says.
func (h *SoftHSM) ImportKey(t testing.TB, label string, key crypto.Signer, id []byte, objLabel string, use KeyUse) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	args := []string{"--write-object", h.writeTemp(t, "key-*.p8", der), "--type", "privkey",
		"--id", hex.EncodeToString(id), "--label", objLabel}
	if use.Sign {
		args = append(args, "--usage-sign")
	}
	if use.Decrypt {
		args = append(args, "--usage-decrypt")
	}
	if use.Derive {
		args = append(args, "--usage-derive")
	}
	h.tool(t, label, args...)
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	h.tool(t, label, "--write-object", h.writeTemp(t, "pub-*.der", pub), "--type", "pubkey",
		"--id", hex.EncodeToString(id), "--label", objLabel)
}

// ImportCert writes a DER certificate to the token labelled label ("" for
// the first) with CKA_ID id and CKA_LABEL objLabel, using pkcs11-tool.
func (h *SoftHSM) ImportCert(t testing.TB, label string, der, id []byte, objLabel string) {
	t.Helper()
	h.tool(t, label, "--write-object", h.writeTemp(t, "cert-*.der", der), "--type", "cert",
		"--id", hex.EncodeToString(id), "--label", objLabel)
}

// Key algorithms for Identity.
const (
	RSA1024 = "rsa1024"
	RSA2048 = "rsa2048"
	RSA3072 = "rsa3072"
	P256    = "p256"
	P384    = "p384"
)

// IdentitySpec describes a key pair and certificate to create.
type IdentitySpec struct {
	Token       string // token label; "" for the first token
	Alg         string // RSA2048 (default), RSA1024, RSA3072, P256 or P384
	ID          []byte // CKA_ID of the key and the certificate
	Label       string // CKA_LABEL of the key and the certificate
	Subject     string // certificate CN; Label when empty
	KeyUsage    x509.KeyUsage
	ExtKeyUsage []x509.ExtKeyUsage
	UnknownEKU  []asn1.ObjectIdentifier // EKUs Go does not name (id-PIV-cardAuth...)
	IsCA        bool
	NoKey       bool   // write only the certificate
	Use         KeyUse // zero: sign, plus decrypt for RSA and derive for EC
}

// Identity is a key pair and self-signed certificate written to a token.
// Key is the Go private key, for a test that must compute what the token
// should answer; tests verify with Key.Public() or Cert.
type Identity struct {
	ID    []byte
	Label string
	Key   crypto.Signer
	Cert  *x509.Certificate
}

// Public returns the identity's public key.
func (id *Identity) Public() crypto.PublicKey { return id.Key.Public() }

// AddIdentity takes a key generated in Go (each identity of a SoftHSM has
// its own; keys are reused across the SoftHSMs of a process), makes a self-signed certificate with
// the spec's key usage, and writes both to the token.
func (h *SoftHSM) AddIdentity(t testing.TB, spec IdentitySpec) *Identity {
	t.Helper()
	if spec.Alg == "" {
		spec.Alg = RSA2048
	}
	key := h.nextKey(t, spec.Alg)
	cn := spec.Subject
	if cn == "" {
		cn = spec.Label
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              spec.KeyUsage,
		ExtKeyUsage:           spec.ExtKeyUsage,
		UnknownExtKeyUsage:    spec.UnknownEKU,
		BasicConstraintsValid: true,
		IsCA:                  spec.IsCA,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("harness: creating certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	if !spec.NoKey {
		use := spec.Use
		if use == (KeyUse{}) {
			_, isRSA := key.(*rsa.PrivateKey)
			use = KeyUse{Sign: true, Decrypt: isRSA, Derive: !isRSA}
		}
		h.ImportKey(t, spec.Token, key, spec.ID, spec.Label, use)
	}
	h.ImportCert(t, spec.Token, der, spec.ID, spec.Label)
	return &Identity{ID: bytes.Clone(spec.ID), Label: spec.Label, Key: key, Cert: cert}
}

// keyPool keeps the keys AddIdentity generated, so that the tests of one
// process generate each (slow) RSA key once. Within one SoftHSM every
// identity gets a key of its own.
var keyPool struct {
	sync.Mutex
	keys map[string][]crypto.Signer
}

// nextKey returns the next key of alg for this SoftHSM.
func (h *SoftHSM) nextKey(t testing.TB, alg string) crypto.Signer {
	t.Helper()
	if h.used == nil {
		h.used = make(map[string]int)
	}
	i := h.used[alg]
	h.used[alg]++
	keyPool.Lock()
	defer keyPool.Unlock()
	if keyPool.keys == nil {
		keyPool.keys = make(map[string][]crypto.Signer)
	}
	for len(keyPool.keys[alg]) <= i {
		var key crypto.Signer
		var err error
		switch alg {
		case RSA1024:
			key, err = rsa.GenerateKey(rand.Reader, 1024)
		case RSA2048:
			key, err = rsa.GenerateKey(rand.Reader, 2048)
		case RSA3072:
			key, err = rsa.GenerateKey(rand.Reader, 3072)
		case P256:
			key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		case P384:
			key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		default:
			t.Fatalf("harness: unknown algorithm %q", alg)
		}
		if err != nil {
			t.Fatalf("harness: generating key: %v", err)
		}
		keyPool.keys[alg] = append(keyPool.keys[alg], key)
	}
	return keyPool.keys[alg][i]
}

// Objects lists the token's objects as pkcs11-tool prints them (logged in).
func (h *SoftHSM) Objects(t testing.TB, label string) string {
	t.Helper()
	return h.tool(t, label, "--list-objects")
}
