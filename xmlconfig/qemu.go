package xmlconfig

import (
	"fmt"
	"strconv"
	"strings"
)

// The ids libvirt 9 gives the devices of a domain's only smartcard (checked
// against `virsh domxml-to-native qemu-argv`): QEMU's usb-ccid is the CCID
// controller with index 0, the chardev is named after the device alias
// smartcard0, and the TLS object after the chardev.
const (
	// ControllerID is the id of QEMU's usb-ccid device.
	ControllerID = "ccid0"
	// ChardevID is the id of the smartcard's chardev.
	ChardevID = "charsmartcard0"
	// CardID is the id of the ccid-card-passthru or ccid-card-emulated
	// device.
	CardID = "smartcard0"
	// TLSPriority is the GnuTLS priority string of the tls-creds-x509
	// object in the QEMU argv: GnuTLS's defaults without TLS 1.0 and 1.1,
	// which QEMU 7.2 otherwise accepts.
	TLSPriority = "NORMAL:-VERS-TLS1.0:-VERS-TLS1.1"
	// TLSObjectID is the id of the chardev's tls-creds-x509 object.
	TLSObjectID = "objcharsmartcard0_tls0"
	// CCIDBus is the bus usb-ccid provides: the card devices sit on it.
	CCIDBus = ControllerID + ".0"
	// SpiceVMCName is the spicevmc channel name QEMU gives a smartcard.
	SpiceVMCName = "smartcard"
)

// QEMUArgs returns the QEMU command-line arguments for c, for users who run
// QEMU without libvirt: the usb-ccid controller, the TLS credentials object
// and chardev (passthrough), and the ccid-card-* device, with the ids and
// bus names libvirt 9 uses. Values are in QEMU's key=value syntax (commas in
// values doubled).
//
// Differences from what libvirt generates, on purpose: usb-ccid names a
// USB bus and port only when c.Controller sets one (libvirt always names the
// port it picked, on its controller "usb"; a plain QEMU's bus has another
// name), and a TCP chardev has nodelay=on (libvirt's has not, which costs
// tens of milliseconds an APDU with a client that does nothing about it;
// see package vscard) unless c.LibvirtChardev asks for libvirt's chardev.
//
// The VM needs a USB controller (-usb on the pc machine, or -device
// qemu-xhci), and for SpiceVMC a -spice display.
func (c Config) QEMUArgs() ([]string, error) {
	n, err := c.normalized()
	if err != nil {
		return nil, err
	}
	ccid := opts("usb-ccid", "id", ControllerID)
	if n.Controller != nil && n.Controller.USBPort != "" {
		ccid = opts("usb-ccid", "id", ControllerID, "bus", "usb.0", "port", n.Controller.USBPort)
	}
	args := []string{"-device", ccid}

	switch n.Mode {
	case Host:
		args = append(args, "-device", opts("ccid-card-emulated",
			"backend", "nss-emulated", "id", CardID, "bus", CCIDBus))
	case HostCertificates:
		db := n.Database
		if db == "" {
			db = DefaultDatabase
		}
		args = append(args, "-device", opts("ccid-card-emulated",
			"backend", "certificates",
			"cert1", n.Certificates[0], "cert2", n.Certificates[1], "cert3", n.Certificates[2],
			"db", db, "id", CardID, "bus", CCIDBus))
	case Passthrough:
		switch n.Transport {
		case TCP:
			kv := []string{"id", ChardevID, "host", n.Host, "port", strconv.Itoa(n.Port),
				"server", "on", "wait", "off"}
			if !n.LibvirtChardev {
				kv = append(kv, "nodelay", "on")
			}
			if n.TLS {
				tls := []string{"id", TLSObjectID, "dir", n.TLSDir, "endpoint", "server", "verify-peer", "on"}
				if !n.LibvirtChardev {
					// QEMU 7.2's GnuTLS default still accepts TLS 1.0 and
					// 1.1; libvirt 9 has no setting for this.
					tls = append(tls, "priority", TLSPriority)
				}
				args = append(args, "-object", opts("tls-creds-x509", tls...))
				kv = append(kv, "tls-creds", TLSObjectID)
			}
			args = append(args, "-chardev", opts("socket", kv...))
		case Unix:
			args = append(args, "-chardev", opts("socket",
				"id", ChardevID, "path", n.Path, "server", "on", "wait", "off"))
		case SpiceVMC:
			args = append(args, "-chardev", opts("spicevmc", "id", ChardevID, "name", SpiceVMCName))
		}
		args = append(args, "-device", opts("ccid-card-passthru",
			"chardev", ChardevID, "id", CardID, "bus", CCIDBus))
	}
	return args, nil
}

// opts formats a QEMU option argument: the leading value, then key=value
// pairs, with commas in values doubled as QEMU's parser wants.
func opts(first string, kv ...string) string {
	var b strings.Builder
	b.WriteString(first)
	for i := 0; i+1 < len(kv); i += 2 {
		b.WriteByte(',')
		b.WriteString(kv[i])
		b.WriteByte('=')
		b.WriteString(strings.ReplaceAll(kv[i+1], ",", ",,"))
	}
	return b.String()
}

// QEMUConf returns the qemu.conf settings libvirt needs for c, as lines to
// add to /etc/libvirt/qemu.conf, with comments; "" when c needs none (no
// TLS).
//
// The domain's tls='yes' turns TLS on for the smartcard's chardev alone, so
// chardev_tls (TLS for every TCP chardev of every domain) stays as it is; the
// setting is printed commented out. libvirt's tls-creds object then reads
// chardev_tls_x509_cert_dir and verifies the client's certificate as
// chardev_tls_x509_verify says.
func (c Config) QEMUConf() (string, error) {
	n, err := c.normalized()
	if err != nil || !n.TLS {
		return "", err
	}
	return fmt.Sprintf(`# /etc/libvirt/qemu.conf: TLS for the smartcard's chardev (restart libvirtd or virtqemud after editing)
# The domain's tls='yes' turns TLS on for this chardev alone; chardev_tls = 1
# would turn it on for every TCP chardev of every domain.
#chardev_tls = 1
chardev_tls_x509_cert_dir = "%s"
chardev_tls_x509_verify = 1
`, n.TLSDir), nil
}
