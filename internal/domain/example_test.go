package domain_test

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/vscardkit/vscardkit/internal/domain"
)

// Look a domain up once and print where vscclient-go would connect.
func ExampleConn_Lookup() {
	ctx := context.Background()
	c, err := domain.Dial(ctx, "qemu:///system", nil)
	var ue *domain.UnreachableError
	if errors.As(err, &ue) {
		fmt.Println(err, "(is libvirtd running? systemctl start libvirtd)")
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	d, err := c.Lookup(ctx, "win11")
	var nf *domain.NotFoundError
	switch {
	case errors.As(err, &nf):
		fmt.Println("no such domain; libvirt has:", nf.Known)
	case err != nil:
		fmt.Println(err)
	case d.Err != nil:
		fmt.Println(d.Err)
	case d.State != domain.Running:
		fmt.Println(d.Name, "is", d.LibvirtState, "; it will listen on", d.Target)
	default:
		fmt.Println("vscclient-go --connect", d.Target)
	}
}

// Follow a domain until interrupted: connect when it runs, let go when it
// stops, keep the connection while libvirt itself is away.
func ExampleFollow() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	domain.Follow(ctx, "", "win11", nil, func(s domain.Status) {
		switch {
		case s.State == domain.Running && s.Domain.Err == nil:
			fmt.Println("connect to", s.Domain.Target)
		case s.State == domain.Running:
			fmt.Println("running, but:", s.Domain.Err)
		case s.State == domain.Unreachable:
			fmt.Println("libvirt unreachable, keeping the card connection:", s.Err)
		default:
			fmt.Println(s.Name, s.State, "; waiting")
		}
	})
}
