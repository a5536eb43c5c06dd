package testcard

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/vpcd"
)

// ErrInserted is returned by Insert when the card is already in a reader.
var ErrInserted = errors.New("testcard: already inserted")

// Insert puts the card into the vpcd slot at addr ("host:port"): it connects
// in the background and keeps reconnecting (backoff capped at 500 ms) if
// pcscd goes away and comes back, until Remove. The card is in the reader
// once vpcd has accepted the connection, at its next presence poll.
func (c *Card) Insert(addr string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		return ErrInserted
	}
	conn, err := vpcd.Dial(context.Background(), addr, vpcd.Config{
		Handler:    c,
		Reconnect:  true,
		MaxBackoff: 500 * time.Millisecond,
		Logger:     c.log,
	})
	if err != nil {
		return err
	}
	c.conn = conn
	return nil
}

// removeWait bounds how long Remove waits for vpcd's next presence poll
// (every 400 ms while pcscd runs).
const removeWait = 2 * time.Second

// Remove pulls the card out so that pcscd sees it go (see
// vpcd.Card.Remove: the card answers vpcd's presence checks with "no card"
// until pcscd has recorded the absence, 400 to 800 ms). It waits at most
// 2 s for those checks (a mute card never gets them; it is then just
// disconnected). A mute command in progress is dropped. Remove does nothing
// when the card is not inserted.
func (c *Card) Remove() {
	c.mu.Lock()
	conn := c.conn
	c.conn = nil
	c.mu.Unlock()
	if conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), removeWait)
		conn.Remove(ctx)
		cancel()
	}
}

// Inserted reports whether the card has been inserted (and not removed).
func (c *Card) Inserted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil
}

// Connected reports whether the card has a live connection to vpcd.
func (c *Card) Connected() bool {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	return conn != nil && conn.Connected()
}

// Start returns a new card inserted into the vpcd slot at addr; it is removed
// when t ends.
func Start(t testing.TB, addr string, opts Options) *Card {
	t.Helper()
	c := New(opts)
	if err := c.Insert(addr); err != nil {
		t.Fatalf("testcard: %v", err)
	}
	t.Cleanup(c.Remove)
	return c
}
