module github.com/vscardkit/vscardkit

go 1.26.0

require (
	github.com/digitalocean/go-libvirt v0.0.0-20261013170128-efbbdf578ac8
	github.com/ebfe/scard v0.0.0-20230420082256-7db3f9b7c8a7
	github.com/go-piv/piv-go/v2 v2.6.0
	github.com/miekg/pkcs11 v1.1.2
	github.com/rogpeppe/go-internal v1.16.0
	go.uber.org/goleak v1.3.0
	golang.org/x/sync v0.25.0
	libvirt.org/go/libvirtxml v1.12008.0
)

require (
	golang.org/x/crypto v0.50.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/tools v0.42.0 // indirect
)
