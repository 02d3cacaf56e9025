#!/usr/bin/env bash
# The test rootfs builders without a guest: rootfs/busybox-rootfs.sh builds its erofs and ext4
# images into a cache of this test's own, prints the image path last, reuses a finished entry
# and never one left unfinished; the images hold what the integration tests rely on (applet
# links, root and user 1000, /tmp 1777). debian-rootfs.sh is only checked for bad arguments
# here: it downloads (the integration tests run it). Needs root. Prints TAP.
# Usage: test_builders.sh SOURCE_DIR
# shellcheck disable=SC2016,SC2034,SC2317 # checks are eval'd strings that use these names
set -u
src=$1
if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP needs root (the busybox tree has files owned by root and by 1000)"
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export VMM_ROOTFS_CACHE=$tmp/cache
bb=$src/rootfs/busybox-rootfs.sh
. "$src/tests/lib/tap.sh"
TAP_SHOW=$tmp/err
# bad NAME REGEX CMD...: exit 125, one line on stderr that matches
bad() {
	local name=$1 want=$2
	shift 2
	"$@" </dev/null >"$tmp/out" 2>"$tmp/err"
	local rc=$?
	check "$name" eval '[ $rc -eq 125 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -Eq "$want" "$tmp/err"'
}

echo "1..19"
erofs=$("$bb" 2>"$tmp/err" | tail -n1)
check "busybox: builds, the last line is the erofs image in the cache" eval \
	'[[ $erofs == "$VMM_ROOTFS_CACHE"/busybox-*/rootfs.erofs && -f $erofs && -f ${erofs%/*}/done ]]'
ext4=$("$bb" --format ext4 2>"$tmp/err" | tail -n1)
check "busybox: --format ext4 gives the ext4 image beside it" eval '[ "$ext4" = "${erofs%/*}/rootfs.ext4" ] && [ -f "$ext4" ]'
check "busybox: no temp dirs are left in the cache" eval '[ -z "$(find "$VMM_ROOTFS_CACHE" -maxdepth 1 -name ".tmp-*")" ]'
before=$(stat -c %i:%Y "$erofs")
again=$("$bb" 2>"$tmp/err" | tail -n1)
check "busybox: a second call reuses the entry (same path, same file)" eval \
	'[ "$again" = "$erofs" ] && [ "$(stat -c %i:%Y "$erofs")" = "$before" ] && [ ! -s "$tmp/err" ]'

check "erofs: fsck.erofs finds the image sound" eval 'fsck.erofs "$erofs" >"$tmp/err" 2>&1'
rm -rf "$tmp/x"
fsck.erofs --extract="$tmp/x" --preserve "$erofs" >"$tmp/err" 2>&1
x=$tmp/x
check "erofs: /bin/busybox runs and /bin/sh, /usr/bin/env link to it" eval \
	'"$x/bin/busybox" true && [ "$(readlink "$x/bin/sh")" = busybox ] && [ "$(readlink "$x/usr/bin/env")" = ../../bin/busybox ]'
check "erofs: every applet of busybox --list has a link" eval \
	'(for a in $("$x/bin/busybox" --list); do [ "$a" = linuxrc ] || [ -e "$x/bin/$a" ] || [ -e "$x/sbin/$a" ] || [ -e "$x/usr/bin/$a" ] || [ -e "$x/usr/sbin/$a" ] || { echo "no $a" >"$tmp/err"; exit 1; }; done)'
check "erofs: /etc/passwd and /etc/group have root and user 1000" eval \
	'grep -qx "root:x:0:0:root:/root:/bin/sh" "$x/etc/passwd" && grep -q "^user:x:1000:1000:" "$x/etc/passwd" && grep -qx "user:x:1000:" "$x/etc/group"'
check "erofs: /proc /sys /dev /tmp are there and empty" eval \
	'(for d in proc sys dev tmp; do [ -d "$x/$d" ] && [ -z "$(ls -A "$x/$d")" ] || exit 1; done)'
check "erofs: /home/user belongs to 1000" eval '[ "$(stat -c %u:%g "$x/home/user")" = 1000:1000 ]'

check "ext4: e2fsck -fn finds the file system clean" eval 'e2fsck -fn "$ext4" >"$tmp/err" 2>&1'
check "ext4: /tmp is 1777, /home/user belongs to 1000" eval \
	'debugfs -R "stat /tmp" "$ext4" 2>/dev/null | grep -Eq "Mode: +01777" && debugfs -R "stat /home/user" "$ext4" 2>/dev/null | grep -Eq "User: +1000 +Group: +1000"'

# An entry without its done marker (a build cut short before the rename cannot leave one; an
# older layout or a hand-made copy can) is rebuilt, not used.
rm "${erofs%/*}/done"
: >"$erofs"
again=$("$bb" 2>"$tmp/err" | tail -n1)
check "busybox: an entry without 'done' is rebuilt" eval \
	'[ "$again" = "$erofs" ] && [ -s "$erofs" ] && [ -f "${erofs%/*}/done" ] && fsck.erofs "$erofs" >"$tmp/err" 2>&1'
# A temp dir that a killed build left (SIGKILL: no trap ran) is removed by the next build.
stale=$(dirname "$erofs")
stale=$VMM_ROOTFS_CACHE/.tmp-${stale##*/}-killed
mkdir -p "$stale/out" && : >"$stale/out/rootfs.erofs"
before=$(stat -c %i "$erofs")
"$bb" --force >/dev/null 2>"$tmp/err"
check "busybox: --force rebuilds the entry" eval '[ "$(stat -c %i "$erofs")" != "$before" ] && fsck.erofs "$erofs" >"$tmp/err" 2>&1'
check "busybox: the killed build's temp dir is gone" eval '[ ! -e "$stale" ]'

bad "busybox: an unknown format" "^busybox-rootfs.sh: --format: 'xfs' is not erofs or ext4" "$bb" --format xfs
bad "busybox: an unknown argument" "^busybox-rootfs.sh: unknown argument '--size'" "$bb" --size 3
bad "debian: an unknown argument" "^debian-rootfs.sh: unknown argument 'sid'" "$src/rootfs/debian-rootfs.sh" sid
bad "debian: a bad suite name" "^debian-rootfs.sh: --suite: 'a b' is not a suite name" \
	"$src/rootfs/debian-rootfs.sh" --suite "a b"

[ "$n" -eq 19 ] || echo "# ran $n tests, planned 19"
[ "$failed" -eq 0 ]
