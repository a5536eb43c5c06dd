package piv_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/vscardkit/vscardkit/internal/harness"
)

// hexForms returns b in hex, lower case, contiguous and with the separators
// dumps use.
func hexForms(b []byte) []string {
	h := hex.EncodeToString(b)
	forms := []string{h}
	for _, sep := range []string{" ", ":", "-"} {
		var parts []string
		for i := 0; i < len(h); i += 2 {
			parts = append(parts, h[i:i+2])
		}
		forms = append(forms, strings.Join(parts, sep))
	}
	return forms
}

// pinForms are the ways a PIN could show up in a log: as text, as Go
// prints a byte slice, and as the hex of its bytes and of the FF-padded
// VERIFY block. They are lower case: callers search a lower-cased log, so
// that every case of the letters is covered.
func pinForms(pin string) []string {
	block := bytes.Repeat([]byte{0xFF}, 8)
	copy(block, pin)
	forms := []string{strings.ToLower(pin), fmt.Sprint([]byte(pin))}
	forms = append(forms, hexForms([]byte(pin))...)
	return append(forms, hexForms(block)...)
}

// notLogged fails the test when any of procs printed one of forms (lower
// case), showing the first line that has one.
func notLogged(t *testing.T, what string, forms []string, procs ...*harness.Process) {
	t.Helper()
	for _, p := range procs {
		out := p.Output()
		low := strings.ToLower(out)
		for _, f := range forms {
			if i := strings.Index(low, f); i >= 0 {
				t.Errorf("%s printed %s (as %q) in:\n%s", p.Name, what, f, lineAt(out, i))
				break
			}
		}
	}
}

// requireTraced fails the test unless every one of procs printed a line
// that re matches: proof that a notLogged check looked at a log in which
// the secret had its chance to appear.
func requireTraced(t *testing.T, re *regexp.Regexp, procs ...*harness.Process) {
	t.Helper()
	for _, p := range procs {
		if !re.MatchString(p.Output()) {
			t.Errorf("%s traced no line matching %s: the check would be vacuous:\n%s", p.Name, re, tail(p.Output(), 10))
		}
	}
}

// verifiedRE matches a traced VERIFY of the PIN that succeeded, as
// vscclient-go's --apdu-trace and fake-ccid-server's event lines print it.
var verifiedRE = regexp.MustCompile(`command="0020008008<redacted 8 bytes>" response=9000`)

// assertNoPIN fails the test if any of procs printed pin in any form. Each
// must have traced at least one successful, redacted VERIFY.
func assertNoPIN(t *testing.T, pin string, procs ...*harness.Process) {
	t.Helper()
	requireTraced(t, verifiedRE, procs...)
	notLogged(t, "the PIN", pinForms(pin), procs...)
}

// sessionKey is what the tests encrypt to the key management key and have
// the card decrypt: random, so that it cannot show up in a log by chance.
var sessionKey = func() []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}()

// decipherRE matches a traced GENERAL AUTHENTICATE with the key management
// key (9D) of an RSA 2048 key (algorithm 07), whole or chained.
var decipherRE = regexp.MustCompile(`command="?[01]087079D`)

// assertNoSessionKey fails the test if any of procs printed sessionKey
// after the card decrypted it. A long response reaches the guest in pieces
// (61xx, GET RESPONSE), so any 8 bytes of the key in a log count.
func assertNoSessionKey(t *testing.T, procs ...*harness.Process) {
	t.Helper()
	requireTraced(t, decipherRE, procs...)
	var forms []string
	for i := 0; i+8 <= len(sessionKey); i++ {
		forms = append(forms, hexForms(sessionKey[i:i+8])...)
	}
	notLogged(t, "the decrypted session key", forms, procs...)
}

// lineAt returns the line of s around byte offset i.
func lineAt(s string, i int) string {
	start := strings.LastIndexByte(s[:i], '\n') + 1
	end := strings.IndexByte(s[i:], '\n')
	if end < 0 {
		return s[start:]
	}
	return s[start : i+end]
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
