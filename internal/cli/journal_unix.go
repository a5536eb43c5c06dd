//go:build unix

package cli

import (
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// journalStream reports whether w is the file that env, a JOURNAL_STREAM
// value ("DEVICE:INODE", both decimal), names: systemd sets it for the
// stdout and stderr it connects to journald, and a child that redirected
// its stderr elsewhere no longer matches.
func journalStream(w io.Writer, env string) bool {
	f, ok := w.(*os.File)
	if !ok || env == "" {
		return false
	}
	devS, inoS, ok := strings.Cut(env, ":")
	if !ok {
		return false
	}
	dev, err1 := strconv.ParseUint(devS, 10, 64)
	ino, err2 := strconv.ParseUint(inoS, 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && uint64(st.Dev) == dev && uint64(st.Ino) == ino
}
