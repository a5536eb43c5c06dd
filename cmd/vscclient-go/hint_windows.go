package main

// noServiceHint is the hint for reader.ErrNoService.
const noServiceHint = "plug in the smart card reader: Windows runs its Smart Card service (SCardSvr) while a reader is attached"

// rearmHelp ends the usage's paragraph on the PIN guard: Windows has no
// SIGHUP, so the control socket (AF_UNIX, Windows 10 and later) or a
// restart re-arms it.
const rearmHelp = `re-arm it
with 'vscclient-go rearm --control PATH' when it was started with --control
PATH (Windows has no SIGHUP), or restart it.`

// rearmFlag ends --max-wrong-pins' description.
const rearmFlag = "vscclient-go rearm (with --control) or a restart"
