package guest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultQEMU is the QEMU binary Boot runs when BootOptions.QEMU is empty.
const DefaultQEMU = "qemu-system-x86_64"

// LibvirtUSBController is the -device argument of the USB controller
// libvirt 9 gives a pc machine (`virsh domxml-to-native qemu-argv`): the
// PIIX3 UHCI function of the south bridge, id usb, so its bus is usb.0.
// libvirt writes it in JSON; here it has the same keys and values in the
// key=value syntax, because QEMU 7.2 creates every key=value -device
// before any JSON one, and a device that names bus usb.0 in key=value
// syntax (xmlconfig's usb-ccid) must come after its controller.
const LibvirtUSBController = "piix3-usb-uhci,id=usb,bus=pci.0,addr=0x1.0x2"

// maxCmdline is the x86 kernel's COMMAND_LINE_SIZE, terminating NUL
// included.
const maxCmdline = 2048

// maxConsole bounds how much of the serial console a VM keeps.
const maxConsole = 4 << 20

// BootOptions configures Boot.
type BootOptions struct {
	// Scenario names what the guest's init runs: wait_card, readers,
	// apdu, latency, watch, piv, idle, none or shell (see init.sh), or several
	// of them separated by commas, run in order in one boot until one
	// fails. Empty means none.
	Scenario string
	// Params are the scenario's parameters, passed on the kernel command
	// line as vscard.KEY=VALUE. Keys are lower-case letters, digits and
	// underscores; values are non-empty printable ASCII without spaces or
	// quotes. Nil means none.
	Params map[string]string
	// ExtraQEMUArgs are appended to QEMU's command line: the usb-ccid
	// device, the chardev and the ccid-card-passthru device a test wants.
	ExtraQEMUArgs []string
	// NoDefaultUSB leaves out -usb (the pc machine's UHCI controller, whose
	// bus is usb-bus.0), for callers whose ExtraQEMUArgs bring their own
	// controller as libvirt does (piix3-usb-uhci with id usb, bus usb.0).
	NoDefaultUSB bool
	// LibvirtUSB replaces -usb with the USB controller libvirt 9 gives a pc
	// machine (LibvirtUSBController: piix3-usb-uhci with id usb, whose bus
	// is usb.0), so that devices written with libvirt's bus names, such as
	// xmlconfig's usb-ccid on a CCIDController USB port, plug in. It
	// implies NoDefaultUSB.
	LibvirtUSB bool
	// QEMU is the binary to run; empty means DefaultQEMU from $PATH.
	QEMU string
	// MemoryMiB is the guest's memory; 0 means 256.
	MemoryMiB int
	// Console, when set, receives a copy of the serial console, a line at
	// a time as it arrives, from the VM's reader goroutine (until Close
	// returns). A slow writer slows the guest's console.
	Console io.Writer
	// QMP gives QEMU a QMP monitor on a Unix socket in a private temporary
	// directory, for VM.QMP and VM.WaitQMPEvent (to unplug and plug
	// devices, say). Boot then returns once the monitor is ready.
	QMP bool
	// Logger receives debug messages (the QEMU command without the
	// parameters' values). Nil means none.
	Logger *slog.Logger
}

// Sentinel errors, matchable with errors.Is.
var (
	// ErrBadParam is wrapped when a scenario name or parameter cannot be
	// put on the kernel command line.
	ErrBadParam = errors.New("guest: bad boot parameter")
	// ErrNoEnd is wrapped when QEMU exited before the guest printed
	// VSCARD-END.
	ErrNoEnd = errors.New("guest: the guest stopped before its scenario ended")
	// ErrExited is wrapped when a wait ends because QEMU exited before
	// what was waited for appeared.
	ErrExited = errors.New("guest: QEMU exited")
)

// ScenarioError reports a scenario that ended with a non-zero status.
type ScenarioError struct {
	// Scenario is the scenario's name, or "boot" or "watchdog" when the
	// guest failed before a scenario started or timed out.
	Scenario string
	RC       int
	// Errors are the guest's VSCARD-ERROR lines.
	Errors []string
}

