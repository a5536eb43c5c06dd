// Package reader is a PC/SC client library for smart card readers: it
// lists readers and chooses one, watches readers and cards come and go,
// and talks to the card in a reader. It is built on github.com/ebfe/scard
// (pcsc-lite or PCSC.framework through cgo, winscard.dll on Windows) and
// knows nothing of VSCard or QEMU.
//
// # Readers
//
// List returns the readers with their card state; Choose (or Select) picks
// one by exact name (Exact), part of the name (Containing), position
// (Index), or as the first reader holding a card (FirstWithCard);
// ParseSelector turns a command-line argument into one of these. Errors say
// what to do about them and match with errors.Is and errors.As:
// ErrNoService ("no PC/SC service: is pcscd running?" on Linux), *NotFoundError
// (`reader "X" not found; readers present: A, B`), *AmbiguousError, and a
// *PCSCError for every PC/SC failure, which matches the condition its code
// stands for (ErrNoCard, ErrSharing, ErrReaderGone, ...).
//
// # Watching
//
// Watch reports ServiceUp/ServiceDown, ReaderAdded/ReaderRemoved and
// CardInserted/CardRemoved events. It blocks in SCardGetStatusChange with an
// infinite timeout on every reader plus the \\?PnP?\Notification
// pseudo-reader, and is woken by SCardCancel to stop, so it costs no CPU
// while nothing happens. When pcscd goes away, the watcher reports every
// card and reader gone and the service down, retries with capped backoff,
// and reports everything again when pcscd is back. pcsc-lite's per-reader
// event counter makes a card pulled and reinserted between two looks show
// as a removal and an insertion.
//
// # Cards
//
// Connect opens a card with T=0, T=1 or either, exclusively unless
// ConnectOptions.Shared. Card.Transmit carries short and extended APDUs
// (commands up to MaxCommand bytes; ebfe/scard receives every response into
// a buffer of pcsc-lite's MAX_BUFFER_SIZE_EXTENDED, 65548 bytes, so long
// responses need no special handling) and returns when its context ends
// even if the card does not answer. A card reset by another
// program, or removed and reinserted, is reconnected and reported as a
// *ResetError (errors.Is ErrCardReset) so that the caller can re-announce
// the ATR.
//
// # Platform notes
//
// Linux (and other Unix systems with pcsc-lite): listing and watching
// call pcsc-lite directly through cgo (see sys_pcsclite.go: the pinned
// ebfe/scard's GetStatusChange is not safe to call from two goroutines at
// once); cards go through ebfe/scard, also cgo. libpcsclite reads
// PCSCLITE_CSOCK_NAME (the daemon's socket) once per process, at the first
// PC/SC call.
//
// Windows: everything goes to winscard.dll without cgo (sys_windows.go for
// status, ebfe/scard for cards), so CGO_ENABLED=0 builds have PC/SC. The PnP
// pseudo-reader's state is fed back to winscard (its upper word counts the
// readers; without it the call returns at once). Windows runs its Smart
// Card service only while a reader is attached: with none, the service is
// down (ErrNoService) and a Watcher waits for it as for a stopped pcscd.
//
// macOS: PCSC.framework through cgo (sys_darwin.go); it reports no event
// counter, so a card pulled and reinserted between two looks may go
// unseen.
//
// Without cgo on Linux or macOS there is no PC/SC: the package compiles,
// and List, Watch and Connect fail with an error matching ErrUnsupported
// ("this build has no PC/SC support (built without cgo)").
//
// References:
//   - PC/SC Workgroup, Interoperability Specification for ICCs and Personal
//     Computer Systems, part 5 (the SCard API)
//   - pcsc-lite, src/winscard_clnt.c (SCardGetStatusChange: PnP
//     notification, event counter, cancellation) and src/winscard_msg.c
//     (getSocketName): https://github.com/LudovicRousseau/PCSC
//   - github.com/ebfe/scard: https://pkg.go.dev/github.com/ebfe/scard
//   - ISO/IEC 7816-3 section 8 (ATR), ISO/IEC 7816-4 section 5 (APDUs)
package reader
