package faults_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/apdu"
	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/testcard"
	"github.com/vscardkit/vscardkit/vscard/vscardtest"
)

// pcscRig is a private pcscd with the test card in its vpcd reader.
type pcscRig struct {
	pcscd *harness.PCSCD
	card  *testcard.Card
}

func startPCSCRig(t *testing.T) *pcscRig {
	t.Helper()
	r := &pcscRig{pcscd: harness.StartPCSCD(t, harness.PCSCDOptions{})}
	r.card = testcard.Start(t, r.pcscd.VPCDAddr(0), testcard.Options{})
	return r
}

// client starts vscclient-go --card pcsc against the host at addr.
func (r *pcscRig) client(t *testing.T, addr string) *harness.Process {
	t.Helper()
	return startClient(t, append(os.Environ(), r.pcscd.Env()),
		append([]string{"--card", "pcsc", "--max-backoff", "200ms"}, hostPort(addr)...)...)
}

// transmitAsync sends cmd from a goroutine; the result arrives on the
// channel.
func transmitAsync(t *testing.T, srv *vscardtest.Server, cmd []byte) <-chan result {
	ch := make(chan result, 1)
	ctx := ctxT(t, 2*time.Minute)
	go func() {
		resp, err := srv.Transmit(ctx, cmd)
		ch <- result{resp, err}
	}()
	return ch
}

type result struct {
	resp []byte
	err  error
}

// wait waits up to d for the result of a transmitAsync.
func wait(t *testing.T, ch <-chan result, d time.Duration, what string) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(d):
		t.Fatalf("%s: no answer after %v", what, d)
	}
	panic("unreachable")
}

// echoed reports whether r answers an ECHO of data: the start of data (the
// first piece, when the answer comes in pieces) and a status word.
func echoed(r result, data []byte) bool {
	return r.err == nil && len(r.resp) >= 2 && bytes.HasPrefix(data, r.resp[:len(r.resp)-2])
}

// describe says what the host got for a command.
func describe(r result) string {
	var ce *vscardtest.CardError
	switch {
	case errors.As(r.err, &ce):
		return "Error{" + ce.Code.String() + "}"
	case errors.Is(r.err, vscardtest.ErrCardRemoved):
		return "CardRemove while pending"
	case r.err != nil:
		return r.err.Error()
	}
	return fmt.Sprintf("response %X", r.resp)
}

