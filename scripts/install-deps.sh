#!/bin/sh
# install-deps.sh: install the Debian packages vscardkit's build, tests and
# demos need (wine, wine64 and mingw-w64 run the Windows build's tests in
# internal/e2e/windows). Idempotent: it runs `apt-get update` at most once, and only when
# a package is missing. Needs root (or sudo) on a Debian 12 machine.
#
#   scripts/install-deps.sh           everything (make deps)
#   scripts/install-deps.sh --build   only what `make build` needs (make build-deps)
set -eu

BUILD_PACKAGES="
gcc
pkg-config
libpcsclite-dev
"

PACKAGES="$BUILD_PACKAGES
pcscd
libccid
pcsc-tools
vsmartcard-vpcd
softhsm2
opensc
opensc-pkcs11
qemu-system-x86
libvirt-daemon-system
libvirt-daemon-driver-qemu
libvirt-clients
busybox-static
cpio
xz-utils
iproute2
util-linux
procps
libxml2-utils
udev
openssh-server
dpkg-dev
man-db
bash-completion
systemd
adduser
strace
wine
wine64
gcc-mingw-w64-x86-64
"

case ${1:-} in
"") ;;
--build) PACKAGES=$BUILD_PACKAGES ;;
*)
	echo "usage: scripts/install-deps.sh [--build]" >&2
	exit 2
	;;
esac

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "install-deps: all $(echo $PACKAGES | wc -w) packages present"
	exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		echo "install-deps: error: missing packages:$missing" >&2
		echo "hint: run 'make deps' as root" >&2
		exit 1
	fi
fi

echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
