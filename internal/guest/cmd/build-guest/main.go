// Command build-guest builds (or finds in the cache) the guest image the
// end-to-end tests boot, and prints its files.
//
// Usage:
//
//	go run ./internal/guest/cmd/build-guest [-v] [-cache DIR] [-kernel PKG]
//
// It prints shell assignments, for example:
//
//	KERNEL=/root/.cache/vscardkit/guest/kernel-linux-image-6.1.0-56-amd64_6.1.192-2/vmlinux
//	INITRAMFS=/root/.cache/vscardkit/guest/image-0123456789abcdef/initramfs.cpio
//	RELEASE=6.1.0-56-amd64
//	CACHED=true
//
// A kernel can then be booted by hand with the interactive shell scenario:
//
//	qemu-system-x86_64 -machine pc -accel tcg,tb-size=64 -cpu max -m 256 \
//	  -usb -nodefaults -display none -serial stdio -no-reboot \
//	  -kernel "$KERNEL" -initrd "$INITRAMFS" \
//	  -append "console=ttyS0 quiet vscard.scenario=shell"
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"

	"github.com/vscardkit/vscardkit/internal/guest"
)

func main() {
	verbose := flag.Bool("v", false, "log what the builder does")
	cacheDir := flag.String("cache", "", "cache directory (default $"+guest.CacheEnv+", else ~/.cache/vscardkit/guest)")
	kernel := flag.String("kernel", "", "Debian kernel image package (default: the one linux-image-amd64 depends on)")
	flag.Parse()

	opts := guest.BuildOptions{CacheDir: *cacheDir, KernelPackage: *kernel}
	if *verbose {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	img, err := guest.Build(ctx, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "build-guest: error: %v\n", err)
		fmt.Fprintln(os.Stderr, "hint: run `make deps` (as root) and make sure `apt-get download` works")
		os.Exit(1)
	}
	fmt.Printf("KERNEL=%s\nINITRAMFS=%s\nRELEASE=%s\nCACHED=%t\n", img.Kernel, img.Initramfs, img.KernelRelease, img.Cached)
}
