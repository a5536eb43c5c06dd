package guest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kind is the kind of a marker line the guest prints on its serial console.
type Kind string

// The marker kinds. Each is printed at the start of a line as
// "VSCARD-<KIND> ...".
const (
	// KindEvent is "VSCARD-EVENT NAME [key=value...]": something happened
	// that the host may wait for (the reader is listed, a card came or
	// went).
	KindEvent Kind = "EVENT"
	// KindBegin is "VSCARD-BEGIN SCENARIO".
	KindBegin Kind = "BEGIN"
	// KindResult is "VSCARD-RESULT KEY=VALUE".
	KindResult Kind = "RESULT"
	// KindEnd is "VSCARD-END SCENARIO rc=N".
	KindEnd Kind = "END"
	// KindError is "VSCARD-ERROR MESSAGE": why something failed.
	KindError Kind = "ERROR"
	// KindLog is "VSCARD-LOG TEXT": a program's log, printed on request.
	KindLog Kind = "LOG"
)

// Marker is one marker line of the guest's console.
type Marker struct {
	Kind Kind
	// Name is the event's name, the scenario's name (BEGIN, END) or the
	// result's key; empty for ERROR and LOG.
	Name string
	// Value is the result's value, or the text of an ERROR or LOG line.
	Value string
	// Fields are the key=value words after an event's or END's name.
	Fields map[string]string
	// At is when the host read the line, measured from the start of QEMU.
	At time.Duration
}

// Int returns the named field as an integer.
func (m Marker) Int(field string) (int, error) {
	v, ok := m.Fields[field]
	if !ok {
		return 0, fmt.Errorf("guest: %s %s marker has no field %s", m.Kind, m.Name, field)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("guest: %s %s marker field %s=%q: %w", m.Kind, m.Name, field, v, err)
	}
	return n, nil
}

// markerPrefix starts every marker line.
const markerPrefix = "VSCARD-"

// errNotMarker is returned by parseMarker for lines that are not markers.
var errNotMarker = errors.New("guest: not a marker line")

// parseMarker parses one console line. Kernel messages may share the
// console, so a marker is looked for anywhere in the line; text before it
// is ignored.
func parseMarker(line string) (Marker, error) {
	line = strings.TrimRight(line, "\r\n")
	i := strings.Index(line, markerPrefix)
	if i < 0 {
		return Marker{}, errNotMarker
	}
	rest := line[i+len(markerPrefix):]
	kind, body, _ := strings.Cut(rest, " ")
	body = strings.TrimSpace(body)
	m := Marker{Kind: Kind(kind)}
	switch m.Kind {
	case KindResult:
		k, v, ok := strings.Cut(body, "=")
		if !ok || k == "" {
			return Marker{}, fmt.Errorf("guest: malformed result line %q", line)
		}
		m.Name, m.Value = k, v
	case KindEvent, KindBegin, KindEnd:
		words := strings.Fields(body)
		if len(words) == 0 {
			return Marker{}, fmt.Errorf("guest: malformed %s line %q", kind, line)
		}
		m.Name = words[0]
		m.Fields = map[string]string{}
		for _, w := range words[1:] {
			if k, v, ok := strings.Cut(w, "="); ok {
				m.Fields[k] = v
			}
		}
	case KindError, KindLog:
		m.Value = body
	default:
		return Marker{}, errNotMarker
	}
	return m, nil
}
