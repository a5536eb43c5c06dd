package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/apdu"
	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/testcard"
	"github.com/vscardkit/vscardkit/reader"
	"github.com/vscardkit/vscardkit/vscard"
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

// BenchmarkSoftCard measures vscclient-go --card soft against the least a
// client can do, in one run: two raw hosts that write like QEMU under
// libvirt (header and payload in two writes, no TCP_NODELAY) and do nothing
// else send the PIV SELECT in turn, one to vscclient-go and one to
// minclient, which answers the same response bytes with nothing in between.
// It reports each one's median round trip ("vscclient-µs", "minimal-µs")
// and their ratio ("ratio"), vscclient-go's time from start to the ATR at
// the host ("start-ms"), and its peak resident set after 20,000 SELECTs
// ("peak-rss-MiB"; minclient's beside it) with, of that, its anonymous
// memory ("anon-MiB": heap and stacks; the rest is the clean, shared file
// pages of the binary and libc, which the kernel maps in large folios, so
// that they count about the binary's size). It runs with the chardev libvirt
// makes ("libvirt": no TCP_NODELAY, so each payload waits for the client to
// acknowledge its header) and with QEMU's nodelay=on ("nodelay", as
// vscclient-go config --format argv writes it).
func BenchmarkSoftCard(b *testing.B) {
	for _, nodelay := range []bool{false, true} {
		name := "libvirt"
		if nodelay {
			name = "nodelay"
		}
		b.Run(name, func(b *testing.B) { benchmarkSoftCard(b, nodelay) })
	}
}

func benchmarkSoftCard(b *testing.B, nodelay bool) {
	bin := harness.Commands(b)
	selectPIV := []byte{0x00, 0xA4, 0x04, 0x00, 0x09, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x00}
	roundTrip := func(c *harness.RawConn) []byte {
		m, err := c.RoundTrip(selectPIV)
		if err != nil || m.Type != vscard.MsgAPDU {
			b.Fatalf("SELECT answered %v %X, %v", m.Type, m.Payload, err)
		}
		return m.Payload
	}
	warm := func(c *harness.RawConn, pid int) (peak, anon int64) {
		for range 20000 {
			roundTrip(c)
		}
		peak, err := harness.PeakRSS(pid)
		if err == nil {
			anon, err = harness.RSSAnon(pid)
		}
		if err != nil {
			b.Fatal(err)
		}
		return peak, anon
	}

	vh := harness.NewRawHost(b)
	vh.SplitWrites, vh.NoDelay = true, nodelay
	host, port, _ := net.SplitHostPort(vh.Addr())
	start := time.Now()
	vproc := harness.Start(b, "vscclient-go", exec.Command(filepath.Join(bin, "vscclient-go"), "--card", "soft", "--log-level", "warn", host, port))
	defer vproc.Stop()
	vc := vh.Accept(b, 30*time.Second)
	startup := time.Since(start)
	want := roundTrip(vc)
	if apdu.Response(want).SW() != apdu.SWOK {
		b.Fatalf("SELECT answered %X", want)
	}
	vrss, vanon := warm(vc, vproc.PID())

	mh := harness.NewRawHost(b)
	mh.SplitWrites, mh.NoDelay = true, nodelay
	mproc := harness.Start(b, "minclient", exec.Command(filepath.Join(bin, "minclient"),
		"--atr", fmt.Sprintf("%X", vc.ATR), "--response", fmt.Sprintf("%X", want), mh.Addr()))
	defer mproc.Stop()
	mc := mh.Accept(b, 30*time.Second)
	mrss, manon := warm(mc, mproc.PID())

	var vd, md []time.Duration
	timed := func(c *harness.RawConn, d *[]time.Duration) {
		t0 := time.Now()
		resp := roundTrip(c)
		*d = append(*d, time.Since(t0))
		if !bytes.Equal(resp, want) {
			b.Fatalf("SELECT = %X, want %X", resp, want)
		}
	}
	for b.Loop() {
		timed(vc, &vd)
		timed(mc, &md)
	}
	vm, mm := median(vd), median(md)
	b.ReportMetric(float64(vm)/float64(time.Microsecond), "vscclient-µs")
	b.ReportMetric(float64(mm)/float64(time.Microsecond), "minimal-µs")
	b.ReportMetric(float64(vm)/float64(mm), "ratio")
	b.ReportMetric(float64(startup)/float64(time.Millisecond), "start-ms")
	b.ReportMetric(float64(vrss)/(1<<20), "peak-rss-MiB")
	b.ReportMetric(float64(mrss)/(1<<20), "minimal-peak-rss-MiB")
	b.ReportMetric(float64(vanon)/(1<<20), "anon-MiB")
	b.ReportMetric(float64(manon)/(1<<20), "minimal-anon-MiB")
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