// kinds lists the kinds of events.
func kinds(ev []vscardtest.Event) string {
	var s []string
	for _, e := range ev {
		if e.Kind != vscardtest.EventAPDU {
			s = append(s, e.Kind.String())
		}
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// pcscd killed while the guest's command is at a mute card: the command is
// answered with Error (the card is gone), the host sees the card and the
// reader go, and both come back with pcscd.
func TestPCSCDKilledMuteCard(t *testing.T) {
	r := startPCSCRig(t)
	srv := vscardtest.NewServer()
	defer srv.Close()
	p := r.client(t, srv.Addr())
	mem := sample(t, p.PID())
	waitEvent(t, srv, 20*time.Second, vscardtest.EventCardInserted)
	transmitOK(t, srv, statusCmd)
	srv.Events()

	r.card.Mute(true)
	n := r.card.Transmits()
	ch := transmitAsync(t, srv, statusCmd)
	harness.WaitFor(t, 10*time.Second, "the command at the card", func() bool { return r.card.Transmits() > n })
	r.pcscd.Kill()
	got := wait(t, ch, 20*time.Second, "the command outstanding when pcscd died")
	if got.err == nil {
		t.Fatalf("the command outstanding when pcscd died was answered %X", got.resp)
	}
	harness.WaitFor(t, 20*time.Second, "the reader gone", func() bool { return !srv.Host().State().ReaderAdded })
	saw := describe(got) + "; events " + kinds(srv.Events())
	r.card.Mute(false)
	if err := r.pcscd.Restart(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	waitEvent(t, srv, 20*time.Second, vscardtest.EventCardInserted)
	transmitOK(t, srv, statusCmd)
	recovered := time.Since(back)
	finish(t, p)
	mem.Stop()
	report(t, row{fault: "pcscd killed mid-transmit (mute card)", hostSaw: saw, recovered: recovered, peak: mem.Peak()})
}

// pcscd killed while 65,000-byte ECHOs go back and forth: every command is
// answered whole and right, or with Error; none hangs.
func TestPCSCDKilledMidEcho(t *testing.T) {
	r := startPCSCRig(t)
	srv := vscardtest.NewServer()
	defer srv.Close()
	p := r.client(t, srv.Addr())
	mem := sample(t, p.PID())
	waitEvent(t, srv, 20*time.Second, vscardtest.EventCardInserted)
	srv.Events()
	data := make([]byte, 65000)
	for i := range data {
		data[i] = byte(i*13 + 1)
	}
	echo, _ := apdu.Command{CLA: 0x80, INS: 0x10, Data: data, Ne: 65536}.Bytes()
	// ECHOs one after the other; pcscd dies after the third, during one
	// of the next ones (each takes a few milliseconds at pcscd).
	var (
		ok, failed int
		saw        string
		killer     = make(chan struct{})
	)
	go func() {
		defer close(killer)
		harness.WaitFor(t, 30*time.Second, "three ECHOs", func() bool { return r.card.Transmits() >= 3 })
		r.pcscd.Kill()
	}()
	for i := 0; failed == 0 && i < 1000; i++ {
		res := wait(t, transmitAsync(t, srv, echo), 30*time.Second, "an ECHO")
		switch {
		case echoed(res, data):
			ok++
		case res.err != nil:
			failed++
			saw = describe(res)
		default:
			t.Fatalf("ECHO %d answered %d bytes %X...", i, len(res.resp), res.resp[:min(16, len(res.resp))])
		}
	}
	<-killer
	if failed == 0 {
		t.Fatalf("%d ECHOs and none failed: pcscd is not dead?", ok)
	}
	t.Logf("%d ECHO first pieces right, %d failed", ok, failed)
	harness.WaitFor(t, 20*time.Second, "the reader gone", func() bool {
		return !srv.Host().State().ReaderAdded
	})
	saw += "; events " + kinds(srv.Events())
	if err := r.pcscd.Restart(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	waitEvent(t, srv, 20*time.Second, vscardtest.EventCardInserted)
	res := wait(t, transmitAsync(t, srv, echo), 30*time.Second, "the ECHO after the restart")
	if !echoed(res, data) {
		t.Fatalf("ECHO after the restart: %s", describe(res))
	}
	recovered := time.Since(back)
	finish(t, p)
	mem.Stop()
	report(t, row{fault: "pcscd killed mid-ECHO of 65,000 bytes", hostSaw: fmt.Sprintf("%d ECHOs answered right, then %s", ok, saw), recovered: recovered, peak: mem.Peak()})
}

// The card pulled while the guest's command is at it (mute, then removed):
// the command is answered with Error or ended by CardRemove, the host sees
// the card go, and a card inserted again works.
func TestCardPulledMidAPDU(t *testing.T) {
	r := startPCSCRig(t)
	srv := vscardtest.NewServer()
	defer srv.Close()
	p := r.client(t, srv.Addr())
	mem := sample(t, p.PID())
	waitEvent(t, srv, 20*time.Second, vscardtest.EventCardInserted)
	srv.Events()

	r.card.Mute(true)
	n := r.card.Transmits()
	ch := transmitAsync(t, srv, statusCmd)
	harness.WaitFor(t, 10*time.Second, "the command at the card", func() bool { return r.card.Transmits() > n })
	r.card.Remove()
	got := wait(t, ch, 20*time.Second, "the command outstanding when the card was pulled")
	if got.err == nil {
		t.Fatalf("the command outstanding when the card was pulled was answered %X", got.resp)
	}
	harness.WaitFor(t, 20*time.Second, "the card gone", func() bool { return !srv.Host().State().CardPresent })
	saw := describe(got) + "; events " + kinds(srv.Events())
	r.card.Mute(false)
	if err := r.card.Insert(r.pcscd.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	waitEvent(t, srv, 20*time.Second, vscardtest.EventCardInserted)
	transmitOK(t, srv, statusCmd)
	recovered := time.Since(back)
	finish(t, p)
	mem.Stop()
	report(t, row{fault: "card pulled mid-APDU (mute, then removed)", hostSaw: saw, recovered: recovered, peak: mem.Peak()})
}
