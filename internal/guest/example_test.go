package guest_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/vscardkit/vscardkit/internal/guest"
)

// A test boots the guest with QEMU's CCID reader on a TCP chardev (where
// the VSCard client connects) and reads what the guest saw.
func ExampleBoot() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	img, err := guest.Build(ctx, guest.BuildOptions{})
	if err != nil {
		log.Fatal(err)
	}
	vm, err := guest.Boot(ctx, img, guest.BootOptions{
		Scenario: "apdu",
		Params:   map[string]string{"apdus": "00a4040009a00000030800001000"},
		ExtraQEMUArgs: []string{
			"-device", "usb-ccid,id=ccid0",
			"-chardev", "socket,id=sc0,host=127.0.0.1,port=35963,server=on,wait=off",
			"-device", "ccid-card-passthru,chardev=sc0,bus=ccid0.0",
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer vm.Close()
	// ... connect the VSCard client to 127.0.0.1:35963 here ...
	res, err := vm.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("SELECT answered", res.Values["apdu.0"])
}
