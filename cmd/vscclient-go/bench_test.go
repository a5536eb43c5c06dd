package main

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/apdu"
	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/testcard"
	"github.com/vscardkit/vscardkit/reader"
	"github.com/vscardkit/vscardkit/vscard/vscardtest"
)

// BenchmarkAPDURoundTrip compares, in one run and on the same card, a Go
// program calling SCardTransmit directly ("direct") with the whole bridge
// path: fake host -> vscclient-go -> pcscd -> vpcd -> test card
// ("vscclient-go"). The fake host writes like QEMU under libvirt (header and
// payload in two writes, no TCP_NODELAY). Each reports the median and p90
// round trip.
func BenchmarkAPDURoundTrip(b *testing.B) {
	p := harness.StartPCSCD(b, harness.PCSCDOptions{InProcess: true})
	testcard.Start(b, p.VPCDAddr(0), testcard.Options{})
	cmd, _ := apdu.Command{INS: 0xA4, P1: 0x04, Data: testcard.TestAID}.Bytes()
	ok := func(resp []byte, err error) error {
		if err != nil {
			return err
		}
		if apdu.Response(resp).SW() != apdu.SWOK {
			b.Fatalf("SELECT answered %X", resp)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	b.Run("direct", func(b *testing.B) {
		var c *reader.Card
		harness.WaitFor(b, 10*time.Second, "a card to connect to in "+p.Readers[0], func() bool {
			var err error
			c, err = reader.Connect(ctx, p.Readers[0], nil)
			return err == nil
		})
		defer c.Close()
		harness.BenchRoundTrips(b, func() error { return ok(c.Transmit(ctx, cmd)) })
	})

	b.Run("vscclient-go", func(b *testing.B) {
		srv := vscardtest.NewServer()
		defer srv.Close()
		host, port, _ := net.SplitHostPort(srv.Addr())
		c := exec.Command(filepath.Join(harness.Commands(b), "vscclient-go"), "--card", "pcsc", "--log-level", "warn", host, port)
		c.Env = append(c.Environ(), p.Env())
		proc := harness.Start(b, "vscclient-go", c)
		defer proc.Stop()
		if _, err := srv.WaitEvent(ctx, vscardtest.EventCardInserted); err != nil {
			b.Fatal(err)
		}
		harness.BenchRoundTrips(b, func() error { return ok(srv.Transmit(ctx, cmd)) })
	})
}
