// Package scripttest runs the testscript files that pin down what
// vscardkit's commands print and how they exit (cmd/*/testdata/script), as
// FiloSottile/age does for cmd/age. The scripts run the commands as users
// get them: the binaries harness.Commands builds, found by name on PATH, so
// exit codes and output are exactly what a shell sees.
//
// Besides testscript's own commands, a script has:
//
//	freeport NAME...             set each NAME to a free TCP port on 127.0.0.1
//	waitlisten ADDR              wait until something listens on the TCP ADDR
//	                             (HOST:PORT) or unix:PATH, without connecting
//	spawn NAME PROG [ARGS...]    start PROG in the background; its output goes
//	                             to NAME.stdout and NAME.stderr in $WORK
//	waitout NAME stdout|stderr REGEXP
//	                             wait until NAME's output matches REGEXP
//	signal NAME INT|TERM|HUP|KILL  send a signal to NAME
//	waitexit NAME [CODE]         wait for NAME to exit with CODE (default 0)
//	pcscd [stop|start]           start a private pcscd with a vpcd reader and
//	                             set VPCD (its slot 0, HOST:PORT) and the
//	                             PC/SC socket variable for what runs next;
//	                             stop and start it again on the same ports
//
// Waits give up after a generous timeout (the machine may be busy); every
// spawned program and pcscd is stopped when the script ends.
package scripttest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/vscardkit/vscardkit/internal/harness"
	"github.com/vscardkit/vscardkit/internal/procnet"
)

// waitTimeout bounds every wait of a script.
const waitTimeout = 20 * time.Second

type stateKey struct{}

// state is what a script's commands share.
type state struct {
	t testing.TB
	// vars is the script's environment at its start; set names what the
	// commands here added. spawn passes both, as the script sees them.
	vars []string

	mu    sync.Mutex
	set   []string
	procs map[string]*harness.Process
	pcscd *harness.PCSCD
}

// Run runs the scripts in dir (testdata/script/*.txtar) with the commands
// of the module on PATH.
func Run(t *testing.T, dir string) {
	bin := harness.Commands(t)
	testscript.Run(t, testscript.Params{
		Dir: dir,
		Setup: func(env *testscript.Env) error {
			tb, ok := env.T().(testing.TB)
			if !ok {
				return errors.New("scripttest: the script's T is no testing.TB")
			}
			env.Setenv("PATH", bin+string(os.PathListSeparator)+env.Getenv("PATH"))
			env.Values[stateKey{}] = &state{t: tb, vars: append([]string(nil), env.Vars...), procs: map[string]*harness.Process{}}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"freeport":   cmdFreeport,
			"waitlisten": cmdWaitListen,
			"spawn":      cmdSpawn,
			"waitout":    cmdWaitOut,
			"signal":     cmdSignal,
			"waitexit":   cmdWaitExit,
			"pcscd":      cmdPCSCD,
		},
	})
}

func getState(ts *testscript.TestScript) *state { return ts.Value(stateKey{}).(*state) }

func (s *state) setenv(ts *testscript.TestScript, key, value string) {
	ts.Setenv(key, value)
	s.mu.Lock()
	s.set = append(s.set, key)
	s.mu.Unlock()
}

// environ is the script's environment as it is now.
func (s *state) environ(ts *testscript.TestScript) []string {
	var env []string
	seen := map[string]bool{}
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			env = append(env, k+"="+ts.Getenv(k))
		}
	}
	for _, kv := range s.vars {
		k, _, _ := strings.Cut(kv, "=")
		add(k)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.set {
		add(k)
	}
	return env
}

func noNeg(ts *testscript.TestScript, neg bool, name string) {
	if neg {
		ts.Fatalf("unsupported: ! %s", name)
	}
}

