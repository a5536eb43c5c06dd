package main

// noServiceHint is the hint for reader.ErrNoService.
const noServiceHint = "plug in the smart card reader: Windows runs its Smart Card service (SCardSvr) while a reader is attached"
