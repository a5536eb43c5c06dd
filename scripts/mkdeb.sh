#!/bin/sh
# mkdeb.sh [DIR]: build vscardkit's Debian package, DIR/vscardkit_V_ARCH.deb
# (DIR defaults to dist), and print its path. `make deb` runs it, and so
# does internal/e2e/deb's test. No root needed: gcc, pkg-config and
# libpcsclite-dev for the build (make build-deps), dpkg-deb, and
# dpkg-shlibdeps (dpkg-dev) if it is there.
#
# It builds the commands, generates their man pages and bash completions
# from their --help (internal/cmd/genman), and packs them with the systemd
# units, the configuration (a conffile) and the docs from packaging/.
#
#   VERSION            the Go-style version (default: scripts/version.sh);
#                      the package's is scripts/version.sh --deb VERSION
#   GO                 the go command (default: go)
#   MAINTAINER         the Maintainer field (default: git's user.name <user.email>)
#   SOURCE_DATE_EPOCH  the time of the pages, the changelog and the files
#                      (default: the commit's)
set -eu
umask 022

top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-dist}
mkdir -p "$out"
out=$(cd "$out" && pwd)
GO=${GO:-go}

VERSION=${VERSION:-$("$top/scripts/version.sh")}
debversion=$("$top/scripts/version.sh" --deb "$VERSION")
goarch=$(cd "$top" && "$GO" env GOARCH)
case $goarch in
386) arch=i386 ;;
arm) arch=armhf ;;
*) arch=$goarch ;;
esac
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$top" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
if [ -z "${MAINTAINER:-}" ]; then
	name=$(git -C "$top" config user.name 2>/dev/null || true)
	email=$(git -C "$top" config user.email 2>/dev/null || true)
	MAINTAINER="${name:-vscardkit authors} <${email:-vscardkit@localhost}>"
fi
commit=$(git -C "$top" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)

work=$(mktemp -d "${TMPDIR:-/tmp}/vscardkit-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
doc=$root/usr/share/doc/vscardkit

# The commands: position-independent, stripped, paths trimmed, stamped, and
# the cgo parts with Debian's hardening flags (fortify, stack protector,
# read-only relocations bound at start).
mkdir -p "$root/usr/bin"
(cd "$top" && CGO_ENABLED=1 \
	CGO_CFLAGS="${CGO_CFLAGS:--g -O2} -D_FORTIFY_SOURCE=2 -fstack-protector-strong" \
	"$GO" build -trimpath -buildmode=pie \
	-ldflags "-s -w -linkmode=external -extldflags '-Wl,-z,relro,-z,now' -X github.com/vscardkit/vscardkit/internal/cli.version=$VERSION" \
	-o "$root/usr/bin/" ./cmd/...)

# Man pages and completions from the commands' --help.
(cd "$top" && "$GO" run ./internal/cmd/genman --bin "$root/usr/bin" \
	--man "$work/man1" --completion "$root/usr/share/bash-completion/completions")
mkdir -p "$root/usr/share/man/man1"
for page in "$work"/man1/*.1; do
	gzip -9n <"$page" >"$root/usr/share/man/man1/$(basename "$page").gz"
done

install -D -m 644 -t "$root/lib/systemd/system" "$top"/packaging/systemd/*.service
install -D -m 644 "$top/packaging/vscardkit.json" "$root/etc/vscardkit/vscardkit.json"

install -D -m 644 -t "$doc" "$top/README.md" "$top/SECURITY.md" "$top/packaging/debian/copyright"
install -D -m 644 "$top/packaging/domain.env" "$doc/examples/domain.env"
gzip -9n <"$top/CHANGELOG.md" >"$doc/changelog.gz"
cat >"$work/changelog.Debian" <<EOF
vscardkit ($debversion) bookworm; urgency=medium

  * vscardkit $VERSION,
    built by scripts/mkdeb.sh from git $commit.
    The changes are in /usr/share/doc/vscardkit/changelog.gz.

 -- $MAINTAINER  $(date -u -R -d "@$SOURCE_DATE_EPOCH")
EOF
gzip -9n <"$work/changelog.Debian" >"$doc/changelog.Debian.gz"

# Depends: what dpkg-shlibdeps reads in the binaries' dynamic sections
# (it wants a debian/control to sit in), or the two libraries they link.
depends="libc6, libpcsclite1"
if command -v dpkg-shlibdeps >/dev/null 2>&1; then
	mkdir -p "$work/shlibs/debian"
	printf 'Source: vscardkit\n\nPackage: vscardkit\nArchitecture: any\n' >"$work/shlibs/debian/control"
	if found=$(cd "$work/shlibs" && dpkg-shlibdeps -O "-e$root/usr/bin/vscclient-go" "-e$root/usr/bin/fake-ccid-server" 2>"$work/shlibs.err"); then
		depends=${found#shlibs:Depends=}
	else
		echo "mkdeb.sh: dpkg-shlibdeps failed, using Depends: $depends" >&2
		cat "$work/shlibs.err" >&2
	fi
fi

mkdir -p "$root/DEBIAN"
size=$(du -sk "$root" | cut -f1)
sed -e "s|@VERSION@|$debversion|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$MAINTAINER|" \
	-e "s|@SIZE@|$size|" -e "s|@DEPENDS@|$depends|" \
	"$top/packaging/debian/control" >"$root/DEBIAN/control"
(cd "$root" && find etc -type f | sed 's|^|/|' | sort) >"$root/DEBIAN/conffiles"
install -m 755 -t "$root/DEBIAN" "$top/packaging/debian/postinst" "$top/packaging/debian/prerm" "$top/packaging/debian/postrm"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort | xargs md5sum) >"$root/DEBIAN/md5sums"
chmod 644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

deb=$out/vscardkit_${debversion}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
