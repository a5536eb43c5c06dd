//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"

	"github.com/vscardkit/vscardkit/internal/bridge"
	"github.com/vscardkit/vscardkit/internal/configcli"
)

// permissionHint explains a unix socket the client may not connect to
// (connect(2) needs write permission on the socket): whose it is, who the
// client runs as, and the set-up that works. libvirt makes a listening
// unix chardev itself, as root with mode 0775, and hands QEMU the socket,
// so only root, or the group of a setgid directory the socket is made in,
// may connect. It returns "" for any other error.
func permissionHint(t bridge.Target, err error) string {
	if t.Network != "unix" || !errors.Is(err, syscall.EACCES) {
		return ""
	}
	me := strconv.Itoa(os.Getuid())
	if u, err := user.Current(); err == nil {
		me = u.Username
	}
	whose := ""
	if fi, err := os.Stat(t.Address); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			whose = fmt.Sprintf("the socket is %s:%s, mode %04o; ", userName(st.Uid), groupName(st.Gid), fi.Mode().Perm())
		}
	}
	return whose + "vscclient-go runs as " + me + " and needs write permission on it: make the chardev in a setgid directory of a group " + me +
		" is in (vscclient-go config --transport unix does: " + configcli.SocketDir + ", which the vscardkit package makes), or run as a member of the socket's group"
}

func userName(uid uint32) string {
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		return u.Username
	}
	return strconv.FormatUint(uint64(uid), 10)
}

func groupName(gid uint32) string {
	if g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10)); err == nil {
		return g.Name
	}
	return strconv.FormatUint(uint64(gid), 10)
}
