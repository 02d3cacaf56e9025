#!/usr/bin/env bash
# rootfs/busybox-rootfs.sh: a small test rootfs from Debian's busybox-static, as erofs and ext4.
#
# The tree: /bin/busybox with a symlink per applet where `busybox --list-full` puts it (/bin,
# /sbin, /usr/bin, /usr/sbin), /etc/passwd and /etc/group with root (0) and user (1000),
# /root and /home/user (owned by 1000), empty /proc /sys /dev /tmp (1777). Both images are
# packed with vmm-mkrootfs and cached (see rootfs/cache.sh) under
#
#   ~/.cache/vmm/rootfs/busybox-<hash>/rootfs.erofs, rootfs.ext4
#
# hash: this script, cache.sh, vmm-mkrootfs and the busybox binary. Prints the image path as
# the LAST line of stdout:
#
#   img=$(rootfs/busybox-rootfs.sh --format ext4 | tail -n1)
#
# The cached images are shared: copy one before a test writes to it (vmm --rootfs-rw).
#
# Options:
#   --format erofs|ext4  which image's path to print (default erofs); both are built
#   --force              rebuild even if cached
#   -h, --help           this text
# Needs root (file owners). Exit status: 0 done, 125 an error (one line on stderr).
set -euo pipefail

prog='busybox-rootfs.sh'
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=rootfs/cache.sh
. "$here/cache.sh"

format=erofs force=''
while (($#)); do
	case $1 in
	--format)
		(($# >= 2)) || die "--format needs a value"
		format=$2
		shift 2
		;;
	--format=*) format=${1#*=} && shift ;;
	--force) force=--force && shift ;;
	-h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$here/$prog" && exit 0 ;;
	*) die "unknown argument '$1' (try --help)" ;;
	esac
done
[[ $format == erofs || $format == ext4 ]] || die "--format: '$format' is not erofs or ext4"

busybox=/bin/busybox
if ! [[ -x $busybox ]] || ! "$busybox" --list-full >/dev/null 2>&1; then
	die "$busybox (with --list-full) not found: apt-get install busybox-static"
fi
[[ $(id -u) == 0 ]] || die "must run as root (the tree has files owned by root and by 1000)"

name=busybox
key_input=$(cat "$here/$prog" "$here/cache.sh" "$here/vmm-mkrootfs" "$busybox" | sha256sum)

build_into() { # build_into OUT WORK
	local out=$1 tree=$2/tree applet up
	mkdir -p "$tree"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,home/user}
	install -m 0755 "$busybox" "$tree/bin/busybox"
	while read -r applet; do
		# relative links, so they resolve inside the guest and inside the tree alike
		case $applet in
		bin/busybox | linuxrc) continue ;; # linuxrc: for an initrd, not a rootfs
		bin/*) up='' ;;
		sbin/*) up=../bin/ ;;
		usr/bin/* | usr/sbin/*) up=../../bin/ ;;
		*) die "busybox --list-full: unexpected applet path '$applet'" ;;
		esac
		ln -s "${up}busybox" "$tree/$applet"
	done < <("$busybox" --list-full)
	[[ -L $tree/bin/sh ]] || ln -s busybox "$tree/bin/sh"
	printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'user:x:1000:1000:user:/home/user:/bin/sh' \
		'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$tree/etc/passwd"
	printf '%s\n' 'root:x:0:' 'user:x:1000:' 'nogroup:x:65534:' >"$tree/etc/group"
	printf '%s\n' '127.0.0.1 localhost' '::1 localhost' >"$tree/etc/hosts"
	chmod 1777 "$tree/tmp"
	chmod 0700 "$tree/root"
	chown 1000:1000 "$tree/home/user"
	"$here/vmm-mkrootfs" --format erofs "$tree" "$out/rootfs.erofs"
	"$here/vmm-mkrootfs" --format ext4 "$tree" "$out/rootfs.ext4"
}

cached_build "rootfs.$format" $force
