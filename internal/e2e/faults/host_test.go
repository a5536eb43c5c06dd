package faults_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/vscard"
	"github.com/vscardkit/vscardkit/vscard/vscardtest"
)

// The host process killed (SIGKILL) while the guest's command is at the
// card: fake-ccid-server plays the guest with a script, the test card is
// mute so that the command is still outstanding when the host dies. The
// client notices, waits, and once a host listens again and the card answers,
// announces the card and serves the next command. The answer to the killed
// host's command goes nowhere: the new host gets no stray response.
func TestHostKilledMidAPDU(t *testing.T) {
	r := startPCSCRig(t)
	script := filepath.Join(t.TempDir(), "status.apdu")
	if err := os.WriteFile(script, []byte(fmt.Sprintf("%X 9000\n", statusCmd)), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(harness.FreePort(t)))
	host := harness.Start(t, "fake-ccid-server", exec.Command(filepath.Join(harness.Commands(t), "fake-ccid-server"),
		"--listen", addr, "--script", script))
	harness.WaitListening(t, host, addr, 10*time.Second)
	r.card.Mute(true)
	p := r.client(t, addr)
	mem := sample(t, p.PID())
	harness.WaitFor(t, 20*time.Second, "the script's command at the card", func() bool { return r.card.Transmits() >= 1 })
	if !strings.Contains(host.Output(), "card-inserted") {
		t.Fatalf("fake-ccid-server did not print the card's insertion:\n%s", host.Output())
	}
	host.Kill()
	killed := time.Now()

	srv := restartServer(t, addr)
	r.card.Mute(false)
	harness.WaitFor(t, 20*time.Second, "the card announced to the new host", func() bool { return srv.Host().State().CardPresent })
	transmitOK(t, srv, statusCmd)
	recovered := time.Since(killed)
	waitLog(t, p, time.Second, "lost the host", 1)
	events := srv.Events()
	for _, e := range events {
		if e.Kind == vscardtest.EventUnexpected {
			t.Errorf("the new host got a stray %v", e.Type)
		}
	}
	finish(t, p)
	mem.Stop()
	report(t, row{
		fault:     "host killed mid-APDU (SIGKILL, command at a mute card)",
		hostSaw:   "nothing (dead); the next host: " + kinds(events) + "; no stray response",
		recovered: recovered,
		peak:      mem.Peak(),
	})
}

// The connection reset (RST) in the middle of a message from the host:
// its command cut after the header and half the payload. The client
// notices, reconnects and announces the card again; the host's pending
// command ends with the card's removal (the client's ReaderRemove on
// reconnection), and the next command works.
func TestConnectionResetMidFrameToClient(t *testing.T) {
	srv := vscardtest.NewServer()
	defer srv.Close()
	px := newProxy(t, srv.Addr())
	p := startClient(t, nil, append([]string{"--card", "soft", "--max-backoff", "200ms"}, hostPort(px.Addr())...)...)
	mem := sample(t, p.PID())
	waitEvent(t, srv, 20*time.Second, vscardtest.EventCardInserted)
	transmitOK(t, srv, selectPIV)

	px.CutAfter(toClient, vscard.HeaderLen+int64(len(selectPIV))/2)
	_, err := srv.Transmit(ctxT(t, 20*time.Second), selectPIV)
	if !errors.Is(err, vscardtest.ErrCardRemoved) {
		t.Fatalf("the command cut in the middle: %v, want the card removed", err)
	}
	cut := time.Now()
	if px.Cuts() != 1 {
		t.Fatalf("%d cuts", px.Cuts())
	}
	var saw []string
	for _, e := range srv.Events() {
		saw = append(saw, e.Kind.String())
	}
	waitEvent(t, srv, 10*time.Second, vscardtest.EventCardInserted)
	transmitOK(t, srv, selectPIV)
	recovered := time.Since(cut)
	waitLog(t, p, time.Second, "lost the host", 1)
	finish(t, p)
	mem.Stop()
	report(t, row{
		fault:     "connection reset mid-frame, host to client",
		hostSaw:   "pending APDU failed with ErrCardRemoved (ReaderRemove on reconnection); events " + strings.Join(saw, ", "),
		recovered: recovered,
		peak:      mem.Peak(),
	})
}

