// Package xmlconfig describes a QEMU smartcard once (Config) and writes it
// every way a user needs it: libvirt's <smartcard> device (on
// libvirt.org/go/libvirtxml's types), a domain edited to hold it, the QEMU
// command line for users without libvirt, the qemu.conf settings TLS needs,
// and the vscclient-go command line that connects to it.
//
// Modes and transports:
//
//   - passthrough over tcp: QEMU's ccid-card-passthru listens
//     (<source mode='bind' host= service=/>, <protocol type='raw'/>) with
//     tls='yes' or tls='no'; the client is `vscclient-go --connect
//     tcp://HOST:PORT` (or tls://HOST:PORT with its certificate);
//   - passthrough over unix: QEMU listens on a socket path;
//   - passthrough over spicevmc: the card travels inside the SPICE
//     connection and the SPICE client is the card;
//   - host and host-certificates: QEMU's ccid-card-emulated presents a card
//     of the VM host's NSS database, or made of three of its certificates.
//
// The devices and ids match what libvirt 9 generates (`virsh
// domxml-to-native qemu-argv`): usb-ccid id=ccid0, chardev charsmartcard0,
// card smartcard0 on bus ccid0.0, TLS object objcharsmartcard0_tls0.
// libvirt and QEMU support one smartcard per domain, at CCID controller 0
// slot 0; xmlconfig refuses a second one.
//
// Editing a domain (AddSmartcard, UpgradeDraft) splices text into the
// document rather than round-tripping it through libvirtxml, which would
// reorder attributes and drop what it does not model: everything outside the
// inserted devices stays byte for byte as it was. UpgradeDraft reads the
// early draft form (<smartcard mode='passthrough' name='ccid'><serial
// type='tcp'>...) and writes libvirt's schema in its place.
//
// Safe defaults: QEMU listens on 127.0.0.1, and Warnings returns a loud
// warning for an address other machines can reach without TLS, since whoever
// connects is the guest's card and receives its PIN verifications.
//
// # References
//
//   - libvirt domain XML, "Smartcard devices" and "Character devices":
//     https://libvirt.org/formatdomain.html#smartcard-devices
//   - libvirt's schema, docs/schemas/domaincommon.rng (<smartcard>,
//     qemucdevSrcDef, ccidaddress), installed as
//     /usr/share/libvirt/schemas/domaincommon.rng and used by
//     virt-xml-validate.
//   - libvirt, src/qemu/qemu_command.c (smartcard and chardev command line)
//     and src/qemu/qemu_validate.c (one smartcard, controller 0 slot 0).
//   - libvirt's qemu.conf: chardev_tls, chardev_tls_x509_cert_dir,
//     chardev_tls_x509_verify.
//   - QEMU documentation, docs/system/devices/ccid.rst, and the
//     tls-creds-x509 object (docs/system/tls.rst: ca-cert.pem,
//     server-cert.pem, server-key.pem).
package xmlconfig
