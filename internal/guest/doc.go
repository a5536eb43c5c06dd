// Package guest builds a minimal Linux guest from Debian packages and boots
// it under QEMU, so that end-to-end tests can check what a real guest's
// PC/SC stack sees of a card bridged by vscclient-go.
//
// The image is a Debian kernel (the uncompressed vmlinux of the
// linux-image package that apt lists offer, fetched with `apt-get download`
// and never installed) and an uncompressed cpio initramfs holding busybox,
// the USB modules, pcscd with libccid, and OpenSC's opensc-tool and
// pkcs11-tool plus pcsc_scan, all copied from the host with their libraries.
// Build caches it under ~/.cache/vscardkit/guest, keyed by a hash of every
// input.
//
// Boot starts QEMU (TCG) with the image and a scenario named on the kernel
// command line. The guest's init (init.sh) waits for QEMU's CCID reader
// (USB 08e6:4433), starts pcscd, runs the scenario and prints its results
// as marker lines on the serial console:
//
//	VSCARD-EVENT reader uptime_ms=3120
//	VSCARD-BEGIN apdu
//	VSCARD-RESULT apdu.0=9000
//	VSCARD-END apdu rc=0
//
// then powers off. The VM parses these into Markers and a Result. The
// caller adds the usb-ccid device and its chardev with
// BootOptions.ExtraQEMUArgs.
//
// References:
//   - QEMU USB CCID emulation: https://www.qemu.org/docs/master/system/devices/ccid.html
//   - Linux initramfs buffer format (newc cpio):
//     https://www.kernel.org/doc/html/latest/driver-api/early-userspace/buffer-format.html
//   - Linux boot parameters (how init gets them):
//     https://www.kernel.org/doc/html/latest/admin-guide/kernel-parameters.html
//   - libcacard's vscard_common.h: the VSCard protocol the tests' responder speaks.
package guest
