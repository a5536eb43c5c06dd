package softstore

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"

	"github.com/vscardkit/vscardkit/internal/piv"
)

// pinState is the PIN as the store keeps it: an HMAC-SHA-256 under a random
// key, never the PIN itself. Its methods are called with Store.mu held.
type pinState struct {
	key      [32]byte
	hash     []byte
	max      int
	left     int
	loggedIn bool
}

func (p *pinState) init(opts Options) error {
	pin := []byte(opts.PIN)
	if len(pin) == 0 {
		pin = []byte(DefaultPIN)
	}
	defer clear(pin)
	if err := checkPINFormat(pin); err != nil {
		return err
	}
	p.max = opts.MaxTries
	if p.max <= 0 {
		p.max = DefaultMaxTries
	}
	p.left = p.max
	rand.Read(p.key[:])
	p.set(pin)
	return nil
}

func checkPINFormat(pin []byte) error {
	if len(pin) == 0 || len(pin) > 8 || bytes.IndexByte(pin, 0xFF) >= 0 {
		return fmt.Errorf("softstore: a PIN is 1 to 8 bytes, none of them FF: %w", piv.ErrPINFormat)
	}
	return nil
}

func (p *pinState) sum(pin []byte) []byte {
	m := hmac.New(sha256.New, p.key[:])
	m.Write(pin)
	return m.Sum(nil)
}

func (p *pinState) set(pin []byte) { p.hash = p.sum(pin) }

// check verifies pin, counting a wrong one.
func (p *pinState) check(pin []byte) error {
	if p.left == 0 {
		return fmt.Errorf("softstore: %w", piv.ErrPINBlocked)
	}
	if !hmac.Equal(p.sum(pin), p.hash) {
		p.left--
		p.loggedIn = false
		return &piv.PINError{Retries: p.left}
	}
	p.left = p.max
	p.loggedIn = true
	return nil
}
