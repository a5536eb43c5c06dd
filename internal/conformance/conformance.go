// Package conformance replays scripted VSCard byte sequences against a host
// (real QEMU or the fake) and records what the host answered to each step,
// so that the two can be compared byte for byte with golden files.
//
// A sequence file (testdata/conformance/*.seq) has one step per line; '#'
// starts a comment:
//
//	msg TYPE READERID [HEX...]   one message, one write (header computed)
//	big TYPE READERID LEN        one message with LEN zero payload bytes
//	raw HEX...                   raw bytes, one write
//	split N HEX...               raw bytes written N at a time, 20 ms apart
//	reconnect                    close the connection and open a new one
//
// Numbers are decimal or 0x-prefixed hex; HEX may be split by spaces. A
// golden file (*.qemu) has one line per step that writes: "N: HEX" with
// what the host answered, or "N: -" for silence.
package conformance

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Step is one line of a sequence.
type Step struct {
	Line      int    // line number in the file
	Reconnect bool   // close and reconnect instead of writing
	Data      []byte // bytes to write
	Chunk     int    // write Data this many bytes at a time (0: at once)
}

// Sequence is a parsed sequence file.
type Sequence struct {
	Name  string
	Steps []Step
}

// ParseFile reads a sequence file.
func ParseFile(path string) (*Sequence, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	name := strings.TrimSuffix(path[strings.LastIndex(path, "/")+1:], ".seq")
	return Parse(name, b)
}

// Parse parses a sequence.
func Parse(name string, src []byte) (*Sequence, error) {
	seq := &Sequence{Name: name}
	sc := bufio.NewScanner(bytes.NewReader(src))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		st, err := parseStep(f)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		st.Line = n
		seq.Steps = append(seq.Steps, st)
	}
	return seq, sc.Err()
}

func parseStep(f []string) (Step, error) {
	switch f[0] {
	case "reconnect":
		return Step{Reconnect: true}, nil
	case "raw":
		b, err := hexArgs(f[1:])
		return Step{Data: b}, err
	case "split":
		if len(f) < 2 {
			return Step{}, errors.New("split needs N")
		}
		n, err := num(f[1])
		if err != nil || n == 0 {
			return Step{}, fmt.Errorf("split: bad N %q", f[1])
		}
		b, err := hexArgs(f[2:])
		return Step{Data: b, Chunk: int(n)}, err
	case "msg", "big":
		if len(f) < 3 {
			return Step{}, fmt.Errorf("%s needs TYPE and READERID", f[0])
		}
		typ, err1 := num(f[1])
		id, err2 := num(f[2])
		if err := errors.Join(err1, err2); err != nil {
			return Step{}, err
		}
		var payload []byte
		if f[0] == "big" {
			if len(f) != 4 {
				return Step{}, errors.New("big needs LEN")
			}
			n, err := num(f[3])
			if err != nil || n > 1<<20 {
				return Step{}, fmt.Errorf("big: bad LEN %q", f[3])
			}
			payload = make([]byte, n)
		} else {
			var err error
			if payload, err = hexArgs(f[3:]); err != nil {
				return Step{}, err
			}
		}
		// The header is written here rather than with package vscard, which
		// tests its decoder on these sequences.
		data := binary.BigEndian.AppendUint32(nil, typ)
		data = binary.BigEndian.AppendUint32(data, id)
		data = binary.BigEndian.AppendUint32(data, uint32(len(payload)))
		return Step{Data: append(data, payload...)}, nil
	}
	return Step{}, fmt.Errorf("unknown step %q", f[0])
}

func num(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 0, 32)
	return uint32(v), err
}

func hexArgs(f []string) ([]byte, error) {
	b, err := hex.DecodeString(strings.Join(f, ""))
	if err != nil {
		return nil, fmt.Errorf("bad hex: %w", err)
	}
	return b, nil
}

// Replies is what a host answered to each writing step, keyed by step
// index; nil means silence.
type Replies map[int][]byte

// Golden encodes replies in the golden-file format.
func (s *Sequence) Golden(r Replies) []byte {
	var b bytes.Buffer
	for i, st := range s.Steps {
		if st.Reconnect {
			continue
		}
		if len(r[i]) == 0 {
			fmt.Fprintf(&b, "%d: -\n", i)
		} else {
			fmt.Fprintf(&b, "%d: %x\n", i, r[i])
		}
	}
	return b.Bytes()
}

