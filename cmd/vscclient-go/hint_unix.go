//go:build !windows

package main

// rearmHelp ends the usage's paragraph on the PIN guard.
const rearmHelp = `re-arm it
with SIGHUP (kill -HUP PID; systemctl reload vscclient-go@DOMAIN) or, with
--control PATH, with 'vscclient-go rearm --control PATH'.`

// rearmFlag ends --max-wrong-pins' description.
const rearmFlag = "SIGHUP, vscclient-go rearm or a restart"
