// Package service tests vscclient-go as a service on a libvirt host,
// against a real libvirtd: `vscclient-go serve` giving two domains two
// cards (each guest's own pcscd and OpenSC read and sign with its card),
// following their restarts, idle while one is off, re-arming over the
// control socket and reloading on SIGHUP; and `vscclient-go --domain`,
// including what it says when the domain, its smartcard or libvirtd is
// not what it needs.
package service
