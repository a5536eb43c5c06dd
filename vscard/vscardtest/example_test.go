package vscardtest_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/vscardkit/vscardkit/vscard"
	"github.com/vscardkit/vscardkit/vscard/vscardtest"
)

// A test of a VSCard client: the fake QEMU listens on loopback, the client
// under test connects and announces its card, and the test plays the guest.
// Here the client is vscard's, with a Handler as its card.
func Example() {
	srv := vscardtest.NewServer()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The client under test: a card that answers every command 90 00.
	card := vscard.HandlerFunc(func(cmd *vscard.Command) { cmd.Respond([]byte{0x90, 0x00}) })
	c, err := vscard.Dial(ctx, "tcp", srv.Addr(), &vscard.DialConfig{ClientConfig: vscard.ClientConfig{Handler: card}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	id, err := c.AddReader(ctx, "Example Reader")
	if err != nil {
		log.Fatal(err)
	}
	if err := c.InsertCard(ctx, id, []byte{0x3B, 0x80, 0x80, 0x01, 0x01}); err != nil {
		log.Fatal(err)
	}

	// What QEMU saw, then the guest's SELECT.
	ev, err := srv.WaitEvent(ctx, vscardtest.EventCardInserted)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("card inserted, ATR % X\n", ev.ATR)
	resp, err := srv.Transmit(ctx, []byte{0x00, 0xA4, 0x04, 0x00})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("guest got % X\n", resp)
	// Output:
	// card inserted, ATR 3B 80 80 01 01
	// guest got 90 00
}
