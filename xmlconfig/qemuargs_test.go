package xmlconfig

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// A parser for the QEMU arguments that concern a smartcard, in both the
// key=value syntax and the JSON syntax libvirt 9 uses for -device and
// -object, so that two command lines can be compared by keys and values.

// qemuOpt is one -device, -chardev or -object argument.
type qemuOpt struct {
	flag  string            // "-device", "-chardev", "-object"
	kind  string            // the driver, chardev backend or object type
	props map[string]string // the other keys, booleans as on/off
}

func (o qemuOpt) String() string {
	keys := make([]string, 0, len(o.props))
	for k := range o.props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", o.flag, o.kind)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%s", k, o.props[k])
	}
	return b.String()
}

// kindKey is the key that names an option's kind in JSON syntax.
var kindKey = map[string]string{"-device": "driver", "-object": "qom-type", "-chardev": "backend"}

func normBool(v string) string {
	switch v {
	case "on", "yes", "true":
		return "on"
	case "off", "no", "false":
		return "off"
	}
	return v
}

// parseQEMUOpt parses the value of flag.
func parseQEMUOpt(flag, val string) (qemuOpt, error) {
	o := qemuOpt{flag: flag, props: map[string]string{}}
	if strings.HasPrefix(val, "{") {
		var m map[string]any
		if err := json.Unmarshal([]byte(val), &m); err != nil {
			return o, fmt.Errorf("%s %s: %v", flag, val, err)
		}
		for k, v := range m {
			var s string
			switch v := v.(type) {
			case string:
				s = v
			case bool:
				s = normBool(strconv.FormatBool(v))
			case float64:
				s = strconv.FormatFloat(v, 'f', -1, 64)
			default:
				return o, fmt.Errorf("%s %s: key %s has a %T value", flag, val, k, v)
			}
			if k == kindKey[flag] {
				o.kind = s
			} else {
				o.props[k] = s
			}
		}
		return o, nil
	}
	// key=value,key=value with ",," standing for a comma in a value.
	var fields []string
	var cur strings.Builder
	for i := 0; i < len(val); i++ {
		if val[i] == ',' {
			if i+1 < len(val) && val[i+1] == ',' {
				cur.WriteByte(',')
				i++
				continue
			}
			fields = append(fields, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(val[i])
	}
	fields = append(fields, cur.String())
	for i, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			if i != 0 {
				return o, fmt.Errorf("%s %s: field %q has no value", flag, val, f)
			}
			o.kind = f
			continue
		}
		if k == kindKey[flag] || (flag == "-object" && k == "qom-type") {
			o.kind = v
			continue
		}
		o.props[k] = normBool(v)
	}
	return o, nil
}

// smartcardOpts returns the options of args that make a smartcard: usb-ccid,
// the ccid-card-* device, the chardev charsmartcard0 and its TLS object,
// each keyed by flag and id.
func smartcardOpts(args []string) (map[string]qemuOpt, error) {
	out := map[string]qemuOpt{}
	for i := 0; i+1 < len(args); i++ {
		flag := args[i]
		if flag != "-device" && flag != "-chardev" && flag != "-object" {
			continue
		}
		o, err := parseQEMUOpt(flag, args[i+1])
		if err != nil {
			return nil, err
		}
		i++
		id := o.props["id"]
		switch {
		case flag == "-device" && (o.kind == "usb-ccid" || strings.HasPrefix(o.kind, "ccid-card-")):
		case flag == "-chardev" && id == ChardevID:
		case flag == "-object" && id == TLSObjectID:
		default:
			continue
		}
		key := flag + " " + id
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("two %s", key)
		}
		out[key] = o
	}
	return out, nil
}
