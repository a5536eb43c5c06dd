//go:build !windows && !darwin

package main

// noServiceHint is the hint for reader.ErrNoService.
const noServiceHint = "start it (systemctl start pcscd.socket, or pcscd as root)"