// The connection reset in the middle of the client's response. QEMU keeps
// the bytes of an unfinished message across connections (the fake host
// does the same; TestConnectionResetMidFrameToQEMU shows it on QEMU), so
// the client's next Init completes the old response: the guest gets a
// corrupt response, and the rest of the Init starts a message too long for
// QEMU's buffer, which wedges the card device until the VM restarts. No
// client can undo that; vscclient-go must keep trying without harm, say
// what to do, and come back once the VM (here the fake host) is reset.
func TestConnectionResetMidFrameToHost(t *testing.T) {
	srv := vscardtest.NewServer()
	defer srv.Close()
	px := newProxy(t, srv.Addr())
	p := startClient(t, nil, append([]string{"--card", "soft", "--max-backoff", "200ms"}, hostPort(px.Addr())...)...)
	mem := sample(t, p.PID())
	waitEvent(t, srv, 20*time.Second, vscardtest.EventCardInserted)
	want := transmitOK(t, srv, selectPIV)

	// Cut two bytes before the end of the response: the next connection's
	// Init supplies them.
	px.CutAfter(toHost, vscard.HeaderLen+int64(len(want))-2)
	got, err := srv.Transmit(ctxT(t, 20*time.Second), selectPIV)
	if err != nil {
		t.Fatalf("the response cut in the middle: %v; want it completed with the next connection's bytes", err)
	}
	if bytes.Equal(got, want) || !bytes.Equal(got[:len(want)-2], want[:len(want)-2]) {
		t.Fatalf("response %X; want %X with its last two bytes from the next Init", got, want)
	}
	waitLog(t, p, 15*time.Second, "did not answer Init", 1)
	waitLog(t, p, time.Second, "restart the VM", 1)

	// The VM restarts: the host forgets its buffer once no client is
	// connected (between two of the client's attempts).
	harness.WaitFor(t, 20*time.Second, "the host reset between two connections", func() bool {
		srv.CloseClientConnections()
		return srv.Host().Reset() == nil
	})
	reset := time.Now()
	waitEvent(t, srv, 20*time.Second, vscardtest.EventCardInserted)
	transmitOK(t, srv, selectPIV)
	recovered := time.Since(reset)
	finish(t, p)
	mem.Stop()
	report(t, row{
		fault:     "connection reset mid-frame, client to host",
		hostSaw:   fmt.Sprintf("a corrupt response (its last 2 bytes from the next Init), then a wedged card device, as QEMU; client said %q", "restart the VM"),
		recovered: recovered,
		peak:      mem.Peak(),
	})
}

// A host that stops reading while it keeps sending commands whose answers
// are long: the client answers until TCP pushes back, then stops reading
// too (its command queue is bounded), so the host's writes block; after its
// write timeout (10 s) it drops the connection and reconnects.
func TestHostStopsReading(t *testing.T) {
	h := harness.NewRawHost(t)
	p := startClient(t, nil, append([]string{"--card", "soft", "--max-backoff", "200ms"}, hostPort(h.Addr())...)...)
	mem := sample(t, p.PID())
	c, written, werr := stallHost(t, h)
	stalled := time.Now()
	peakAtStall := peakOf(t, p.PID())
	var err error
	select {
	case err = <-werr:
	case <-time.After(30 * time.Second):
		t.Fatalf("the client never dropped the host that stopped reading (%d commands written)", written.Load())
	}
	dropped := time.Since(stalled)
	c.NC.Close()
	c2 := h.Accept(t, 20*time.Second)
	if m := c2.Transmit(t, selectPIV, 5*time.Second); m.Type != vscard.MsgAPDU || !bytes.HasSuffix(m.Payload, []byte{0x90, 0x00}) {
		t.Fatalf("SELECT after reconnection answered %v %X", m, m.Payload)
	}
	recovered := time.Since(stalled)
	waitLog(t, p, time.Second, "lost the host", 1)
	finish(t, p)
	mem.Stop()
	t.Logf("the host wrote %d commands before its writes blocked; the client dropped it %v after (%v); peak RSS at the stall %.1f MiB",
		written.Load(), dropped.Round(time.Millisecond), err, float64(peakAtStall)/(1<<20))
	report(t, row{
		fault:     "host stops reading (sends commands with 372-byte answers)",
		hostSaw:   fmt.Sprintf("its writes blocked after %d commands; connection closed by the client %v later", written.Load(), dropped.Round(100*time.Millisecond)),
		recovered: recovered,
		peak:      mem.Peak(),
	})
}

