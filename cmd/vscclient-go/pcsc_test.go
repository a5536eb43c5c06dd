package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/apdu"
	"github.com/vscardkit/vscardkit/internal/bridge"
	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/testcard"
	"github.com/vscardkit/vscardkit/vscard/vscardtest"
)

// pcscSetup is a private pcscd with the test card in its vpcd reader, a
// fake host, and vscclient-go --card pcsc between them.
type pcscSetup struct {
	pcscd  *harness.PCSCD
	card   *testcard.Card
	srv    *vscardtest.Server
	client *harness.Process
}

func startPCSC(t *testing.T, extra ...string) *pcscSetup {
	t.Helper()
	s := &pcscSetup{}
	s.pcscd = harness.StartPCSCD(t, harness.PCSCDOptions{})
	s.card = testcard.Start(t, s.pcscd.VPCDAddr(0), testcard.Options{})
	s.srv = vscardtest.NewServer()
	t.Cleanup(s.srv.Close)
	host, port, _ := net.SplitHostPort(s.srv.Addr())
	args := append([]string{"--card", "pcsc", "--max-backoff", "500ms"}, extra...)
	cmd := exec.Command(filepath.Join(harness.Commands(t), "vscclient-go"), append(args, host, port)...)
	cmd.Env = append(cmd.Environ(), s.pcscd.Env())
	s.client = harness.Start(t, "vscclient-go", cmd)
	// The test card offers T=1 only: the guest is told T=0 first (see
	// pcscsource.ForGuest), which is the test card's dual-protocol ATR.
	if e := waitEvent(t, s.srv, 20*time.Second, vscardtest.EventCardInserted); !bytes.Equal(e.ATR, testcard.ATRDual) {
		t.Fatalf("announced ATR %X, want %X (the card's is %X)", e.ATR, testcard.ATRDual, s.card.ATR())
	}
	return s
}

func (s *pcscSetup) transmit(t *testing.T, cmd []byte) []byte {
	t.Helper()
	resp, err := s.srv.Transmit(ctxT(t, 20*time.Second), cmd)
	if err != nil {
		t.Fatalf("Transmit(%X...): %v", cmd[:min(len(cmd), 8)], err)
	}
	if len(resp) > bridge.QEMUMaxResponse {
		t.Fatalf("a %d-byte response: more than QEMU carries to the guest", len(resp))
	}
	return resp
}

// collect follows 61xx with GET RESPONSE, as the guest's middleware does,
// and returns the whole response data and the final status word.
func (s *pcscSetup) collect(t *testing.T, cmd []byte) ([]byte, apdu.SW, int) {
	t.Helper()
	resp := apdu.Response(s.transmit(t, cmd))
	var data []byte
	pieces := 1
	for resp.SW().SW1() == 0x61 {
		data = append(data, resp.Data()...)
		resp = s.transmit(t, []byte{0x00, 0xC0, 0x00, 0x00, resp.SW().SW2()})
		pieces++
	}
	return append(data, resp.Data()...), resp.SW(), pieces
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>8)
	}
	return b
}

