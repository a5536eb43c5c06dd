package guest_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	e2e "github.com/vscardkit/vscardkit/internal/e2e/guest"
	"github.com/vscardkit/vscardkit/internal/guest"
	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/piv"
	"github.com/vscardkit/vscardkit/xmlconfig"
)

// floorClient is the least a VSCard client can be: it announces a reader
// and a card with the PIV applet's ATR (so the guest's PC/SC stack picks
// the same protocol as with vscclient-go) and answers every APDU with the
// same bytes (90 00 for the floor), one write per message (Go sets
// TCP_NODELAY). Written from
// libcacard's vscard_common.h with net and encoding/binary only, so that
// nothing of vscardkit's own transport is in the floor.
type floorClient struct {
	resp []byte
	conn net.Conn
	done chan struct{}
	err  error // why serve stopped; set before done is closed
}

// VSCard message types (vscard_common.h).
const (
	vscInit      = 1
	vscError     = 2
	vscReaderAdd = 3
	vscATR       = 5
	vscAPDU      = 7
)

// dialFloor connects to QEMU's chardev at addr and answers every APDU with
// resp.
func dialFloor(ctx context.Context, addr string, resp []byte) (*floorClient, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	f := &floorClient{resp: resp, conn: conn, done: make(chan struct{})}
	init := binary.BigEndian.AppendUint32([]byte("VSCD"), 2) // version 0.0.2
	init = binary.BigEndian.AppendUint32(init, 0)            // no capabilities
	const undefinedReader = 0xffffffff
	for _, m := range []struct {
		typ, reader uint32
		payload     []byte
	}{
		{vscInit, undefinedReader, init},
		{vscReaderAdd, undefinedReader, []byte("floor")},
		{vscATR, 0, piv.ATR()},
	} {
		if err := f.send(m.typ, m.reader, m.payload); err != nil {
			conn.Close()
			return nil, err
		}
	}
	go f.serve()
	return f, nil
}

func (f *floorClient) send(typ, reader uint32, payload []byte) error {
	b := binary.BigEndian.AppendUint32(nil, typ)
	b = binary.BigEndian.AppendUint32(b, reader)
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	_, err := f.conn.Write(append(b, payload...))
	return err
}

// serve answers APDUs with 90 00 and ignores QEMU's other messages (its
// Init and its Error answers) until the connection ends.
func (f *floorClient) serve() {
	defer close(f.done)
	br := bufio.NewReader(f.conn)
	var h [12]byte
	for {
		if _, err := io.ReadFull(br, h[:]); err != nil {
			f.err = err
			return
		}
		typ, n := binary.BigEndian.Uint32(h[0:]), binary.BigEndian.Uint32(h[8:])
		if n > 1<<16 {
			f.err = fmt.Errorf("QEMU sent a message of %d bytes", n)
			return
		}
		if _, err := br.Discard(int(n)); err != nil {
			f.err = err
			return
		}
		if typ == vscAPDU {
			if err := f.send(vscAPDU, 0, f.resp); err != nil {
				f.err = err
				return
			}
		}
	}
}

// Close closes the connection and waits for serve.
func (f *floorClient) Close() error {
	f.conn.Close()
	<-f.done
	if f.err != nil && !errors.Is(f.err, net.ErrClosed) && !errors.Is(f.err, io.EOF) {
		return f.err
	}
	return nil
}

// The SELECTs the guest times. selectNoData (P2 0C: no response data) is
// answered with 90 00 alone by the PIV applet as by floorClient. selectFCI
// is answered with the applet's 62-byte application property template and
// 90 00: a 74-byte CCID message, two 64-byte USB packets, which costs the
// guest more (UHCI moves packets in 1 ms frames) whatever the client; its
// floor answers as many bytes (TestSoftCard checks the length).
const (
	selectNoData = "00a4040c09a00000030800001000"
	selectFCI    = "00a4040009a00000030800001000"
	fciLen       = 62 // the template's length, without the status word
)

// pairs counts the floor/vscclient-go pairs measured in this process, to
// alternate which goes first.
var pairs int

