package guest

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestCmdline(t *testing.T) {
	got, err := BootOptions{Scenario: "piv", Params: map[string]string{"pin": "123456", "apdus": "00a40400,80ee0000"}}.Cmdline()
	if err != nil {
		t.Fatal(err)
	}
	want := "console=ttyS0 quiet loglevel=1 panic=-1 vscard.scenario=piv vscard.apdus=00a40400,80ee0000 vscard.pin=123456"
	if got != want {
		t.Errorf("Cmdline = %q\nwant      %q", got, want)
	}
	if got, _ := (BootOptions{}).Cmdline(); !strings.Contains(got, "vscard.scenario=none") {
		t.Errorf("zero options give %q, want scenario none", got)
	}
}

func TestCmdlineRejects(t *testing.T) {
	const secret = "12 34"
	for name, opts := range map[string]BootOptions{
		"scenario with space": {Scenario: "a b"},
		"upper-case key":      {Params: map[string]string{"PIN": "1"}},
		"dotted key":          {Params: map[string]string{"a.b": "1"}},
		"scenario as param":   {Params: map[string]string{"scenario": "x"}},
		"value with space":    {Params: map[string]string{"pin": secret}},
		"value with quote":    {Params: map[string]string{"pin": `1"2`}},
		"empty value":         {Params: map[string]string{"pin": ""}},
		"non-ASCII value":     {Params: map[string]string{"pin": "é"}},
		"too long":            {Params: map[string]string{"apdus": strings.Repeat("0", 2048)}},
	} {
		_, err := opts.Cmdline()
		if !errors.Is(err, ErrBadParam) {
			t.Errorf("%s: err = %v, want ErrBadParam", name, err)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error %q shows the value", name, err)
		}
	}
}

func TestQEMUArgs(t *testing.T) {
	img := Image{Kernel: "/k/vmlinux", Initramfs: "/k/initramfs.cpio"}
	extra := []string{"-device", "usb-ccid,id=ccid0"}
	args, err := BootOptions{Scenario: "readers", ExtraQEMUArgs: extra}.QEMUArgs(img)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range [][]string{
		{"-accel", "tcg,tb-size=64"}, {"-cpu", "max"}, {"-m", "256"}, {"-machine", "pc"},
		{"-kernel", "/k/vmlinux"}, {"-initrd", "/k/initramfs.cpio"}, {"-serial", "stdio"},
	} {
		i := slices.Index(args, want[0])
		if i < 0 || i+1 >= len(args) || args[i+1] != want[1] {
			t.Errorf("args lack %v: %q", want, args)
		}
	}
	for _, flag := range []string{"-usb", "-nodefaults", "-no-reboot"} {
		if !slices.Contains(args, flag) {
			t.Errorf("args lack %s", flag)
		}
	}
	if slices.ContainsFunc(args, func(a string) bool { return strings.Contains(a, "kvm") }) {
		t.Errorf("args mention KVM: %q", args)
	}
	if !slices.Equal(args[len(args)-2:], extra) {
		t.Errorf("extra args are not last: %q", args)
	}
	args, err = BootOptions{NoDefaultUSB: true, MemoryMiB: 512}.QEMUArgs(img)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(args, "-usb") || !slices.Contains(args, "512") {
		t.Errorf("NoDefaultUSB/MemoryMiB ignored: %q", args)
	}
	args, err = BootOptions{LibvirtUSB: true, ExtraQEMUArgs: extra}.QEMUArgs(img)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(args, "-usb") || !slices.Contains(args, LibvirtUSBController) || !slices.Equal(args[len(args)-2:], extra) {
		t.Errorf("LibvirtUSB: %q, want libvirt's controller instead of -usb and the extra args last", args)
	}
}
