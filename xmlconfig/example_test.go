package xmlconfig_test

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vscardkit/vscardkit/xmlconfig"
)

// A passthrough smartcard on TCP: the libvirt device, the QEMU arguments for
// the same card without libvirt, and the client that connects to it.
func Example() {
	c := xmlconfig.Config{Port: 2001}

	devices, err := c.DevicesXML()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(string(devices))

	args, _ := c.QEMUArgs()
	fmt.Println(strings.Join(args, " "))

	client, _ := c.ClientArgs()
	fmt.Println(xmlconfig.ClientProgram, strings.Join(client, " "))
	// Output:
	// <smartcard mode="passthrough" type="tcp">
	//   <source mode="bind" host="127.0.0.1" service="2001" tls="no"/>
	//   <protocol type="raw"/>
	// </smartcard>
	// -device usb-ccid,id=ccid0 -chardev socket,id=charsmartcard0,host=127.0.0.1,port=2001,server=on,wait=off,nodelay=on -device ccid-card-passthru,chardev=charsmartcard0,id=smartcard0,bus=ccid0.0
	// vscclient-go --connect tcp://127.0.0.1:2001
}

// Adding a smartcard to an existing domain leaves the rest of the document
// as it was.
func ExampleAddSmartcard() {
	domain := `<domain type='kvm'>
  <name>vm</name>
  <devices>
    <!-- the system disk -->
    <disk type='file' device='disk'><source file='/var/lib/libvirt/images/vm.qcow2'/><target dev='vda'/></disk>
    <memballoon model='virtio'/>
  </devices>
</domain>
`
	e, err := xmlconfig.AddSmartcard([]byte(domain), xmlconfig.Config{Transport: xmlconfig.Unix, Path: "/run/vm-smartcard.sock"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(string(e.Domain))
	// Output:
	// <domain type='kvm'>
	//   <name>vm</name>
	//   <devices>
	//     <!-- the system disk -->
	//     <disk type='file' device='disk'><source file='/var/lib/libvirt/images/vm.qcow2'/><target dev='vda'/></disk>
	//     <smartcard mode="passthrough" type="unix">
	//       <source mode="bind" path="/run/vm-smartcard.sock"/>
	//     </smartcard>
	//     <memballoon model='virtio'/>
	//   </devices>
	// </domain>
}

// The early draft form is translated to libvirt's schema.
func ExampleUpgradeDraft() {
	domain := `<domain type='qemu'>
  <devices>
    <smartcard mode='passthrough' name='ccid'>
      <serial type='tcp'>
        <source host='127.0.0.1' port='2001'/>
        <protocol type='tcp'/>
      </serial>
    </smartcard>
  </devices>
</domain>
`
	e, err := xmlconfig.UpgradeDraft([]byte(domain))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(string(e.Domain))
	// Output:
	// <domain type='qemu'>
	//   <devices>
	//     <smartcard mode="passthrough" type="tcp">
	//       <source mode="bind" host="127.0.0.1" service="2001" tls="no"/>
	//       <protocol type="raw"/>
	//     </smartcard>
	//   </devices>
	// </domain>
}

// Listening on every address without TLS earns a warning.
func ExampleConfig_Warnings() {
	for _, w := range (xmlconfig.Config{Host: "0.0.0.0", Port: 2001}).Warnings() {
		fmt.Println(w[:strings.Index(w, " Anyone")])
	}
	// Output:
	// WARNING: QEMU will listen on 0.0.0.0:2001 without TLS.
}

// A desk machine (Windows here) reaches the VM host over TLS: QEMU listens
// on every address with TLS and verify-peer=on, and the desk holds the CA
// certificate and its client certificate and key in its own directory.
func ExampleConfig_ClientArgs() {
	c := xmlconfig.Config{
		Host: "0.0.0.0", Port: 2001, TLS: true,
		ClientHost:   "vmhost.example",
		ClientTLSDir: `C:\Users\alice\vscardkit`,
	}
	fmt.Println(len(c.Warnings()), "warnings")
	args, err := c.ClientArgs()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(xmlconfig.ClientProgram+".exe", strings.Join(args, " "))

	// Without ClientHost the client cannot know where QEMU is.
	c.ClientHost = ""
	_, err = c.ClientArgs()
	fmt.Println(errors.Is(err, xmlconfig.ErrNoClientHost))
	// Output:
	// 0 warnings
	// vscclient-go.exe --connect tls://vmhost.example:2001 --tls-ca C:\Users\alice\vscardkit\ca-cert.pem --tls-cert C:\Users\alice\vscardkit\client-cert.pem --tls-key C:\Users\alice\vscardkit\client-key.pem
	// true
}
