package guest

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// QMP, the QEMU Machine Protocol: JSON objects, one a line, on the monitor
// socket. QEMU greets with {"QMP": ...}; the client leaves negotiation mode
// with qmp_capabilities; then each {"execute": CMD, "arguments": ...,
// "id": ID} gets {"return": ...} or {"error": {"class", "desc"}} with the
// same id, and {"event": NAME, "data": ..., "timestamp": ...} lines arrive
// at any time (docs/interop/qmp-spec.rst).

// ErrNoQMP is returned by the QMP methods of a VM booted without
// BootOptions.QMP.
var ErrNoQMP = errors.New("guest: the VM has no QMP monitor (BootOptions.QMP)")

// QMPError is a command QEMU refused: the error object of its reply.
type QMPError struct {
	Command string
	Class   string // e.g. "GenericError", "DeviceNotFound"
	Desc    string
}

func (e *QMPError) Error() string {
	return fmt.Sprintf("guest: QMP %s: %s: %s", e.Command, e.Class, e.Desc)
}

// QMPEvent is an event QEMU sent on the monitor.
type QMPEvent struct {
	Name string
	// Data is the event's data object (null when it has none).
	Data json.RawMessage
	// At is when the host read the event, measured from the start of QEMU
	// (the same clock as Marker.At).
	At time.Duration
}