func (e *ScenarioError) Error() string {
	msg := fmt.Sprintf("guest: scenario %s failed with rc=%d", e.Scenario, e.RC)
	if len(e.Errors) > 0 {
		msg += ": " + strings.Join(e.Errors, "; ")
	}
	return msg
}

// End is a VSCARD-END line: a scenario and its exit status.
type End struct {
	Scenario string
	RC       int
}

// Result is what a finished guest reported.
type Result struct {
	// Ends are the VSCARD-END lines in order.
	Ends []End
	// Scenario and RC are the first End with a non-zero status, else the
	// last End; RC is -1 when nothing ended.
	Scenario string
	RC       int
	// Values maps each VSCARD-RESULT key to its last value.
	Values map[string]string
	// Errors are the VSCARD-ERROR lines' texts.
	Errors []string
	// Markers are all marker lines, in order.
	Markers []Marker
}

// Int returns the result key as an integer.
func (r Result) Int(key string) (int, error) {
	v, ok := r.Values[key]
	if !ok {
		return 0, fmt.Errorf("guest: no result %s", key)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("guest: result %s=%q: %w", key, v, err)
	}
	return n, nil
}

// VM is a running guest. Its methods are safe for concurrent use.
type VM struct {
	cmd       *exec.Cmd
	start     time.Time
	log       *slog.Logger
	scenarios []string // what the guest was asked to run

	mu        sync.Mutex
	markers   []Marker
	console   []byte
	stderr    bytes.Buffer
	changed   chan struct{} // closed and replaced when markers or exited change
	exited    bool
	exitErr   error
	nextEvent int // index in markers where WaitEvent looks next

	done     chan struct{} // closed once QEMU has exited and its output is read
	stopCtx  chan struct{} // closed by Close: ends the context watcher
	watchers sync.WaitGroup
	closed   sync.Once

	stdinMu sync.Mutex
	stdin   *os.File // the write end of QEMU's standard input: the console's input

	qmp    *qmpConn // nil without BootOptions.QMP
	qmpDir string   // the temporary directory of the monitor's socket
}

var (
	paramKey   = regexp.MustCompile(`^[a-z0-9_]+$`)
	paramValue = regexp.MustCompile(`^[!#-~]+$`) // printable ASCII, no space or "
)

// Cmdline returns the kernel command line Boot uses for opts.
func (opts BootOptions) Cmdline() (string, error) {
	scenarios := opts.scenarios()
	for _, sc := range scenarios {
		if !paramKey.MatchString(sc) {
			return "", fmt.Errorf("%w: scenario name %q", ErrBadParam, sc)
		}
	}
	words := []string{"console=ttyS0", "quiet", "loglevel=1", "panic=-1", "vscard.scenario=" + strings.Join(scenarios, ",")}
	keys := make([]string, 0, len(opts.Params))
	for k := range opts.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !paramKey.MatchString(k) || k == "scenario" {
			return "", fmt.Errorf("%w: parameter name %q", ErrBadParam, k)
		}
		if !paramValue.MatchString(opts.Params[k]) {
			// The value is not quoted: it may be a PIN.
			return "", fmt.Errorf("%w: parameter %s: value must be non-empty printable ASCII without spaces or quotes", ErrBadParam, k)
		}
		words = append(words, "vscard."+k+"="+opts.Params[k])
	}
	line := strings.Join(words, " ")
	if len(line) >= maxCmdline {
		return "", fmt.Errorf("%w: kernel command line of %d bytes, the limit is %d", ErrBadParam, len(line), maxCmdline-1)
	}
	return line, nil
}

// scenarios splits Scenario.
func (opts BootOptions) scenarios() []string {
	if opts.Scenario == "" {
		return []string{"none"}
	}
	return strings.Split(opts.Scenario, ",")
}