// A host that floods 64 KiB messages as fast as it can: 2,000 APDUs of
// 65,524 bytes (each answered), or 2,000 messages of an unknown type (each
// ignored); 128 MiB in all, twice the memory bound. The client keeps up
// without growing, and the command after the flood works.
func TestHostFloods(t *testing.T) {
	const n = 2000
	// An extended APDU the PIV applet does not know, filling QEMU's limit.
	big := make([]byte, vscard.MaxPayload)
	copy(big, []byte{0x80, 0x10, 0x00, 0x00, 0x00, (vscard.MaxPayload - 7) >> 8, (vscard.MaxPayload - 7) & 0xFF})
	for i := 7; i < len(big); i++ {
		big[i] = byte(i)
	}
	for _, tc := range []struct {
		name    string
		typ     vscard.MsgType
		answers int // answers the flood gets
	}{
		{"APDU", vscard.MsgAPDU, n},
		{"unknown type", vscard.MsgType(0x55), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := harness.NewRawHost(t)
			p := startClient(t, nil, append([]string{"--card", "soft"}, hostPort(h.Addr())...)...)
			mem := sample(t, p.PID())
			c := h.Accept(t, 20*time.Second)
			start := time.Now()
			var (
				wg       sync.WaitGroup
				werr     error
				floodEnd time.Time // when the last flood message was written
			)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range n {
					if werr = vscard.WriteMessage(c.NC, vscard.Message{Type: tc.typ, ReaderID: vscard.MinimalReaderID, Payload: big}); werr != nil {
						return
					}
				}
				floodEnd = time.Now()
				werr = vscard.WriteMessage(c.NC, vscard.Message{Type: vscard.MsgAPDU, ReaderID: vscard.MinimalReaderID, Payload: selectPIV})
			}()
			c.NC.SetReadDeadline(time.Now().Add(2 * time.Minute))
			errors, apdus := 0, 0
			var last vscard.Message
			for i := 0; i <= tc.answers; i++ {
				m, err := vscard.ReadMessage(c.R, 0)
				if err != nil {
					t.Fatalf("after %d answers: %v", i, err)
				}
				switch m.Type {
				case vscard.MsgAPDU:
					apdus++
				case vscard.MsgError:
					errors++
				default:
					t.Fatalf("answer %d: %v", i, m)
				}
				last = m
			}
			flood := time.Since(start)
			wg.Wait()
			caughtUp := time.Since(floodEnd)
			if werr != nil {
				t.Fatal(werr)
			}
			if last.Type != vscard.MsgAPDU || !bytes.HasSuffix(last.Payload, []byte{0x90, 0x00}) {
				t.Fatalf("SELECT after the flood answered %v %X", last, last.Payload)
			}
			t.Logf("%d %s messages of %d bytes (%d MiB) and SELECT in %v: %d APDU answers, %d Error answers",
				n, tc.name, vscard.MaxPayload, n*vscard.MaxPayload>>20, flood.Round(time.Millisecond), apdus, errors)
			logLen := len(p.Output())
			finish(t, p)
			mem.Stop()
			if logLen > 64<<10 {
				t.Errorf("the flood made vscclient-go log %d bytes", logLen)
			}
			report(t, row{
				fault:     fmt.Sprintf("host floods %d × 64 KiB %s messages", n, tc.name),
				hostSaw:   fmt.Sprintf("%d APDU + %d Error answers, SELECT after it answered 9000; %v for the lot", apdus-1, errors, flood.Round(time.Millisecond)),
				recovered: caughtUp, // from the flood's last byte written to SELECT's answer
				peak:      mem.Peak(),
			})
		})
	}
}

