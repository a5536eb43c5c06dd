//go:build cgo

// The tests in this file talk to a real pcscd; a build without cgo has no
// PC/SC (nocgo_test.go tests what it does instead).

package reader_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/reader"
)

// extendedAPDU builds the extended case-4 command 80 INS 00 00 with data and
// Le 0000.
func extendedAPDU(ins byte, data []byte) []byte {
	out := []byte{0x80, ins, 0, 0, 0, byte(len(data) >> 8), byte(len(data))}
	return append(append(out, data...), 0, 0)
}

// waitReader waits until List shows the named reader in the state cond
// wants, and returns it.
func waitReader(t testing.TB, name, what string, cond func(reader.Reader) bool) reader.Reader {
	t.Helper()
	var got reader.Reader
	harness.WaitFor(t, 10*time.Second, what, func() bool {
		rs, err := reader.List(context.Background())
		if err != nil {
			return false
		}
		for _, r := range rs {
			if r.Name == name && cond(r) {
				got = r
				return true
			}
		}
		return false
	})
	return got
}

func cardIn(r reader.Reader) bool  { return r.CardPresent }
func cardOut(r reader.Reader) bool { return !r.CardPresent }

// connectWhenPresent waits for a card in the reader and connects to it; the
// card is closed when t ends.
func connectWhenPresent(t testing.TB, name string, opts *reader.ConnectOptions) *reader.Card {
	t.Helper()
	waitReader(t, name, "a card in "+name, cardIn)
	c, err := reader.Connect(context.Background(), name, opts)
	if err != nil {
		t.Fatalf("Connect(%q): %v", name, err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil && !errors.Is(err, reader.ErrNoService) {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}
