// Package deb tests the Debian package `make deb` builds, and the sandbox
// its systemd units put vscclient-go in.
//
// What they check:
//   - TestPackage: scripts/mkdeb.sh (what `make deb` runs) builds
//     vscardkit_V_ARCH.deb; dpkg -i installs it into a copy-on-write view of
//     this machine (an overlay of / in a private mount namespace, entered
//     with chroot), where the stamped version, the system user, the man
//     pages (man -l and man NAME), the bash completions and the docs are
//     there and systemd-analyze verify accepts the units (and, so that the
//     check can fail, refuses a unit with a missing program and one with a
//     misspelt key); a reinstall keeps an edited conffile and the units an
//     administrator enabled; dpkg -r leaves the conffile and the user,
//     dpkg -P removes them, the enablement and the state, and after it the
//     overlay holds nothing the package wrote but dpkg's own records. The
//     machine itself is never written to, so an installed vscardkit is left
//     alone (and checked to be).
//   - TestSandbox: vscclient-go with the cards the units serve (soft,
//     pkcs11 with softhsm2, OpenSC's PKCS#11 module, the PC/SC readers of
//     a pcscd), traced with strace, makes only the system calls the units'
//     SystemCallFilter= allows, none that MemoryDenyWriteExecute= refuses
//     (a mapping both writable and executable, mprotect to executable), and
//     opens sockets of RestrictAddressFamilies= only. Without systemd as
//     PID 1 the units cannot be run here; these are the same rules, applied
//     to a trace.
//   - TestCopyright: packaging/debian/copyright has a paragraph for every
//     module the commands link.
//
// They need root (mount namespaces, chroot, dpkg), dpkg-deb, systemd
// (systemd-analyze), man-db, bash-completion, strace, softhsm2, OpenSC and
// pcscd; without one they skip, or fail under make test.
//
// References:
//   - Debian Policy Manual, chapter 6 (maintainer scripts) and 10.7
//     (configuration files)
//   - systemd.exec(5): SystemCallFilter=, MemoryDenyWriteExecute=,
//     RestrictAddressFamilies=; systemd-analyze(1): verify, syscall-filter
//   - deb-systemd-helper(1p)
package deb
