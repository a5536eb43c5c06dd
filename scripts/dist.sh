#!/bin/sh
# dist.sh: build vscclient-go for the machines a card sits in (VM hosts and
# VDI desks) into dist/: one archive per target, a .tar.gz (a .zip for
# Windows) holding the program, README.md, LICENSE when there is one, and
# BUILD.txt (what the build can do), plus dist/SHA256SUMS.
#
#   linux/amd64    cgo: PC/SC (libpcsclite.so.1) and PKCS#11 modules
#   linux/arm64    cgo, cross-compiled (gcc-aarch64-linux-gnu and
#                  libpcsclite-dev:arm64 through Debian multiarch); when
#                  those cannot be installed, CGO_ENABLED=0: no PC/SC, no
#                  PKCS#11
#   windows/amd64  cgo with mingw-w64: PC/SC through winscard.dll, PKCS#11
#                  modules as DLLs; imports only system DLLs
#   darwin/arm64   CGO_ENABLED=0 (no macOS SDK here): --card soft and
#                  soft:DIR only; a Mac builds the full client itself with
#                  CGO_ENABLED=1 go build ./cmd/vscclient-go (README)
#
# Like install-deps.sh it installs the Debian packages it needs (cross
# compilers, zip) only when they are missing, with apt-get update at most
# once. DIST_TARGETS="linux/amd64 windows/amd64" builds a subset; GO names
# the go command; VERSION overrides scripts/version.sh. The archives go to
# the directory given (default dist/), beside what else is there (make
# deb's package): only earlier vscclient-go archives and SHA256SUMS go.
set -eu
cd "$(dirname "$0")/.."

GO=${GO:-go}
TARGETS=${DIST_TARGETS:-"linux/amd64 linux/arm64 windows/amd64 darwin/arm64"}
OUT=${1:-dist}
VERSION=${VERSION:-$(scripts/version.sh)}
# Archive timestamps: the last commit's, so that two builds of one commit
# make the same archives.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
fi
updated=""

# need PKG...: install the packages that are missing.
need() {
	missing=""
	for p in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
			missing="$missing $p"
		fi
	done
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" != 0 ] && [ -z "$SUDO" ]; then
		echo "dist: error: missing packages:$missing (run as root)" >&2
		return 1
	fi
	echo "dist: installing:$missing"
	if [ -z "$updated" ]; then
		$SUDO apt-get update -q || return 1
		updated=1
	fi
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
}

# arm64_cgo: make the arm64 cross compiler and libpcsclite-dev:arm64
# available; fails when multiarch cannot provide them.
arm64_cgo() {
	if ! dpkg --print-foreign-architectures | grep -qx arm64; then
		echo "dist: adding the arm64 architecture (dpkg multiarch) for libpcsclite-dev:arm64"
		$SUDO dpkg --add-architecture arm64 || return 1
		updated="" # the arm64 package lists are not there yet
	fi
	need gcc-aarch64-linux-gnu libc6-dev-arm64-cross libpcsclite-dev:arm64
}

need zip

mkdir -p "$OUT"
rm -f "$OUT"/vscclient-go-*.tar.gz "$OUT"/vscclient-go-*.zip "$OUT/SHA256SUMS"
status=0
for target in $TARGETS; do
	os=${target%/*}
	arch=${target#*/}
	exe=vscclient-go
	[ "$os" = windows ] && exe=vscclient-go.exe
	cgo=0
	cc=""
	pkgconf=""
	case $target in
	linux/amd64)
		need gcc pkg-config libpcsclite-dev
		cgo=1
		;;
	linux/arm64)
		if arm64_cgo; then
			need pkg-config
			cgo=1
			cc=aarch64-linux-gnu-gcc
			pkgconf=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig
		else
			echo "dist: warning: no arm64 cross toolchain with libpcsclite-dev:arm64; linux/arm64 is built without cgo (no PC/SC, no PKCS#11)" >&2
		fi
		;;
	windows/amd64)
		need gcc-mingw-w64-x86-64
		cgo=1
		cc=x86_64-w64-mingw32-gcc
		;;
	darwin/*) ;;
	*)
		echo "dist: error: unknown target $target" >&2
		exit 2
		;;
	esac
	name="vscclient-go-$VERSION-$os-$arch"
	dir="$OUT/$name"
	mkdir -p "$dir"
	echo "dist: building $target (CGO_ENABLED=$cgo${cc:+ CC=$cc})"
	if ! env GOOS="$os" GOARCH="$arch" CGO_ENABLED="$cgo" ${cc:+CC=$cc} ${pkgconf:+PKG_CONFIG_LIBDIR=$pkgconf} \
		"$GO" build -trimpath -ldflags "-s -w -X github.com/vscardkit/vscardkit/internal/cli.version=$VERSION" \
		-o "$dir/$exe" ./cmd/vscclient-go; then
		echo "dist: error: building $target failed" >&2
		rm -rf "$dir"
		status=1
		continue
	fi
	cp README.md "$dir/"
	[ -f LICENSE ] && cp LICENSE "$dir/"
	if [ "$cgo" = 1 ]; then
		case $os in
		linux) can="PC/SC through pcsc-lite (needs libpcsclite1 and a running pcscd), PKCS#11 modules (.so), --card soft and soft:DIR" ;;
		windows) can="PC/SC through winscard.dll (the Smart Card service), PKCS#11 modules (.dll), --card soft and soft:DIR" ;;
		esac
	else
		can="--card soft and soft:DIR only: built without cgo, so no PC/SC (--card pcsc, vscclient-go readers) and no PKCS#11 (--card pkcs11:...)"
		[ "$os" = darwin ] && can="$can. For the full client, build on the Mac (Xcode command line tools): CGO_ENABLED=1 go build ./cmd/vscclient-go"
	fi
	cat >"$dir/BUILD.txt" <<EOF
vscclient-go $VERSION for $os/$arch
built with $("$GO" env GOVERSION), CGO_ENABLED=$cgo${cc:+, CC=$cc}
cards: $can
See README.md, "Install on a Windows or macOS desk".
EOF
	(
		cd "$OUT"
		if [ "$os" = windows ]; then
			find "$name" -exec touch -d "@$SOURCE_DATE_EPOCH" {} +
			find "$name" -type f | LC_ALL=C sort | zip -q -X "$name.zip" -@
		else
			tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" -cf - "$name" | gzip -9n >"$name.tar.gz"
		fi
		rm -rf "$name"
	)
done

(
	cd "$OUT"
	files=$(ls ./vscclient-go-*.tar.gz ./vscclient-go-*.zip 2>/dev/null | sed 's#^\./##' || true)
	if [ -n "$files" ]; then
		# shellcheck disable=SC2086
		sha256sum $files >SHA256SUMS
	fi
	echo "dist: in $OUT/:"
	ls -l
)
exit $status
