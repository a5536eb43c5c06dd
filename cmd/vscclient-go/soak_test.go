package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/control"
	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/vscard"
)

// SoakEnv turns TestSoak on (make soak); its value is the number of APDUs
// (1000000 when it is not a number).
const SoakEnv = "VSCARDKIT_SOAK"

// TestSoak sends 1,000,000 PIV SELECTs through vscclient-go --card soft and
// drops the connection 1,000 times on the way (every 1,000 APDUs the host
// closes it and lets the client in again), sampling the client's resident
// set and goroutines; both must stay flat and nothing may fail. It runs with
// make soak, not make test (it takes minutes).
func TestSoak(t *testing.T) {
	v, ok := os.LookupEnv(SoakEnv)
	if !ok {
		t.Skip("a soak test: run it with make soak (" + SoakEnv + "=1)")
	}
	total, err := strconv.Atoi(v)
	if err != nil || total < 10000 {
		total = 1000000
	}
	const perSession = 1000
	bin := harness.Commands(t)
	ctl := filepath.Join(t.TempDir(), "control.sock")
	h := harness.NewRawHost(t)
	h.SplitWrites = true
	host, port, _ := net.SplitHostPort(h.Addr())
	p := harness.Start(t, "vscclient-go", exec.Command(filepath.Join(bin, "vscclient-go"),
		"--card", "soft", "--log-level", "warn", "--max-backoff", "100ms", "--control", ctl, host, port))
	defer p.Stop()
	selectPIV := []byte{0x00, 0xA4, 0x04, 0x00, 0x09, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x00}

	type sample struct {
		apdus      int
		rss        int64
		goroutines int
	}
	take := func(apdus int) sample {
		rss, err := harness.RSS(p.PID())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := control.Do(ctx, ctl, control.Request{Op: control.OpStatus})
		if err != nil {
			t.Fatal(err)
		}
		var rep report
		if err := json.Unmarshal(resp.Status, &rep); err != nil {
			t.Fatal(err)
		}
		return sample{apdus, rss, rep.Process.Goroutines}
	}
	var first, peak sample
	start := time.Now()
	sessions := 0
	for done := 0; done < total; sessions++ {
		c := h.Accept(t, 30*time.Second)
		for i := 0; i < perSession && done < total; i++ {
			m, err := c.RoundTrip(selectPIV)
			if err != nil || m.Type != vscard.MsgAPDU || len(m.Payload) < 2 || m.Payload[len(m.Payload)-2] != 0x90 {
				t.Fatalf("APDU %d (session %d): %v %X, %v", done, sessions, m.Type, m.Payload, err)
			}
			done++
		}
		if sessions == 1 {
			first = take(done)
		}
		if sessions >= 1 && sessions%100 == 0 {
			s := take(done)
			peak.rss, peak.goroutines = max(peak.rss, s.rss), max(peak.goroutines, s.goroutines)
			t.Logf("%d APDUs, %d sessions: RSS %.1f MiB, %d goroutines", done, sessions+1, float64(s.rss)/(1<<20), s.goroutines)
		}
		c.NC.Close()
	}
	// Let the client in once more so that it is in its steady state.
	h.Accept(t, 30*time.Second)
	time.Sleep(200 * time.Millisecond)
	end := take(total)
	peak.rss, peak.goroutines = max(peak.rss, end.rss), max(peak.goroutines, end.goroutines)
	t.Logf("SOAK | %d APDUs, %d host reconnects in %v | RSS start %.1f MiB, peak %.1f MiB, end %.1f MiB | goroutines start %d, peak %d, end %d",
		total, sessions, time.Since(start).Round(time.Second),
		float64(first.rss)/(1<<20), float64(peak.rss)/(1<<20), float64(end.rss)/(1<<20),
		first.goroutines, peak.goroutines, end.goroutines)
	if end.goroutines > first.goroutines {
		t.Errorf("goroutines grew from %d to %d", first.goroutines, end.goroutines)
	}
	if end.rss > first.rss+4<<20 {
		t.Errorf("resident set grew from %.1f to %.1f MiB", float64(first.rss)/(1<<20), float64(end.rss)/(1<<20))
	}
	if p.Exited() {
		t.Fatalf("vscclient-go exited: %v\n%s", p.Err(), p.Output())
	}
}