// stallHost lets the client in on h and then sends it commands with long
// answers without reading any, until its writes block; it returns the
// connection, the count of commands written, and the writer's error
// channel.
func stallHost(t *testing.T, h *harness.RawHost) (*harness.RawConn, *atomic.Int64, <-chan error) {
	t.Helper()
	c := h.Accept(t, 20*time.Second)
	if m := c.Transmit(t, selectPIV, 5*time.Second); m.Type != vscard.MsgAPDU {
		t.Fatalf("SELECT answered %v", m)
	}
	// GET DATA of the 9A certificate with an extended Le: each answer is
	// the bridge's largest piece, 372 bytes and 61xx.
	getCert := []byte{0x00, 0xCB, 0x3F, 0xFF, 0x00, 0x00, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x00, 0x00}
	written := new(atomic.Int64)
	werr := make(chan error, 1)
	go func() {
		for {
			if err := vscard.WriteMessage(c.NC, vscard.Message{Type: vscard.MsgAPDU, Payload: getCert}); err != nil {
				werr <- err
				return
			}
			written.Add(1)
		}
	}()
	var last int64 = -1
	harness.WaitFor(t, 30*time.Second, "the host's writes blocked by the client's pushback", func() bool {
		n := written.Load()
		if n != last {
			last = n
			time.Sleep(300 * time.Millisecond)
			return false
		}
		return true
	})
	return c, written, werr
}

// SIGTERM while a host that stopped reading holds the client's answer: the
// client still leaves within its 2 s farewell (CardRemove and ReaderRemove
// cannot get through; it does not wait out the 10 s write timeout).
func TestStopWhileHostStopsReading(t *testing.T) {
	h := harness.NewRawHost(t)
	p := startClient(t, nil, append([]string{"--card", "soft"}, hostPort(h.Addr())...)...)
	stallHost(t, h)
	start := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitExit(ctxT(t, 5*time.Second)); err != nil {
		t.Fatalf("vscclient-go after SIGTERM, %v later: %v\n%s", time.Since(start).Round(time.Millisecond), err, p.Output())
	}
	t.Logf("vscclient-go left %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	if n := strings.Count(p.Output(), "level=WARN"); n > 4 {
		t.Errorf("%d warnings on the way out:\n%s", n, p.Output())
	}
}

// The same cut against QEMU itself: the connection reset in the middle of
// the client's ATR. QEMU keeps the partial message; the next connection's
// Init completes it, and what is left of the Init starts a message QEMU's
// buffer cannot hold: its card device answers nothing more. vscclient-go
// keeps trying, says to restart the VM, and is back once the VM is.
func TestConnectionResetMidFrameToQEMU(t *testing.T) {
	q := harness.StartQEMU(t, harness.QEMUOptions{})
	px := newProxy(t, q.Addr)
	const reader = "faults"
	// Init, ReaderRemove, ReaderAdd, then the ATR's header and 8 bytes.
	px.CutAfter(toHost, 24+12+12+int64(len(reader))+12+8)
	p := startClient(t, nil, append([]string{"--card", "soft", "--reader-name", reader, "--max-backoff", "200ms"}, hostPort(px.Addr())...)...)
	mem := sample(t, p.PID())
	waitLog(t, p, 20*time.Second, "did not answer Init", 1)
	waitLog(t, p, time.Second, "restart the VM", 1)
	if px.Cuts() != 1 || strings.Contains(p.Output(), `msg="card inserted"`) {
		t.Fatalf("%d cuts; the card got in:\n%s", px.Cuts(), p.Output())
	}
	// The VM restarts on the same port.
	q.Kill()
	q2 := harness.StartQEMU(t, harness.QEMUOptions{Port: q.Port})
	back := time.Now()
	waitLog(t, p, 20*time.Second, `msg="card inserted"`, 1)
	recovered := time.Since(back)
	_ = q2
	finish(t, p)
	mem.Stop()
	report(t, row{
		fault:     "connection reset mid-frame, client to QEMU (mid-ATR)",
		hostSaw:   "QEMU kept the partial ATR; the next Init completed it; card device wedged (no Init answered) until the VM restarted",
		recovered: recovered,
		peak:      mem.Peak(),
	})
}
