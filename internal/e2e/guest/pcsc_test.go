package guest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/bridge"
	e2e "github.com/vscardkit/vscardkit/internal/e2e/guest"
	"github.com/vscardkit/vscardkit/internal/guest"
	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/testcard"
)

// traced is one APDU of vscclient-go's --apdu-trace --log-json output.
type traced struct {
	Msg      string `json:"msg"`
	Command  string `json:"command"`
	Response string `json:"response"`
}

// apduTrace returns the APDUs vscclient-go traced, in order.
func apduTrace(t testing.TB, out string) []traced {
	t.Helper()
	var tr []traced
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l traced
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "apdu" {
			tr = append(tr, l)
		}
	}
	return tr
}

// checkLongSplit checks, in vscclient-go's trace, how the guest's LONG
// commands were answered: the card's 1000 bytes went to QEMU in pieces it
// can carry, 61xx announcing each next one, and the guest's OpenSC fetched
// them with GET RESPONSE. It returns how many pieces the first took.
func checkLongSplit(t testing.TB, tr []traced, want []byte) int {
	t.Helper()
	first := 0
	for i := 0; i < len(tr); i++ {
		if !strings.HasPrefix(tr[i].Command, "80120000") {
			continue
		}
		var data []byte
		pieces := 0
		for ; i < len(tr); i++ {
			resp, err := hex.DecodeString(tr[i].Response)
			if err != nil || len(resp) < 2 {
				t.Fatalf("trace: response %q", tr[i].Response)
			}
			if len(resp) > bridge.QEMUMaxResponse {
				t.Errorf("a %d-byte response went to QEMU, which carries at most %d", len(resp), bridge.QEMUMaxResponse)
			}
			if pieces > 0 && !strings.HasPrefix(tr[i].Command, "00C00000") {
				t.Fatalf("after 61xx the guest sent %s, not GET RESPONSE", tr[i].Command)
			}
			pieces++
			data = append(data, resp[:len(resp)-2]...)
			if resp[len(resp)-2] != 0x61 {
				if sw := resp[len(resp)-2:]; !bytes.Equal(sw, []byte{0x90, 0x00}) {
					t.Errorf("LONG ended with %X", sw)
				}
				break
			}
		}
		if !bytes.Equal(data, want) || pieces < 2 {
			t.Errorf("LONG: %d bytes in %d pieces reached the guest, want the card's %d bytes split", len(data), pieces, len(want))
		}
		if first == 0 {
			first = pieces
		}
	}
	if first == 0 {
		t.Errorf("vscclient-go traced no LONG command (%d APDUs traced)", len(tr))
	}
	return first
}

