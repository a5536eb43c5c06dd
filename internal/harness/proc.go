package harness

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
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

// CPUTime returns the user and system CPU time a process used so far
// (utime and stime in /proc/PID/stat).
func CPUTime(pid int) (time.Duration, error) {
	f, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the command", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q, stime %q", pid, f[11], f[12])
	}
	const userHZ = 100 // clock ticks per second on Linux
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

// ProcessAlive reports whether pid runs and is not a zombie (an orphan whose
// parent does not reap it, as a container's PID 1 may not, stays a zombie).
func ProcessAlive(pid int) bool {
	f, err := procStat(pid)
	return err == nil && len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// procStat returns the fields of /proc/PID/stat after the command name
// (which is in parentheses and may itself hold spaces or parentheses): the
// state first, utime at index 11 and stime at 12.
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	return strings.Fields(string(b[i+1:])), nil
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
