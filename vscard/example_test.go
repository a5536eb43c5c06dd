package vscard_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/vscardkit/vscardkit/vscard"
	"github.com/vscardkit/vscardkit/vscard/vscardtest"
)

// A client announces a reader and a card, then answers the host's
// commands. Here the host is the fake QEMU from vscardtest; in real use the
// address is the chardev of QEMU's ccid-card-passthru.
func Example() {
	host := vscardtest.NewServer()
	defer host.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := vscard.Dial(ctx, "tcp", host.Addr(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// Clear what an earlier session may have left, then announce.
	c.RemoveReader(ctx, vscard.MinimalReaderID)
	id, err := c.AddReader(ctx, "Example Reader")
	if err != nil {
		log.Fatal(err)
	}
	if err := c.InsertCard(ctx, id, []byte{0x3B, 0x80, 0x80, 0x01, 0x01}); err != nil {
		log.Fatal(err)
	}

	// The card: answer every command with 90 00.
	go func() {
		for cmd := range c.Commands() {
			cmd.Respond([]byte{0x90, 0x00})
		}
	}()

	// The guest sends SELECT.
	resp, err := host.Transmit(ctx, []byte{0x00, 0xA4, 0x04, 0x00})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("guest got % X\n", resp)
	// Output: guest got 90 00
}

// CheckATR tells whether QEMU will accept a card's answer to reset.
func ExampleCheckATR() {
	fmt.Println(vscard.CheckATR([]byte{0x3B, 0x80, 0x80, 0x01, 0x01}))
	fmt.Println(vscard.CheckATR([]byte{0x3B, 0x02, 0x01}))
	// Output:
	// <nil>
	// vscard: ATR 3B0201 is inconsistent (QEMU refuses it): malformed message
}