// TestPCSCCard: vscclient-go --card pcsc with the test card in the vpcd
// reader of a private pcscd on the host. The guest sends raw APDUs with
// opensc-tool, among them LONG (80 12 00 00 00), which the card answers
// with 1000 bytes in one response; watches with pcsc_scan while the host
// pulls the card and puts it back; and sends the APDUs again. Then QEMU is
// gone (the guest powered off) while vscclient-go keeps running, a new
// QEMU listens on the same port, and the new guest sees the card and
// talks to it.
func TestPCSCCard(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	testImage(t)
	pcscd := harness.StartPCSCD(t, harness.PCSCDOptions{})
	// QEMU 7.2's usb-ccid offers T=0 only, so the guest's libccid refuses
	// a card that offers T=1 only (testcard.ATRT1): see
	// TestPCSCCardT1Only. The test card offers both, as many cards do.
	card := testcard.Start(t, pcscd.VPCDAddr(0), testcard.Options{ATR: testcard.ATRDual})
	c := e2e.Smartcard(harness.FreePort(t))

	selectApp := fmt.Sprintf("00a4040007%x", testcard.TestAID)
	const (
		echo   = "8010000004deadbeef00"
		long   = "8012000000"
		status = "8018000000"
	)
	apdus := []string{selectApp, echo, long, status}
	wantResp := []string{"9000", "deadbeef9000", hex.EncodeToString(testcard.Pattern(testcard.DefaultLongLen)) + "9000",
		"*019000"} // STATUS: a counter, then 01: the application is still selected
	opts := bootOptions(t, c, "wait_card,readers,apdu,watch,apdu", map[string]string{
		"apdus": strings.Join(apdus, ","), "method": "pcsc_scan", "changes": "2"})
	vm := boot(t, ctx, c, opts)
	client := startClient(t, c, []string{pcscd.Env()}, "--card", "pcsc", "--apdu-trace", "--log-json")

	// The guest watches; the host pulls the card and puts it back.
	expect := func(state string) guest.Marker {
		t.Helper()
		ev, err := vm.WaitEvent(ctx, "card")
		if err != nil {
			t.Fatalf("waiting for the guest to see the card %s: %v", state, err)
		}
		if ev.Fields["state"] != state {
			t.Fatalf("the guest saw the card %s, want %s", ev.Fields["state"], state)
		}
		return ev
	}
	expect("present")
	removed := time.Now()
	card.Remove()
	expect("absent")
	t.Logf("guest: card removed %v after the host began pulling it (pcsc_scan)", time.Since(removed).Round(time.Millisecond))
	if err := card.Insert(pcscd.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	inserted := time.Now()
	expect("present")
	t.Logf("guest: card inserted %v after the host put it back (pcsc_scan)", time.Since(inserted).Round(time.Millisecond))

	rs := waitRuns(t, ctx, vm, opts)
	checkReaders(t, rs[1], card.ATR())
	checkAPDUs(t, rs[2], wantResp)
	if rs[3].values["changes"] != "2" {
		t.Errorf("the guest counted %s card changes, want 2", rs[3].values["changes"])
	}
	checkAPDUs(t, rs[4], wantResp) // after the card came back

	// QEMU has exited; the same vscclient-go serves the next one on the
	// same port.
	if client.Exited() {
		t.Fatalf("vscclient-go exited with QEMU: %v", client.Err())
	}
	opts = bootOptions(t, c, "wait_card,readers,apdu", map[string]string{"apdus": selectApp + "," + status})
	vm = boot(t, ctx, c, opts)
	rs = waitRuns(t, ctx, vm, opts)
	checkReaders(t, rs[1], card.ATR())
	checkAPDUs(t, rs[2], []string{"9000", "*019000"})
	if client.Exited() {
		t.Errorf("vscclient-go exited: %v", client.Err())
	}

	pieces := checkLongSplit(t, apduTrace(t, client.Output()), testcard.Pattern(testcard.DefaultLongLen))
	t.Logf("vscclient-go: LONG's %d bytes went to the guest in %d pieces", testcard.DefaultLongLen, pieces)
}

// knownBugsEnv runs the tests of known, unfixed bugs.
// TestPCSCCardT1Only: a card that offers T=1 only (as many do, YubiKeys
// among them) in a host reader, given to the guest by vscclient-go
// --card pcsc. QEMU 7.2's usb-ccid announces T=0 only (dwProtocols 1), so
// the guest's libccid would refuse the protocol the card's ATR offers
// ("Protocol T=1 not supported by reader"); vscclient-go announces the ATR
// with T=0 offered first (pcscsource.ForGuest) and the guest uses the card.
func TestPCSCCardT1Only(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	testImage(t)
	pcscd := harness.StartPCSCD(t, harness.PCSCDOptions{})
	testcard.Start(t, pcscd.VPCDAddr(0), testcard.Options{ATR: testcard.ATRT1})
	c := e2e.Smartcard(harness.FreePort(t))
	opts := bootOptions(t, c, "wait_card,apdu", map[string]string{
		"apdus": fmt.Sprintf("00a4040007%x,8010000004deadbeef00", testcard.TestAID), "debug": "1"})
	vm := boot(t, ctx, c, opts)
	startClient(t, c, []string{pcscd.Env()}, "--card", "pcsc")
	rs := waitRuns(t, ctx, vm, opts)
	checkAPDUs(t, rs[1], []string{"9000", "deadbeef9000"})
}
