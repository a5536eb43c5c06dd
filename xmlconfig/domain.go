package xmlconfig

import (
	"fmt"
	"strings"

	"libvirt.org/go/libvirtxml"
)

// NewDomain returns a minimal domain named name with c's smartcard, for
// trying a setup out: TCG (type='qemu', no KVM needed), a pc machine, 64 MiB,
// no disk and no network. Started paused (virsh start --paused) it already
// opens the smartcard's chardev; a client completes the VSCard handshake
// with it. For spicevmc it has SPICE graphics on 127.0.0.1.
func NewDomain(name string, c Config) (*libvirtxml.Domain, error) {
	if name == "" || strings.ContainsAny(name, "/\x00\n") {
		return nil, fmt.Errorf("xmlconfig: %w: domain name %q", ErrInvalidConfig, name)
	}
	n, err := c.normalized()
	if err != nil {
		return nil, err
	}
	sc, err := n.Smartcard()
	if err != nil {
		return nil, err
	}
	d := &libvirtxml.Domain{
		Type:   "qemu",
		Name:   name,
		Memory: &libvirtxml.DomainMemory{Value: 64, Unit: "MiB"},
		OS: &libvirtxml.DomainOS{
			Type: &libvirtxml.DomainOSType{Arch: "x86_64", Machine: "pc", Type: "hvm"},
		},
		Devices: &libvirtxml.DomainDeviceList{
			Smartcards: []libvirtxml.DomainSmartcard{*sc},
			MemBalloon: &libvirtxml.DomainMemBalloon{Model: "none"},
		},
	}
	ctl, err := n.ControllerDevice()
	if err != nil {
		return nil, err
	}
	if ctl != nil {
		d.Devices.Controllers = append(d.Devices.Controllers, *ctl)
	}
	if n.Mode == Passthrough && n.Transport == SpiceVMC {
		d.Devices.Graphics = append(d.Devices.Graphics, libvirtxml.DomainGraphic{
			Spice: &libvirtxml.DomainGraphicSpice{
				AutoPort: "yes",
				Listeners: []libvirtxml.DomainGraphicListener{
					{Address: &libvirtxml.DomainGraphicListenerAddress{Address: "127.0.0.1"}},
				},
			},
		})
	}
	return d, nil
}

// NewDomainXML is NewDomain marshalled, in the form libvirt writes (two
// spaces a level, empty elements closed with />), ending in a newline.
func NewDomainXML(name string, c Config) ([]byte, error) {
	d, err := NewDomain(name, c)
	if err != nil {
		return nil, err
	}
	s, err := marshalDevice(d, "", "  ", "\n")
	if err != nil {
		return nil, err
	}
	return []byte(s + "\n"), nil
}
