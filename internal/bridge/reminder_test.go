package bridge

import (
	"testing"
	"time"
)

func TestNextReminder(t *testing.T) {
	var got []time.Duration
	for d := time.Minute; d <= 3*time.Hour; d = nextReminder(d) {
		got = append(got, d)
	}
	want := []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 2 * time.Hour, 3 * time.Hour}
	if len(got) != len(want) {
		t.Fatalf("reminders %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("reminders %v, want %v", got, want)
		}
	}
}
