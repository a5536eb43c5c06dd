package reader_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/vscardkit/vscardkit/internal/harness"
)

// TestMain points libpcsclite at the in-process pcscd socket before any
// PC/SC call: libpcsclite reads PCSCLITE_CSOCK_NAME once per process.
func TestMain(m *testing.M) {
	if _, err := harness.InProcessPCSC(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}