// BenchmarkGuestAPDULatency: what one APDU costs a real guest, timed by
// the guest itself. A measurement boots the guest, which sends 200
// SELECTs of the PIV application in ONE opensc-tool call and reports
// (time of that call - time of a 1-APDU call) / 199. Each iteration
// measures, in turn (the order alternating from pair to pair, so that a
// change in the machine's load hits both alike):
//
//   - the floor: the chardev with nodelay=on (xmlconfig's argv for users
//     without libvirt) and floorClient, which answers every APDU with the
//     same bytes: what QEMU, the guest's USB and PC/SC stack cost alone;
//   - vscclient-go: libvirt's chardev (no nodelay) and the built
//     vscclient-go --card soft, whose PIV applet answers the SELECT.
//
// Metrics: floor-us/apdu and vscclient-go-us/apdu (means over the
// iterations), x-floor (their ratio) and boot-ms (QEMU's start to the
// guest's reader being listed). Sub-benchmarks: select (P2 0C, answered
// 90 00 by both) and select-fci (the 62-byte template and 90 00, the floor
// answering as many bytes).
func BenchmarkGuestAPDULatency(b *testing.B) {
	soft := func(b *testing.B, c xmlconfig.Config) func() {
		p := startClient(b, c, nil, "--card", "soft")
		return func() { p.Stop() }
	}
	for _, v := range []struct {
		name, apdu string
		floorResp  []byte
	}{
		{"select", selectNoData, []byte{0x90, 0x00}},
		{"select-fci", selectFCI, append(make([]byte, fciLen), 0x90, 0x00)},
	} {
		floor := func(b *testing.B, c xmlconfig.Config) func() {
			f, err := dialFloor(b.Context(), net.JoinHostPort(xmlconfig.DefaultHost, strconv.Itoa(c.Port)), v.floorResp)
			if err != nil {
				b.Fatal(err)
			}
			return func() {
				if err := f.Close(); err != nil {
					b.Error(err)
				}
			}
		}
		b.Run(v.name, func(b *testing.B) {
			testImage(b)
			var floorSum, clientSum, bootSum float64
			n := 0
			for b.Loop() {
				measure := []func() (float64, float64){
					func() (float64, float64) {
						per, boot := guestLatency(b, false, v.apdu, floor)
						floorSum += per
						return per, boot
					},
					func() (float64, float64) {
						per, boot := guestLatency(b, true, v.apdu, soft)
						clientSum += per
						return per, boot
					},
				}
				if pairs%2 == 1 {
					slices.Reverse(measure)
				}
				pairs++
				for _, m := range measure {
					_, boot := m()
					bootSum += boot
				}
				n++
			}
			b.ReportMetric(floorSum/float64(n), "floor-us/apdu")
			b.ReportMetric(clientSum/float64(n), "vscclient-go-us/apdu")
			b.ReportMetric(clientSum/floorSum, "x-floor")
			b.ReportMetric(bootSum/float64(2*n), "boot-ms")
		})
	}
}

// guestLatency boots the guest with the latency scenario for apdu and
// client connected to the chardev (libvirt's when libvirtChardev, else
// with nodelay=on), and returns the guest's per-APDU time in µs and the
// time from QEMU's start to the reader being listed in ms.
func guestLatency(b *testing.B, libvirtChardev bool, apdu string, client func(*testing.B, xmlconfig.Config) (stop func())) (per, bootMS float64) {
	ctx, cancel := context.WithTimeout(b.Context(), 2*time.Minute)
	defer cancel()
	c := e2e.Smartcard(harness.FreePort(b))
	c.LibvirtChardev = libvirtChardev
	opts := bootOptions(b, c, "wait_card,latency", map[string]string{"count": "200", "apdu": apdu})
	vm := boot(b, ctx, c, opts)
	stop := client(b, c)
	res, err := vm.Wait(ctx)
	stop()
	vm.Close()
	if err != nil {
		b.Fatalf("the guest: %v\n%s", err, vm.Console())
	}
	us, err := res.Int("per_apdu_us")
	if err != nil {
		b.Fatal(err)
	}
	if res.Values["responses"] != "200" {
		b.Fatalf("opensc-tool printed %s responses to 200 SELECTs", res.Values["responses"])
	}
	for _, m := range res.Markers {
		if m.Kind == guest.KindEvent && m.Name == "reader" {
			bootMS = float64(m.At.Milliseconds())
			break
		}
	}
	return float64(us), bootMS
}