// qmpMessage is any line QEMU writes on the monitor.
type qmpMessage struct {
	QMP    json.RawMessage `json:"QMP"`
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	ID    json.RawMessage `json:"id"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// qmpRequest is a command line the client writes.
type qmpRequest struct {
	Execute   string `json:"execute"`
	Arguments any    `json:"arguments,omitempty"`
	ID        string `json:"id"`
}

// maxQMPLine bounds one line from QEMU (query replies can be long; none of
// the commands a test runs comes near).
const maxQMPLine = 4 << 20

// qmpConn is a QMP connection. One command runs at a time; a read loop
// goroutine, owned by the VM, reads replies and events until the socket
// closes.
type qmpConn struct {
	nc    net.Conn
	start time.Time

	cmdMu sync.Mutex // one command at a time

	mu      sync.Mutex
	nextID  int
	waiting string          // id of the command waiting for its reply
	reply   chan qmpMessage // where its reply goes (buffered)
	events  []QMPEvent      // every event so far
	next    int             // index in events where WaitQMPEvent looks next
	changed chan struct{}   // closed and replaced when events or err change
	err     error           // why the read loop stopped
}

// dialQMP connects to QEMU's monitor socket at path, polling until QEMU
// has created it, QEMU exits (exited is closed) or ctx ends, and leaves
// negotiation mode. The caller starts readLoop.
func dialQMP(ctx context.Context, path string, start time.Time, exited <-chan struct{}) (*qmpConn, *bufio.Reader, error) {
	var nc net.Conn
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			nc = c
			break
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("guest: connecting to QMP: %w", ctx.Err())
		case <-exited:
			return nil, nil, fmt.Errorf("%w before its QMP monitor listened", ErrExited)
		case <-time.After(10 * time.Millisecond):
		}
	}
	q := &qmpConn{nc: nc, start: start, changed: make(chan struct{})}
	br := bufio.NewReaderSize(nc, 64<<10)
	// The greeting, then qmp_capabilities, synchronously: no read loop yet.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()
	var greet qmpMessage
	if err := readQMP(br, &greet); err != nil || greet.QMP == nil {
		nc.Close()
		return nil, nil, fmt.Errorf("guest: QMP greeting: %v", cmp.Or(err, ctx.Err(), errors.New("not a greeting")))
	}
	if err := json.NewEncoder(nc).Encode(qmpRequest{Execute: "qmp_capabilities", ID: "caps"}); err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("guest: QMP: %w", err)
	}
	for {
		var m qmpMessage
		if err := readQMP(br, &m); err != nil {
			nc.Close()
			return nil, nil, fmt.Errorf("guest: QMP qmp_capabilities: %v", cmp.Or(ctx.Err(), err))
		}
		if m.Event != "" {
			q.events = append(q.events, QMPEvent{Name: m.Event, Data: m.Data, At: time.Since(start)})
			continue
		}
		if m.Error != nil {
			nc.Close()
			return nil, nil, &QMPError{Command: "qmp_capabilities", Class: m.Error.Class, Desc: m.Error.Desc}
		}
		break
	}
	nc.SetDeadline(time.Time{})
	return q, br, nil
}

// readQMP reads one line into m, refusing lines over maxQMPLine.
func readQMP(br *bufio.Reader, m *qmpMessage) error {
	var line []byte
	for {
		part, isPrefix, err := br.ReadLine()
		if err != nil {
			return err
		}
		if len(line)+len(part) > maxQMPLine {
			return fmt.Errorf("guest: QMP line longer than %d bytes", maxQMPLine)
		}
		line = append(line, part...)
		if !isPrefix {
			break
		}
	}
	*m = qmpMessage{}
	if err := json.Unmarshal(line, m); err != nil {
		return fmt.Errorf("guest: QMP: bad line %.100q: %w", line, err)
	}
	return nil
}

// readLoop reads replies and events until the connection ends.
func (q *qmpConn) readLoop(br *bufio.Reader) {
	for {
		var m qmpMessage
		err := readQMP(br, &m)
		q.mu.Lock()
		if err != nil {
			q.err = err
			if q.reply != nil {
				close(q.reply)
				q.reply = nil
			}
			q.broadcastLocked()
			q.mu.Unlock()
			return
		}
		switch {
		case m.Event != "":
			q.events = append(q.events, QMPEvent{Name: m.Event, Data: m.Data, At: time.Since(q.start)})
			q.broadcastLocked()
		case q.reply != nil && string(m.ID) == strconv.Quote(q.waiting):
			q.reply <- m
			q.reply = nil
		}
		q.mu.Unlock()
	}
}

func (q *qmpConn) broadcastLocked() {
	close(q.changed)
	q.changed = make(chan struct{})
}

// execute runs one command and returns its "return" value.
func (q *qmpConn) execute(ctx context.Context, command string, args any) (json.RawMessage, error) {
	q.cmdMu.Lock()
	defer q.cmdMu.Unlock()
	q.mu.Lock()
	if q.err != nil {
		err := q.err
		q.mu.Unlock()
		return nil, fmt.Errorf("guest: QMP %s: the monitor is gone: %w", command, err)
	}
	q.nextID++
	id := "vscardkit-" + strconv.Itoa(q.nextID)
	ch := make(chan qmpMessage, 1)
	q.waiting, q.reply = id, ch
	q.mu.Unlock()
	line, err := json.Marshal(qmpRequest{Execute: command, Arguments: args, ID: id})
	if err == nil {
		q.nc.SetWriteDeadline(deadlineOf(ctx))
		_, err = q.nc.Write(append(line, '\n'))
	}
	if err != nil {
		q.forget(ch)
		return nil, fmt.Errorf("guest: QMP %s: %w", command, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("guest: QMP %s: the monitor closed before replying", command)
		}
		if m.Error != nil {
			return nil, &QMPError{Command: command, Class: m.Error.Class, Desc: m.Error.Desc}
		}
		return m.Return, nil
	case <-ctx.Done():
		q.forget(ch)
		return nil, fmt.Errorf("guest: QMP %s: %w", command, ctx.Err())
	}
}

// forget stops waiting for ch's reply.
func (q *qmpConn) forget(ch chan qmpMessage) {
	q.mu.Lock()
	if q.reply == ch {
		q.reply = nil
	}
	q.mu.Unlock()
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// waitEvent waits for the next event named name that match accepts.
func (q *qmpConn) waitEvent(ctx context.Context, name string, match func(QMPEvent) bool) (QMPEvent, error) {
	for {
		q.mu.Lock()
		for i := q.next; i < len(q.events); i++ {
			ev := q.events[i]
			if ev.Name == name && (match == nil || match(ev)) {
				q.next = i + 1
				q.mu.Unlock()
				return ev, nil
			}
		}
		if q.err != nil {
			err := q.err
			q.mu.Unlock()
			return QMPEvent{}, fmt.Errorf("%w before QMP event %s (%v)", ErrExited, name, err)
		}
		ch := q.changed
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return QMPEvent{}, fmt.Errorf("guest: waiting for QMP event %s: %w", name, ctx.Err())
		}
	}
}

// QMP runs a QMP command on the VM's monitor and returns its "return"
// value; args is the command's arguments object (anything encoding/json
// marshals to an object), nil for none. A command QEMU refuses returns a
// *QMPError. For example:
//
//	vm.QMP(ctx, "device_del", map[string]any{"id": "ccid0"})
func (vm *VM) QMP(ctx context.Context, command string, args any) (json.RawMessage, error) {
	if vm.qmp == nil {
		return nil, ErrNoQMP
	}
	return vm.qmp.execute(ctx, command, args)
}

// WaitQMPEvent waits for the next QMP event named name (DEVICE_DELETED,
// say) that match accepts (nil accepts any) and returns it. Like
// WaitEvent it consumes events in order: each call looks only after the
// event the previous call returned, including events that came before the
// call.
func (vm *VM) WaitQMPEvent(ctx context.Context, name string, match func(QMPEvent) bool) (QMPEvent, error) {
	if vm.qmp == nil {
		return QMPEvent{}, ErrNoQMP
	}
	return vm.qmp.waitEvent(ctx, name, match)
}

// DeviceDeleted returns a WaitQMPEvent filter that accepts the
// DEVICE_DELETED event of the device with the given id.
func DeviceDeleted(id string) func(QMPEvent) bool {
	return func(ev QMPEvent) bool {
		var d struct {
			Device string `json:"device"`
		}
		return json.Unmarshal(ev.Data, &d) == nil && d.Device == id
	}
}