// fake host -> vscclient-go -> pcscd -> vpcd -> test card, byte for byte.
func TestPCSCPath(t *testing.T) {
	s := startPCSC(t)
	sel, _ := apdu.Command{INS: 0xA4, P1: 0x04, Data: testcard.TestAID}.Bytes()
	if resp := s.transmit(t, sel); !bytes.Equal(resp, []byte{0x90, 0x00}) {
		t.Fatalf("SELECT: %X", resp)
	}
	for _, n := range []int{4096, 65000} {
		data := pattern(n)
		// DIGEST: the command arrives whole.
		cmd, _ := apdu.Command{CLA: 0x80, INS: 0x14, Data: data, Ne: 32, Extended: true}.Bytes()
		want := sha256.Sum256(data)
		if resp := s.transmit(t, cmd); !bytes.Equal(resp, append(want[:], 0x90, 0x00)) {
			t.Fatalf("%d-byte DIGEST: %X", n, resp)
		}
		// ECHO: the response comes back whole, in pieces QEMU can carry.
		cmd, _ = apdu.Command{CLA: 0x80, INS: 0x10, Data: data, Ne: 65536}.Bytes()
		got, sw, pieces := s.collect(t, cmd)
		if !bytes.Equal(got, data) || sw != apdu.SWOK {
			t.Fatalf("%d-byte ECHO: %d bytes back, SW %v", n, len(got), sw)
		}
		t.Logf("%d-byte extended APDU: response in %d pieces", n, pieces)
	}
	// LONG: 1000 bytes in one response from the card reach the host as
	// 61xx pieces that GET RESPONSE collects.
	got, sw, pieces := s.collect(t, []byte{0x80, 0x12, 0x00, 0x00, 0x00})
	if !bytes.Equal(got, testcard.Pattern(1000)) || sw != apdu.SWOK || pieces < 4 {
		t.Fatalf("LONG: %d bytes in %d pieces, SW %v", len(got), pieces, sw)
	}
	// Flush is answered at once.
	if err := s.srv.Flush(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	// SIGTERM: card and reader removed before the exit.
	s.srv.Events()
	s.client.Signal(syscall.SIGTERM)
	waitEvent(t, s.srv, 5*time.Second, vscardtest.EventCardRemoved)
	waitEvent(t, s.srv, 5*time.Second, vscardtest.EventReaderRemoved)
	if err := s.client.Err(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}

// The card pulled and inserted again; the host sees both.
func TestPCSCCardPulled(t *testing.T) {
	s := startPCSC(t)
	for range 2 {
		s.card.Remove()
		waitEvent(t, s.srv, 5*time.Second, vscardtest.EventCardRemoved)
		if err := s.card.Insert(s.pcscd.VPCDAddr(0)); err != nil {
			t.Fatal(err)
		}
		back := time.Now()
		checkRecovered(t, "card re-inserted", back, waitEvent(t, s.srv, 5*time.Second, vscardtest.EventCardInserted))
		if resp := s.transmit(t, []byte{0x80, 0x18, 0x00, 0x00, 0x00}); apdu.Response(resp).SW() != apdu.SWOK {
			t.Fatalf("STATUS after reinsertion: %X", resp)
		}
	}
}

// pcscd killed: the guest sees the card and reader go, the client waits
// without spinning, and both come back with pcscd.
func TestPCSCServiceRestart(t *testing.T) {
	s := startPCSC(t)
	s.pcscd.Kill()
	waitEvent(t, s.srv, 5*time.Second, vscardtest.EventCardRemoved)
	waitEvent(t, s.srv, 5*time.Second, vscardtest.EventReaderRemoved)
	idleCPU(t, s.client, 3*time.Second)
	if err := s.pcscd.Restart(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	waitEvent(t, s.srv, 10*time.Second, vscardtest.EventReaderAdded)
	checkRecovered(t, "pcscd restarted", back, waitEvent(t, s.srv, 10*time.Second, vscardtest.EventCardInserted))
	if resp := s.transmit(t, []byte{0x80, 0x18, 0x00, 0x00, 0x00}); apdu.Response(resp).SW() != apdu.SWOK {
		t.Fatalf("STATUS after the restart: %X", resp)
	}
}

// The reader unplugged and another plugged in (pcscd restarted with the
// reader renamed: pcscd cannot drop a reader.conf reader while it runs).
func TestPCSCReaderReplaced(t *testing.T) {
	s := startPCSC(t)
	old := s.pcscd.Readers[0]
	if err := s.pcscd.RestartAs("Other Reader"); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	waitEvent(t, s.srv, 10*time.Second, vscardtest.EventReaderRemoved)
	e := waitEvent(t, s.srv, 10*time.Second, vscardtest.EventReaderAdded)
	if e.Name == old || !strings.HasPrefix(e.Name, "Other Reader") {
		t.Fatalf("new reader %q (old %q)", e.Name, old)
	}
	checkRecovered(t, "reader replaced", back, waitEvent(t, s.srv, 10*time.Second, vscardtest.EventCardInserted))
}

// The host killed and restarted while the card stays: the client reconnects
// and announces the card again.
func TestPCSCHostRestart(t *testing.T) {
	s := startPCSC(t)
	addr := s.srv.Addr()
	s.srv.Close()
	srv2, err := vscardtest.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv2.Start()
	defer srv2.Close()
	back := time.Now()
	waitEvent(t, srv2, 2*time.Second, vscardtest.EventCardInserted)
	t.Logf("card announced %v after the host came back", time.Since(back))
	resp, err := srv2.Transmit(ctxT(t, 10*time.Second), []byte{0x80, 0x18, 0x00, 0x00, 0x00})
	if err != nil || apdu.Response(resp).SW() != apdu.SWOK {
		t.Fatalf("STATUS after the host restart: %X %v", resp, err)
	}
}

// `vscclient-go readers` lists the reader and the card.
func TestReadersCommand(t *testing.T) {
	p := harness.StartPCSCD(t, harness.PCSCDOptions{})
	card := testcard.Start(t, p.VPCDAddr(0), testcard.Options{})
	bin := filepath.Join(harness.Commands(t), "vscclient-go")
	var out []byte
	harness.WaitFor(t, 5*time.Second, "the card in the listing", func() bool {
		cmd := exec.Command(bin, "readers")
		cmd.Env = append(cmd.Environ(), p.Env())
		out, _ = cmd.Output()
		return bytes.Contains(out, []byte("ATR"))
	})
	if !bytes.Contains(out, []byte(p.Readers[0])) || !bytes.Contains(out, fmt.Appendf(nil, "%X", card.ATR())) {
		t.Fatalf("readers printed:\n%s", out)
	}
	// With no pcscd, an error a person can act on.
	p.Kill()
	cmd := exec.Command(bin, "readers")
	cmd.Env = append(cmd.Environ(), p.Env())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "is pcscd running?") {
		t.Fatalf("without pcscd: %v\n%s", err, stderr.String())
	}
}
