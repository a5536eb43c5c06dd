package main

// noServiceHint is the hint for reader.ErrNoService.
const noServiceHint = "plug in the smart card reader: macOS starts its PC/SC service on demand"