// ParseGolden decodes a golden file.
func ParseGolden(src []byte) (Replies, error) {
	r := Replies{}
	for _, line := range strings.Split(strings.TrimSpace(string(src)), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		i, err := strconv.Atoi(k)
		if !ok || err != nil {
			return nil, fmt.Errorf("conformance: bad golden line %q", line)
		}
		if v == "-" {
			r[i] = nil
			continue
		}
		if r[i], err = hex.DecodeString(v); err != nil {
			return nil, fmt.Errorf("conformance: bad golden line %q: %w", line, err)
		}
	}
	return r, nil
}

// Options say how Run waits for replies.
type Options struct {
	// Quiet is how long a host must stay silent for a step to be considered
	// answered when no golden length is known, and how long Run listens for
	// stray bytes where silence is expected.
	Quiet time.Duration
	// Expect, when set, gives the expected reply lengths: Run waits for
	// exactly that many bytes (up to Timeout) instead of a quiet period.
	Expect Replies
	// Timeout bounds the wait for an expected reply.
	Timeout time.Duration
}

// Run replays seq against the host at addr and returns what it answered to
// each step.
func Run(seq *Sequence, addr string, opt Options) (Replies, error) {
	if opt.Quiet == 0 {
		opt.Quiet = 300 * time.Millisecond
	}
	if opt.Timeout == 0 {
		opt.Timeout = 5 * time.Second
	}
	out := Replies{}
	c, err := dial(addr)
	if err != nil {
		return nil, err
	}
	defer func() { c.close() }()
	for i, st := range seq.Steps {
		if st.Reconnect {
			c.close()
			if c, err = dial(addr); err != nil {
				return nil, err
			}
			continue
		}
		if err := c.write(st); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", seq.Name, st.Line, err)
		}
		if want, ok := opt.Expect[i]; ok && len(want) > 0 {
			out[i] = c.waitN(len(want), opt.Timeout)
		} else {
			out[i] = c.waitQuiet(opt.Quiet)
		}
	}
	// Anything arriving after the last step is a difference too.
	if extra := c.waitQuiet(opt.Quiet); len(extra) > 0 {
		last := len(seq.Steps) - 1
		out[last] = append(out[last], extra...)
	}
	return out, nil
}

// conn collects what the host sends, in the background.
type conn struct {
	nc   net.Conn
	mu   sync.Mutex
	buf  []byte
	more chan struct{}
	done chan struct{}
}

func dial(addr string) (*conn, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &conn{nc: nc, more: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		b := make([]byte, 65536)
		for {
			n, err := nc.Read(b)
			if n > 0 {
				c.mu.Lock()
				c.buf = append(c.buf, b[:n]...)
				c.mu.Unlock()
				select {
				case c.more <- struct{}{}:
				default:
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return c, nil
}

func (c *conn) close() {
	c.nc.Close()
	<-c.done
}

func (c *conn) write(st Step) error {
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if st.Chunk == 0 {
		_, err := c.nc.Write(st.Data)
		return err
	}
	for b := st.Data; len(b) > 0; {
		n := min(st.Chunk, len(b))
		if _, err := c.nc.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func (c *conn) take() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.buf
	c.buf = nil
	return b
}

func (c *conn) waitQuiet(quiet time.Duration) []byte {
	var got []byte
	t := time.NewTimer(quiet)
	defer t.Stop()
	for {
		select {
		case <-c.more:
			got = append(got, c.take()...)
			t.Reset(quiet)
		case <-t.C:
			return append(got, c.take()...)
		}
	}
}

func (c *conn) waitN(n int, timeout time.Duration) []byte {
	var got []byte
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for len(got) < n {
		select {
		case <-c.more:
			got = append(got, c.take()...)
		case <-deadline.C:
			return append(got, c.take()...)
		}
	}
	return got
}

// Seeds returns the byte streams in dir (testdata/conformance) as fuzz
// seeds: every step a client sends (under 4 KiB), each sequence whole (under
// 64 KiB), and every reply QEMU gave in the captures.
func Seeds(dir string) ([][]byte, error) {
	var out [][]byte
	seqs, _ := filepath.Glob(filepath.Join(dir, "*.seq"))
	for _, f := range seqs {
		seq, err := ParseFile(f)
		if err != nil {
			return nil, err
		}
		var all []byte
		for _, st := range seq.Steps {
			all = append(all, st.Data...)
			if len(st.Data) < 4096 {
				out = append(out, st.Data)
			}
		}
		if len(all) < 1<<16 {
			out = append(out, all)
		}
	}
	goldens, _ := filepath.Glob(filepath.Join(dir, "*.qemu"))
	for _, f := range goldens {
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		replies, err := ParseGolden(src)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, step := range slices.Sorted(maps.Keys(replies)) {
			if b := replies[step]; len(b) > 0 {
				out = append(out, b)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("conformance: no captures in %s", dir)
	}
	return out, nil
}