func cmdFreeport(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "freeport")
	if len(args) == 0 {
		ts.Fatalf("usage: freeport NAME...")
	}
	s := getState(ts)
	// Hold every port until all are chosen, so that they differ.
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for _, name := range args {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		ts.Check(err)
		ls = append(ls, l)
		s.setenv(ts, name, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
}

func cmdWaitListen(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "waitlisten")
	if len(args) != 1 {
		ts.Fatalf("usage: waitlisten HOST:PORT|unix:PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if path, ok := strings.CutPrefix(args[0], "unix:"); ok {
		for {
			if fi, err := os.Stat(ts.MkAbs(path)); err == nil && fi.Mode()&os.ModeSocket != 0 {
				return
			}
			select {
			case <-ctx.Done():
				ts.Fatalf("no socket at %s after %v", path, waitTimeout)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	ts.Check(procnet.WaitListening(ctx, args[0], nil))
}

func cmdSpawn(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "spawn")
	if len(args) < 2 {
		ts.Fatalf("usage: spawn NAME PROG [ARGS...]")
	}
	s := getState(ts)
	name := args[0]
	s.mu.Lock()
	_, dup := s.procs[name]
	s.mu.Unlock()
	if dup {
		ts.Fatalf("spawn: %s is already taken", name)
	}
	prog, err := lookPath(ts, args[1])
	ts.Check(err)
	stdout, err := os.Create(ts.MkAbs(name + ".stdout"))
	ts.Check(err)
	stderr, err := os.Create(ts.MkAbs(name + ".stderr"))
	ts.Check(err)
	cmd := exec.Command(prog, args[2:]...)
	cmd.Dir = ts.MkAbs(".")
	cmd.Env = s.environ(ts)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	p, err := harness.StartProcess(name, cmd)
	stdout.Close()
	stderr.Close()
	ts.Check(err)
	s.mu.Lock()
	s.procs[name] = p
	s.mu.Unlock()
	ts.Defer(func() {
		if !p.Exited() {
			p.Kill()
		}
		if s.t.Failed() {
			for _, stream := range []string{"stdout", "stderr"} {
				if b, err := os.ReadFile(ts.MkAbs(name + "." + stream)); err == nil && len(b) > 0 {
					ts.Logf("[%s %s]\n%s", name, stream, b)
				}
			}
		}
	})
}

// lookPath finds prog on the script's PATH.
func lookPath(ts *testscript.TestScript, prog string) (string, error) {
	if strings.Contains(prog, "/") {
		return ts.MkAbs(prog), nil
	}
	for _, dir := range filepath.SplitList(ts.Getenv("PATH")) {
		p := filepath.Join(dir, prog)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found on the script's PATH", prog)
}

func (s *state) proc(ts *testscript.TestScript, name string) *harness.Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.procs[name]
	if p == nil {
		ts.Fatalf("no spawned program %q", name)
	}
	return p
}

func cmdWaitOut(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "waitout")
	if len(args) != 3 || args[1] != "stdout" && args[1] != "stderr" {
		ts.Fatalf("usage: waitout NAME stdout|stderr REGEXP")
	}
	p := getState(ts).proc(ts, args[0])
	re, err := regexp.Compile("(?m)" + args[2])
	ts.Check(err)
	file := ts.MkAbs(args[0] + "." + args[1])
	deadline := time.After(waitTimeout)
	for {
		// Read the exit state first: output written before the exit is
		// then in the file.
		exited := p.Exited()
		b, err := os.ReadFile(file)
		ts.Check(err)
		if re.Match(b) {
			return
		}
		if exited {
			ts.Fatalf("%s exited (%v) and its %s has no match for %q:\n%s", args[0], p.Err(), args[1], args[2], b)
		}
		select {
		case <-deadline:
			ts.Fatalf("%s's %s has no match for %q after %v:\n%s", args[0], args[1], args[2], waitTimeout, b)
		case <-p.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

var signals = map[string]syscall.Signal{"INT": syscall.SIGINT, "TERM": syscall.SIGTERM, "HUP": syscall.SIGHUP, "KILL": syscall.SIGKILL}

func cmdSignal(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "signal")
	if len(args) != 2 || signals[args[1]] == 0 {
		ts.Fatalf("usage: signal NAME INT|TERM|HUP|KILL")
	}
	ts.Check(getState(ts).proc(ts, args[0]).Signal(signals[args[1]]))
}

func cmdWaitExit(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "waitexit")
	if len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: waitexit NAME [CODE]")
	}
	want := 0
	if len(args) == 2 {
		var err error
		want, err = strconv.Atoi(args[1])
		ts.Check(err)
	}
	p := getState(ts).proc(ts, args[0])
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	err := p.WaitExit(ctx)
	if ctx.Err() != nil {
		ts.Fatalf("%s still runs after %v", args[0], waitTimeout)
	}
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		ts.Fatalf("%s: %v", args[0], err)
	}
	if code != want {
		ts.Fatalf("%s exited with %d, want %d", args[0], code, want)
	}
}

func cmdPCSCD(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "pcscd")
	s := getState(ts)
	switch {
	case len(args) == 0:
		if s.pcscd != nil {
			ts.Fatalf("pcscd: already started")
		}
		p := harness.StartPCSCD(s.t, harness.PCSCDOptions{})
		s.pcscd = p
		ts.Defer(func() { p.Close() })
		s.setenv(ts, "VPCD", p.VPCDAddr(0))
		k, v, _ := strings.Cut(p.Env(), "=")
		s.setenv(ts, k, v)
	case len(args) == 1 && s.pcscd != nil && args[0] == "stop":
		ts.Check(s.pcscd.Stop())
	case len(args) == 1 && s.pcscd != nil && args[0] == "start":
		ts.Check(s.pcscd.Restart())
	default:
		ts.Fatalf("usage: pcscd, then pcscd stop|start")
	}
}
