package vpcd

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	b := Backoff{Min: 50 * time.Millisecond, Max: 2 * time.Second}
	want := []time.Duration{50, 100, 200, 400, 800, 1600, 2000, 2000}
	for i, w := range want {
		if got := b.Next(); got != w*time.Millisecond {
			t.Fatalf("wait %d = %v, want %v", i, got, w*time.Millisecond)
		}
	}
	b.Reset()
	if got := b.Next(); got != 50*time.Millisecond {
		t.Fatalf("after Reset: %v", got)
	}
	var zero Backoff
	if got := zero.Next(); got != defaultMinBackoff {
		t.Fatalf("zero Backoff starts at %v", got)
	}
	for range 20 {
		if got := zero.Next(); got > defaultMaxBackoff || got <= 0 {
			t.Fatalf("zero Backoff gave %v", got)
		}
	}
}
