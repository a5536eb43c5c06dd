package harness

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// PeakRSS returns a process's peak resident set (VmHWM in /proc/PID/status),
// in bytes.
func PeakRSS(pid int) (int64, error) {
	return procStatusKB(pid, "VmHWM:")
}

// RSS returns a process's resident set now (VmRSS), in bytes.
func RSS(pid int) (int64, error) {
	return procStatusKB(pid, "VmRSS:")
}

// RSSAnon returns a process's anonymous resident memory now (RssAnon): its
// own heap and stacks, without the file pages of its binary and libraries,
// which are clean and shared.
func RSSAnon(pid int) (int64, error) {
	return procStatusKB(pid, "RssAnon:")
}

// Threads returns how many threads a process has (Threads in
// /proc/PID/status).
func Threads(pid int) (int, error) {
	n, err := procStatusField(pid, "Threads:", "")
	return int(n), err
}

func procStatusKB(pid int, field string) (int64, error) {
	n, err := procStatusField(pid, field, "kB")
	return n << 10, err
}

func procStatusField(pid int, field, unit string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != field || (unit != "" && (len(f) != 3 || f[2] != unit)) {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s in /proc/%d/status: %w", field, pid, err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}
