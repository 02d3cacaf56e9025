#!/usr/bin/env bash
# rootfs/debian-rootfs.sh: a real Debian rootfs for tests, `debootstrap --variant=minbase`, as
# an erofs image built once and then reused from the cache (see rootfs/cache.sh):
#
#   ~/.cache/vmm/rootfs/debian-<suite>-<variant>-<hash>/rootfs.erofs
#
# hash: this script, cache.sh, vmm-mkrootfs, the suite, the variant and the mirror. A new
# Debian point release does not change the hash: --force rebuilds. Prints the image path as the
# LAST line of stdout (debootstrap's chatter goes to stderr):
#
#   img=$(rootfs/debian-rootfs.sh | tail -n1)
#
# The tree is debootstrap's, less the host's /etc/resolv.conf and /etc/hostname that
# debootstrap copies in (/etc/hostname becomes "debian"), and less apt's downloaded package
# lists and .deb files. Takes a few minutes and about 200 MB of downloads; needs root and
# network access to the mirror.
#
# Options:
#   --suite NAME     Debian suite (default bookworm)
#   --variant NAME   debootstrap variant (default minbase)
#   --mirror URL     (default http://deb.debian.org/debian)
#   --force          rebuild even if cached
#   -h, --help       this text
# Exit status: 0 done, 125 an error (one line on stderr, after debootstrap's own output).
set -euo pipefail

prog='debian-rootfs.sh'
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=rootfs/cache.sh
. "$here/cache.sh"

suite=bookworm variant=minbase mirror=http://deb.debian.org/debian force=''
while (($#)); do
	case $1 in
	--suite | --variant | --mirror)
		(($# >= 2)) || die "$1 needs a value"
		case $1 in
		--suite) suite=$2 ;;
		--variant) variant=$2 ;;
		--mirror) mirror=$2 ;;
		esac
		shift 2
		;;
	--force) force=--force && shift ;;
	-h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$here/$prog" && exit 0 ;;
	*) die "unknown argument '$1' (try --help)" ;;
	esac
done
[[ $suite =~ ^[a-z0-9-]+$ ]] || die "--suite: '$suite' is not a suite name"
[[ $variant =~ ^[a-z-]+$ ]] || die "--variant: '$variant' is not a variant name"
command -v debootstrap >/dev/null || die "debootstrap not found: apt-get install debootstrap"
[[ $(id -u) == 0 ]] || die "must run as root (debootstrap)"

name=debian-$suite-$variant
key_input=$(cat "$here/$prog" "$here/cache.sh" "$here/vmm-mkrootfs"; echo "$suite $variant $mirror")

build_into() { # build_into OUT WORK
	local out=$1 tree=$2/tree
	say "debootstrap --variant=$variant $suite from $mirror (a few minutes)"
	# stdout too goes to stderr: the last line of our stdout is the image path
	if ! debootstrap --variant="$variant" "$suite" "$tree" "$mirror" >&2; then
		tail -n 20 "$tree/debootstrap/debootstrap.log" >&2 2>/dev/null || true
		die "debootstrap --variant=$variant $suite $mirror failed (its output is above)"
	fi
	unmount_under "$tree"
	rm -f "$tree/etc/resolv.conf"
	echo debian >"$tree/etc/hostname"
	rm -rf "$tree"/var/lib/apt/lists/* "$tree"/var/cache/apt/archives/*.deb \
		"$tree"/var/cache/apt/*.bin
	"$here/vmm-mkrootfs" --format erofs "$tree" "$out/rootfs.erofs"
	say "tree $(du -sh "$tree" | cut -f1), $(find "$tree" -printf x | wc -c) inodes"
}

cached_build rootfs.erofs $force