// QEMUArgs returns the arguments (after the program name) Boot gives QEMU,
// except the -qmp option Boot adds for BootOptions.QMP (its socket is in a
// directory Boot creates).
func (opts BootOptions) QEMUArgs(img Image) ([]string, error) {
	cmdline, err := opts.Cmdline()
	if err != nil {
		return nil, err
	}
	mem := opts.MemoryMiB
	if mem == 0 {
		mem = 256
	}
	args := []string{
		"-machine", "pc",
		// TCG, never KVM: KVM crashes guests on the machines this runs on.
		// tb-size bounds the translation cache (QEMU's RSS); -cpu max gives
		// the guest RDRAND, so that pcscd does not block in getrandom().
		"-accel", "tcg,tb-size=64",
		"-cpu", "max",
		"-m", strconv.Itoa(mem),
		"-nodefaults",
		"-display", "none",
		"-serial", "stdio",
		"-no-reboot",
		"-kernel", img.Kernel,
		"-initrd", img.Initramfs,
		"-append", cmdline,
	}
	switch {
	case opts.LibvirtUSB:
		args = append(args, "-device", LibvirtUSBController)
	case !opts.NoDefaultUSB:
		// UHCI: usb-ccid is a full-speed device, EHCI alone does not work.
		args = append(args, "-usb")
	}
	return append(args, opts.ExtraQEMUArgs...), nil
}

// Boot starts QEMU on img with opts and returns the running guest. The VM
// lives until it powers itself off, ctx is done, or Close is called; the
// caller must call Close.
func Boot(ctx context.Context, img Image, opts BootOptions) (*VM, error) {
	args, err := opts.QEMUArgs(img)
	if err != nil {
		return nil, err
	}
	for _, f := range []string{img.Kernel, img.Initramfs} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("guest: image: %w", err)
		}
	}
	qemu := opts.QEMU
	if qemu == "" {
		qemu = DefaultQEMU
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var qmpDir string
	if opts.QMP {
		if qmpDir, err = os.MkdirTemp("", "vscardkit-qmp-"); err != nil {
			return nil, fmt.Errorf("guest: %w", err)
		}
		args = append(args, "-qmp", "unix:"+filepath.Join(qmpDir, "qmp.sock")+",server=on,wait=off")
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		removeDir(qmpDir)
		return nil, fmt.Errorf("guest: %w", err)
	}
	// QEMU's standard input is the serial console's input (SendLine).
	inR, inW, err := os.Pipe()
	if err != nil {
		pr.Close()
		pw.Close()
		removeDir(qmpDir)
		return nil, fmt.Errorf("guest: %w", err)
	}
	vm := &VM{
		log:       log,
		scenarios: opts.scenarios(),
		changed:   make(chan struct{}),
		done:      make(chan struct{}),
		stopCtx:   make(chan struct{}),
		stdin:     inW,
		qmpDir:    qmpDir,
	}
	cmd := exec.Command(qemu, args...)
	cmd.Stdin = inR
	cmd.Stdout = pw
	cmd.Stderr = &lockedWriter{mu: &vm.mu, w: &vm.stderr}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	vm.cmd = cmd
	log.Debug("guest: starting QEMU", "qemu", qemu, "scenario", opts.Scenario, "extra", opts.ExtraQEMUArgs)
	vm.start = time.Now()
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		inR.Close()
		inW.Close()
		removeDir(qmpDir)
		return nil, fmt.Errorf("guest: starting %s: %w", qemu, err)
	}
	pw.Close()
	inR.Close()
	go vm.run(pr, opts.Console)
	vm.watchers.Add(1)
	go func() {
		defer vm.watchers.Done()
		select {
		case <-ctx.Done():
			vm.kill()
		case <-vm.done:
		case <-vm.stopCtx:
		}
	}()
	if opts.QMP {
		q, br, err := dialQMP(ctx, filepath.Join(qmpDir, "qmp.sock"), vm.start, vm.done)
		if err != nil {
			vm.Close()
			return nil, err
		}
		vm.qmp = q
		vm.watchers.Add(1)
		go func() {
			defer vm.watchers.Done()
			q.readLoop(br)
		}()
	}
	return vm, nil
}

// removeDir removes a temporary directory, if there is one.
func removeDir(dir string) {
	if dir != "" {
		os.RemoveAll(dir)
	}
}

