//go:build !cgo

package certsrc_test

import (
	"context"
	"errors"
	"testing"

	"github.com/vscardkit/vscardkit/certsrc"
)

// Without cgo, Open says so, whatever the URI; checking its arguments
// still comes first.
func TestOpenWithoutCgo(t *testing.T) {
	u, err := certsrc.ParseURI("pkcs11:token=alice?module-path=/usr/lib/softhsm/libsofthsm2.so")
	if err != nil {
		t.Fatal(err)
	}
	s, err := certsrc.Open(context.Background(), u, certsrc.Config{})
	if s != nil || !errors.Is(err, certsrc.ErrNoPKCS11Support) {
		t.Errorf("Open = %v, %v; want ErrNoPKCS11Support", s, err)
	}
	if _, err := certsrc.Open(context.Background(), nil, certsrc.Config{}); !errors.Is(err, certsrc.ErrBadURI) {
		t.Errorf("Open(nil URI) = %v, want ErrBadURI", err)
	}
}
