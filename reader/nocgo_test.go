//go:build !cgo && !windows

package reader

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// In a build without cgo, every entry point says so and matches
// ErrUnsupported (run with CGO_ENABLED=0 go test ./reader/).
func TestNoCgo(t *testing.T) {
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "built without cgo") {
			t.Errorf("%s: %v, want an error matching ErrUnsupported that says the build has no cgo", what, err)
		}
	}
	ctx := context.Background()
	_, err := List(ctx)
	check("List", err)
	_, err = Select(ctx, FirstWithCard())
	check("Select", err)
	c, err := Connect(ctx, "R", nil)
	check("Connect", err)
	if c != nil {
		t.Error("Connect returned a Card")
	}
	var zero Card
	_, err = zero.Transmit(ctx, []byte{0, 0xA4, 4, 0})
	check("Card.Transmit", err)
	check("Card.Reconnect", zero.Reconnect(ctx, false))
	if err := zero.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	w := Watch(ctx, nil)
	defer w.Close()
	var events []Event
	for ev := range w.Events() {
		events = append(events, ev)
	}
	if len(events) != 1 || events[0].Kind != ServiceDown {
		t.Fatalf("Watch events %v, want one ServiceDown", events)
	}
	check("the watcher's ServiceDown", events[0].Err)
	check("Watcher.Err", w.Err())
}