// SendLine types line and a newline on the guest's serial console (QEMU's
// standard input), where the wait_host scenario reads it. line must be
// printable ASCII.
func (vm *VM) SendLine(line string) error {
	for _, r := range line {
		if r < ' ' || r > '~' {
			return fmt.Errorf("%w: console input must be printable ASCII", ErrBadParam)
		}
	}
	vm.stdinMu.Lock()
	defer vm.stdinMu.Unlock()
	if vm.stdin == nil {
		return fmt.Errorf("guest: console input: %w", os.ErrClosed)
	}
	if _, err := vm.stdin.WriteString(line + "\n"); err != nil {
		return fmt.Errorf("guest: console input: %w", err)
	}
	return nil
}

// run reads the serial console until QEMU exits, then waits for QEMU.
func (vm *VM) run(r *os.File, copyTo io.Writer) {
	defer close(vm.done)
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if len(line) > 0 {
			vm.addLine(line, copyTo)
		}
		if err != nil {
			break
		}
	}
	r.Close()
	err := vm.cmd.Wait()
	vm.mu.Lock()
	vm.exited = true
	vm.exitErr = err
	vm.broadcastLocked()
	vm.mu.Unlock()
}

func (vm *VM) addLine(line string, copyTo io.Writer) {
	if copyTo != nil {
		copyTo.Write([]byte(line))
	}
	m, err := parseMarker(line)
	vm.mu.Lock()
	defer vm.mu.Unlock()
	vm.console = append(vm.console, line...)
	if over := len(vm.console) - maxConsole; over > 0 {
		vm.console = append(vm.console[:0], vm.console[over:]...)
	}
	if err == nil {
		m.At = time.Since(vm.start)
		vm.markers = append(vm.markers, m)
		vm.broadcastLocked()
	}
}

func (vm *VM) broadcastLocked() {
	close(vm.changed)
	vm.changed = make(chan struct{})
}

// PID returns QEMU's process id.
func (vm *VM) PID() int { return vm.cmd.Process.Pid }

// Done is closed once QEMU has exited.
func (vm *VM) Done() <-chan struct{} { return vm.done }

// Console returns what the guest printed on its serial console so far (at
// most the last 4 MiB), then QEMU's own standard error.
func (vm *VM) Console() string {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	s := string(vm.console)
	if vm.stderr.Len() > 0 {
		s += "\n--- QEMU stderr:\n" + vm.stderr.String()
	}
	return s
}

// Markers returns the marker lines read so far.
func (vm *VM) Markers() []Marker {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return append([]Marker(nil), vm.markers...)
}

// waitFor calls check under the lock until it reports done, QEMU exits or
// ctx is done.
func (vm *VM) waitFor(ctx context.Context, what string, check func() bool) error {
	for {
		vm.mu.Lock()
		if check() {
			vm.mu.Unlock()
			return nil
		}
		if vm.exited {
			err := vm.exitErr
			vm.mu.Unlock()
			if err != nil {
				return fmt.Errorf("%w (%v) before %s", ErrExited, err, what)
			}
			return fmt.Errorf("%w before %s", ErrExited, what)
		}
		ch := vm.changed
		vm.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("guest: waiting for %s: %w", what, ctx.Err())
		}
	}
}

// WaitEvent waits for the next VSCARD-EVENT named name and returns it.
// Events are consumed in order: each call looks only after the event the
// previous call returned, so a test can wait for "card state=absent" and
// then for the next "card".
func (vm *VM) WaitEvent(ctx context.Context, name string) (Marker, error) {
	var found Marker
	err := vm.waitFor(ctx, "event "+name, func() bool {
		for i := vm.nextEvent; i < len(vm.markers); i++ {
			m := vm.markers[i]
			if m.Kind == KindEvent && m.Name == name {
				vm.nextEvent = i + 1
				found = m
				return true
			}
		}
		return false
	})
	return found, err
}

