package guest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/vscardkit/vscardkit/internal/harness"
)

// BenchmarkAPDULatency measures what one APDU costs a real guest, through
// usb-ccid, ccid-card-passthru's chardev and a VSCard client, for each way
// the chardev and the client can be set up. Each iteration boots a guest
// that sends 200 SELECTs in one opensc-tool call (scenario latency).
//
// Metrics: guest-us/apdu is the guest's own measure ((200-APDU call - 1-APDU
// call) / 199, monotonic clock); host-gap-us/apdu is the median time from
// the client's response to the next command's arrival, as the client sees
// it; payload-wait-us/apdu is the median time between the client reading a
// command's header and its payload (Nagle holding QEMU's second write shows
// here); boot-ms is QEMU start to the reader being listed; qemu-rss-MiB is
// QEMU's peak resident set (VmHWM).
//
// The interesting comparison is the chardev libvirt makes (no nodelay)
// with a client that does nothing about delayed ACKs (Nagle trap) against
// the same chardev with a client that sets TCP_QUICKACK after each read.
func BenchmarkAPDULatency(b *testing.B) {
	variants := []struct {
		nodelay bool
		client  clientConfig
	}{
		{false, clientConfig{ack: ackNothing}},
		{false, clientConfig{ack: ackQuickOne}},
		{false, clientConfig{ack: ackQuickWrite}},
		{false, clientConfig{ack: ackQuickHeader}},
		{false, clientConfig{ack: ackQuick}},
		{false, clientConfig{ack: ackQuick, splitNagle: true}},
		{true, clientConfig{ack: ackNothing}},
		{true, clientConfig{ack: ackQuick}},
	}
	for _, v := range variants {
		chardev := "libvirt"
		if v.nodelay {
			chardev = "nodelay"
		}
		b.Run(fmt.Sprintf("chardev=%s/client=%s", chardev, v.client), func(b *testing.B) {
			for b.Loop() {
				benchLatencyOnce(b, v.nodelay, v.client)
			}
		})
	}
}

func benchLatencyOnce(b *testing.B, nodelay bool, cc clientConfig) {
	ctx, cancel := context.WithTimeout(b.Context(), 3*time.Minute)
	defer cancel()
	const count = 200
	vm, r := withClient(b, ctx, "latency", map[string]string{"count": strconv.Itoa(count), "timeout": "170"}, nodelay, cc, answer9000)
	ev, err := vm.WaitEvent(ctx, "reader")
	if err != nil {
		b.Fatal(err)
	}
	// QEMU is still running when the last result appears.
	if _, err := vm.WaitResult(ctx, "per_apdu_us"); err != nil {
		b.Fatal(err)
	}
	rss, _ := harness.PeakRSS(vm.PID())
	res, err := vm.Wait(ctx)
	if err != nil {
		b.Fatal(err)
	}
	per, err := res.Int("per_apdu_us")
	if err != nil {
		b.Fatal(err)
	}
	gaps := r.gaps()
	if len(gaps) < count {
		b.Fatalf("the client saw %d APDUs, want at least %d", len(gaps)+1, count)
	}
	slices.Sort(gaps)
	held := r.payloadWaits()
	slices.Sort(held)
	b.ReportMetric(float64(per), "guest-us/apdu")
	b.ReportMetric(float64(gaps[len(gaps)/2].Microseconds()), "host-gap-us/apdu")
	b.ReportMetric(float64(held[len(held)/2].Microseconds()), "payload-wait-us/apdu")
	b.ReportMetric(float64(ev.At.Milliseconds()), "boot-ms")
	if rss > 0 {
		b.ReportMetric(float64(rss)/(1<<20), "qemu-rss-MiB")
	}
}
