package harness

import (
	"slices"
	"testing"
	"time"
)

// BenchRoundTrips runs op b.N times (b.Loop) and reports, besides ns/op, the
// median and 90th percentile of the individual durations as the metrics
// "median-µs" and "p90-µs": the shape in which APDU round trips through
// different paths (direct PC/SC, vscclient-go, QEMU) are compared. An error
// from op fails b.
func BenchRoundTrips(b *testing.B, op func() error) {
	b.Helper()
	var d []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := op(); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(start))
	}
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2])/float64(time.Microsecond), "median-µs")
	b.ReportMetric(float64(d[len(d)*9/10])/float64(time.Microsecond), "p90-µs")
}