// WaitResult waits until the guest has printed the result key and returns
// its first value.
func (vm *VM) WaitResult(ctx context.Context, key string) (string, error) {
	var v string
	err := vm.waitFor(ctx, "result "+key, func() bool {
		for _, m := range vm.markers {
			if m.Kind == KindResult && m.Name == key {
				v = m.Value
				return true
			}
		}
		return false
	})
	return v, err
}

// Wait waits for QEMU to exit (the guest powers off after its scenarios)
// and returns what the guest reported. The error is a *ScenarioError when a
// scenario (or the boot) ended with a non-zero status, wraps ErrNoEnd when
// a scenario asked for did not end, and reports ctx's error if ctx ends
// first (the VM keeps running).
func (vm *VM) Wait(ctx context.Context) (Result, error) {
	select {
	case <-vm.done:
	case <-ctx.Done():
		return vm.result(), fmt.Errorf("guest: waiting for the guest to power off: %w", ctx.Err())
	}
	res := vm.result()
	vm.mu.Lock()
	exitErr := vm.exitErr
	vm.mu.Unlock()
	if len(res.Ends) > 0 && res.RC != 0 {
		return res, &ScenarioError{Scenario: res.Scenario, RC: res.RC, Errors: res.Errors}
	}
	ended := map[string]bool{}
	for _, e := range res.Ends {
		ended[e.Scenario] = true
	}
	var missing []string
	for _, sc := range vm.scenarios {
		if !ended[sc] {
			missing = append(missing, sc)
		}
	}
	if len(missing) > 0 {
		msg := ": " + strings.Join(missing, ", ")
		if len(res.Errors) > 0 {
			msg += ": " + strings.Join(res.Errors, "; ")
		}
		if exitErr != nil {
			msg += fmt.Sprintf(" (QEMU: %v)", exitErr)
		}
		return res, fmt.Errorf("%w%s", ErrNoEnd, msg)
	}
	return res, nil
}

// result collects the markers read so far.
func (vm *VM) result() Result { return resultOf(vm.Markers()) }

// ParseConsole reads the markers of a guest's serial console from text (a
// console log, such as the file a libvirt domain's <serial type='file'>
// writes) and returns the result they make. Lines that are no markers are
// skipped.
func ParseConsole(text string) Result {
	var ms []Marker
	for line := range strings.Lines(text) {
		if m, err := parseMarker(line); err == nil {
			ms = append(ms, m)
		}
	}
	return resultOf(ms)
}

func resultOf(markers []Marker) Result {
	res := Result{RC: -1, Values: map[string]string{}}
	for _, m := range markers {
		res.Markers = append(res.Markers, m)
		switch m.Kind {
		case KindResult:
			res.Values[m.Name] = m.Value
		case KindError:
			res.Errors = append(res.Errors, m.Value)
		case KindEnd:
			rc, err := m.Int("rc")
			if err != nil {
				rc = -1
			}
			res.Ends = append(res.Ends, End{Scenario: m.Name, RC: rc})
		}
	}
	for _, e := range res.Ends {
		res.Scenario, res.RC = e.Scenario, e.RC
		if e.RC != 0 {
			break
		}
	}
	return res
}

// kill sends SIGKILL to QEMU (os.Process.Kill is safe against a PID that
// was already reaped).
func (vm *VM) kill() {
	vm.cmd.Process.Kill()
}

// Close kills QEMU (by PID) unless it has exited, and
// waits for it and for the VM's goroutines. It is safe to call more than
// once.
func (vm *VM) Close() error {
	vm.closed.Do(func() {
		vm.kill()
		close(vm.stopCtx)
	})
	<-vm.done
	if vm.qmp != nil {
		vm.qmp.nc.Close()
	}
	vm.watchers.Wait()
	vm.stdinMu.Lock()
	if vm.stdin != nil {
		vm.stdin.Close()
		vm.stdin = nil
	}
	vm.stdinMu.Unlock()
	removeDir(vm.qmpDir)
	return nil
}

// lockedWriter serialises writes to w with mu.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.w.(*bytes.Buffer); ok && b.Len() > maxConsole {
		return len(p), nil // enough of QEMU's complaints
	}
	return l.w.Write(p)
}
