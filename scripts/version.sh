#!/bin/sh
# version.sh: print vscardkit's version, as `make build` stamps it into the
# commands (-X .../internal/cli.version) and `make deb` names the package.
#
#   scripts/version.sh         the Go-style version:
#                                v1.2.3                 on the tag v1.2.3
#                                v1.2.3-4-g6f6366f      4 commits after it
#                                v0.0.0-20261207-6f6366f  no tag yet (commit date, UTC)
#                                v0.0.0-20261207-unknown  no git (today's date)
#                              and -dirty when the work tree has changes
#   scripts/version.sh --deb   the same as a Debian version, which must
#                              start with a digit and sort in release order:
#                                1.2.3, 1.2.3+git20261207.4.6f6366f,
#                                0.0.0~git20261207.6f6366f, ...~rc1, ....dirty
#   scripts/version.sh --deb V maps the Go-style version V instead.
#
# VERSION in the environment overrides what git says (make VERSION=...).
set -eu

cd "$(dirname "$0")/.."

goversion() {
	if [ -n "${VERSION:-}" ]; then
		echo "$VERSION"
		return
	fi
	if ! command -v git >/dev/null 2>&1 || ! git rev-parse --git-dir >/dev/null 2>&1; then
		echo "v0.0.0-$(date -u +%Y%m%d)-unknown"
		return
	fi
	if v=$(git describe --tags --dirty --match 'v[0-9]*' 2>/dev/null); then
		echo "$v"
		return
	fi
	dirty=""
	if ! git diff --quiet HEAD -- 2>/dev/null; then
		dirty="-dirty"
	fi
	echo "v0.0.0-$(commitdate HEAD)-$(git rev-parse --short=7 HEAD)$dirty"
}

# commitdate REV: the commit date of REV as YYYYMMDD in UTC.
commitdate() {
	TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d "$1"
}

# debversion V: the Debian version for the Go-style version V.
debversion() {
	v=${1#v}
	dirty=""
	case $v in
	*-dirty)
		v=${v%-dirty}
		dirty=".dirty"
		;;
	esac
	case $v in
	*-*-g*)
		# 1.2.3-4-g6f6366f: after the tag 1.2.3, so it sorts above it.
		hash=${v##*-g}
		rest=${v%-g*}
		n=${rest##*-}
		base=$(tagversion "${rest%-*}")
		date=$(commitdate "$hash" 2>/dev/null || date -u +%Y%m%d)
		out="$base+git$date.$n.$hash"
		;;
	0.0.0-[0-9]*-*)
		# 0.0.0-20261207-6f6366f: before any release.
		rest=${v#0.0.0-}
		out="0.0.0~git${rest%%-*}.${rest#*-}"
		;;
	*)
		out=$(tagversion "$v")
		;;
	esac
	out="$out$dirty"
	if ! echo "$out" | grep -Eq '^[0-9]+\.[0-9][A-Za-z0-9.+~]*$'; then
		echo "version.sh: error: $1 maps to $out, which is not a Debian version" >&2
		exit 1
	fi
	echo "$out"
}

# tagversion T: a tag's version less its v, a pre-release (1.2.3-rc1)
# written 1.2.3~rc1 so that it sorts below 1.2.3.
tagversion() {
	echo "$1" | sed 's/-/~/; s/-/./g'
}

case ${1:-} in
"")
	goversion
	;;
--deb)
	debversion "${2:-$(goversion)}"
	;;
*)
	echo "usage: scripts/version.sh [--deb [VERSION]]" >&2
	exit 2
	;;
esac
