// Package hotplug holds vscardkit's end-to-end test of a PC/SC reader that
// is unplugged and plugged back while vscclient-go --card pcsc bridges it
// (issue 3), for real: on this host the kernel has no USB, and Debian's
// pcscd 1.9.9 (libudev hotplug) never adds or removes a reader.conf reader
// while it runs, so the reader, pcscd and vscclient-go run in a Linux guest
// (package internal/guest) and QEMU unplugs the reader.
//
//	host vscclient-go --card soft -> QEMU chardev -> ccid-card-passthru
//	  -> usb-ccid -> guest pcscd + libccid (udevd for hotplug)
//	  -> guest vscclient-go --card pcsc -> QEMU user network (guestfwd)
//	  -> tap -> vscardtest.Server, the VSCard host whose view is checked
//
// The tests:
//
//   - TestReaderUnplugged: QMP device_del of the usb-ccid makes the guest's
//     vscclient-go send CardRemove, then ReaderRemove; device_add of
//     usb-ccid and its card device (on a new chardev) makes it send
//     ReaderAdd and the card's ATR, and a SELECT from the host crosses the
//     whole chain; while the reader is away the guest's vscclient-go uses
//     next to no CPU (the guest reads its clock ticks in /proc); SIGTERM
//     makes it withdraw card and reader and exit 0.
//   - TestReaderReplugSameChardev: the same replug with the card device on
//     the chardev the host's vscclient-go stayed connected to: the new
//     device's Init makes that vscclient-go announce reader and card again
//     on its connection, and the card comes back to the guest.
//
// They need root (the guest image builder runs apt-get download), QEMU,
// pcscd, libccid, OpenSC, busybox-static and udev, and skip (or, under make
// test, fail) when one is missing.
//
// References:
//   - QEMU USB CCID emulation: https://www.qemu.org/docs/master/system/devices/ccid.html
//   - QEMU Machine Protocol: docs/interop/qmp-spec.rst; device_del,
//     device_add, chardev-remove, chardev-add in qapi/qdev.json and
//     qapi/char.json
//   - QEMU, hw/usb/ccid-card-passthru.c (passthru_realize sends Init)
//   - pcsc-lite, src/hotplug_libudev.c (the "udev" netlink monitor)
//   - libcacard, src/vscard_common.h: the VSCard messages the tap decodes
package hotplug
