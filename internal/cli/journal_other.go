//go:build !unix

package cli

import "io"

// journalStream is false where there is no systemd journal.
func journalStream(w io.Writer, env string) bool { return false }
