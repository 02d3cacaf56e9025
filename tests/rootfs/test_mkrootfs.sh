#!/usr/bin/env bash
# vmm-mkrootfs without a guest: it packs a small tree (a file with an xattr and the setuid bit,
# a hard link, a symlink, a 0700 directory owned by 1000:1000, a fifo, a device node) into erofs
# and ext4, and the images are checked with erofs-utils (fsck.erofs, dump.erofs) and e2fsprogs
# (e2fsck -fn, debugfs); bad input gives one "vmm-mkrootfs: ..." line and exit 125.
# Prints TAP. Usage: test_mkrootfs.sh VMM_MKROOTFS
# shellcheck disable=SC2016,SC2317 # checks are eval'd strings; helpers run through eval
set -u
mk=$1
mk_env=() # a prefix for the vmm-mkrootfs command in bad (env PATH=...)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 failed=0
root=0
[ "$(id -u)" -eq 0 ] && root=1

ok() { n=$((n + 1)) && echo "ok $n - $1"; }
not_ok() {
	n=$((n + 1)) failed=$((failed + 1))
	echo "not ok $n - $1"
	[ -s "$tmp/err" ] && sed 's/^/# /' "$tmp/err"
	return 0
}
skip() { n=$((n + 1)) && echo "ok $n - $1 # SKIP $2"; }
# expect NAME COMMAND...: ok when COMMAND succeeds
expect() {
	local name=$1
	shift
	if "$@"; then ok "$name"; else not_ok "$name"; fi
}
# as_root NAME COMMAND...: expect, or a skip when not root (owners and device nodes need root)
as_root() {
	if ((root)); then expect "$@"; else skip "$1" "needs root"; fi
}
# bad NAME STDERR_REGEX ARGS...: vmm-mkrootfs ARGS exits 125 with one matching line on stderr
bad() {
	local name=$1 want=$2
	shift 2
	"${mk_env[@]}" "$mk" "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
	local rc=$? lines
	lines=$(wc -l <"$tmp/err")
	if [ "$rc" -eq 125 ] && [ "$lines" -eq 1 ] && [ ! -s "$tmp/out" ] &&
		grep -Eq "^vmm-mkrootfs: .*$want" "$tmp/err"; then
		ok "$name"
	else
		not_ok "$name (exit $rc, $lines stderr lines)"
	fi
}
# pack NAME ARGS...: vmm-mkrootfs ARGS succeeds silently
pack() {
	local name=$1
	shift
	if "$mk" "$@" >"$tmp/out" 2>"$tmp/err" && [ ! -s "$tmp/out" ] && [ ! -s "$tmp/err" ]; then
		ok "$name"
	else
		not_ok "$name"
	fi
}

t=$tmp/tree
mkdir -p "$t/etc" "$t/private" "$t/empty"
printf 'hello rootfs\n' >"$t/etc/greeting"
chmod 4755 "$t/etc/greeting"
ln "$t/etc/greeting" "$t/etc/hardlink"
ln -s ../etc/greeting "$t/link"
chmod 0700 "$t/private"
mkfifo "$t/fifo"
python3 -c 'import os, sys; os.setxattr(sys.argv[1], "user.vmmtest", b"xattr-value-42")' \
	"$t/etc/greeting" 2>/dev/null || echo "# the tree's file system takes no user xattrs"
xattr_ok=0
python3 -c 'import os, sys; sys.exit(b"user.vmmtest" not in [n.encode() for n in os.listxattr(sys.argv[1])])' \
	"$t/etc/greeting" 2>/dev/null && xattr_ok=1
if ((root)); then
	chown 1000:1000 "$t/private"
	mknod "$t/null" c 1 3
fi

echo "1..44"

# ---- erofs ------------------------------------------------------------------
pack "erofs: packs the tree (default format), silently" "$t" "$tmp/a.erofs"
expect "erofs: fsck.erofs finds the image sound" eval 'fsck.erofs "$tmp/a.erofs" >"$tmp/err" 2>&1'
dumpe() { dump.erofs --path="$1" "$tmp/a.erofs" 2>&1; }
expect "erofs: the 0700 directory keeps its mode" eval 'dumpe /private | grep -q "Access: 0700/rwx------"'
as_root "erofs: the directory keeps owner 1000:1000" eval 'dumpe /private | grep -Eq "Uid: 1000 +Gid: 1000"'
expect "erofs: the symlink is a symlink" eval 'dumpe /link | grep -q "symlink file"'
expect "erofs: the fifo is a fifo" eval 'dumpe /fifo | grep -q "FIFO file"'
as_root "erofs: the device node is a char device" eval 'dumpe /null | grep -q "char dev"'
expect "erofs: the hard link shares the file's inode" eval \
	'[ "$(dumpe /etc/greeting | grep -o "NID: [0-9]*")" = "$(dumpe /etc/hardlink | grep -o "NID: [0-9]*")" ] && dumpe /etc/greeting | grep -q "Links: 2"'
if ((xattr_ok)); then
	expect "erofs: the xattr is stored" eval \
		'dumpe /etc/greeting | grep -Eq "Xattr size: [1-9]" && grep -q xattr-value-42 "$tmp/a.erofs" && dumpe /etc/hardlink | grep -Eq "Xattr size: [1-9]"'
else
	skip "erofs: the xattr is stored" "no user xattrs on $tmp"
fi
# dump.erofs and fsck.erofs --extract show permission bits only; the setuid bit is read from
# the on-disk inode: i_mode is at byte 4 of the inode at meta_blkaddr * block size + nid * 32.
erofs_mode() {
	python3 - "$tmp/a.erofs" "$(dumpe "$1" | sed -n 's/^NID: \([0-9]*\).*/\1/p')" <<'EOF'
import struct, sys
img = open(sys.argv[1], "rb").read()
blkszbits = img[1024 + 12]
meta_blkaddr, = struct.unpack_from("<I", img, 1024 + 40)
mode, = struct.unpack_from("<H", img, (meta_blkaddr << blkszbits) + int(sys.argv[2]) * 32 + 4)
print("%o" % mode)
EOF
}
expect "erofs: the setuid bit is kept" eval '[ "$(erofs_mode /etc/greeting)" = 104755 ]'
rm -rf "$tmp/x"
expect "erofs: fsck.erofs --extract gives back the tree" eval 'fsck.erofs --extract="$tmp/x" "$tmp/a.erofs" >"$tmp/err" 2>&1'
expect "erofs: file contents and symlink target survive" eval \
	'cmp -s "$t/etc/greeting" "$tmp/x/etc/greeting" && [ "$(readlink "$tmp/x/link")" = ../etc/greeting ]'
as_root "erofs: the device node keeps major 1, minor 3" eval '[ "$(stat -c %t:%T "$tmp/x/null")" = 1:3 ]'

# ---- ext4 -------------------------------------------------------------------
pack "ext4: packs the tree, silently" --format ext4 "$t" "$tmp/a.ext4"
expect "ext4: e2fsck -fn finds the file system clean" eval 'e2fsck -fn "$tmp/a.ext4" >"$tmp/err" 2>&1'
stat4() { debugfs -R "stat $1" "$tmp/a.ext4" 2>/dev/null; }
expect "ext4: the 0700 directory keeps its mode" eval 'stat4 /private | grep -Eq "Type: directory +Mode: +0700"'
as_root "ext4: the directory keeps owner 1000:1000" eval 'stat4 /private | grep -Eq "User: +1000 +Group: +1000"'
expect "ext4: the file keeps the setuid bit and both links" eval \
	'stat4 /etc/greeting | grep -Eq "Type: regular +Mode: +04755" && stat4 /etc/greeting | grep -q "Links: 2"'
expect "ext4: the symlink points where it did" eval 'stat4 /link | grep -q "Fast link dest: \"../etc/greeting\""'
expect "ext4: the fifo is a fifo" eval 'stat4 /fifo | grep -q "Type: FIFO"'
as_root "ext4: the device node keeps major 1, minor 3" eval \
	'stat4 /null | grep -q "Type: character special" && stat4 /null | grep -q "Device major/minor number: 01:03"'
if ((xattr_ok)); then
	expect "ext4: the xattr is stored" eval 'stat4 /etc/greeting | grep -q "user.vmmtest (14) = \"xattr-value-42\""'
else
	skip "ext4: the xattr is stored" "no user xattrs on $tmp"
fi
expect "ext4: file contents survive" eval \
	'[ "$(debugfs -R "cat /etc/greeting" "$tmp/a.ext4" 2>/dev/null)" = "hello rootfs" ]'

# sizing: the default leaves room to write (25% of the data at least); --size is exact
mkdir -p "$tmp/big"
head -c $((8 << 20)) /dev/urandom >"$tmp/big/blob"
free_kib() { dumpe2fs -h "$1" 2>/dev/null | awk -F: '/^Free blocks/ { f = $2 } /^Block size/ { b = $2 } END { print f * b / 1024 }'; }
pack "ext4: a tree with 8 MiB of data packs at the default size" --format ext4 "$tmp/big" "$tmp/big.ext4"
expect "ext4: the default size leaves at least 2 MiB free" eval '[ "$(free_kib "$tmp/big.ext4")" -ge 2048 ]'
pack "ext4: --size 48 packs" --format ext4 --size 48 "$tmp/big" "$tmp/s48.ext4"
expect "ext4: --size 48 gives a 48 MiB file system" eval '[ "$(stat -c %s "$tmp/s48.ext4")" -eq $((48 << 20)) ]'
"$mk" --format ext4 --size 4 "$tmp/big" "$tmp/small.ext4" >"$tmp/out" 2>"$tmp/err"
rc=$?
expect "ext4: a --size too small fails (exit 1, the last line says mke2fs failed), leaves no file" eval \
	'[ $rc -eq 1 ] && tail -n1 "$tmp/err" | grep -q "^vmm-mkrootfs: mke2fs failed" && [ ! -e "$tmp/small.ext4" ] && [ -z "$(find "$tmp" -maxdepth 1 -name ".*.tmp-*")" ]'

# ---- bad input: one line, exit 125 --------------------------------------------------------------
bad "no arguments" "expected DIR and IMG, got 0"
bad "three arguments" "expected DIR and IMG, got 3" "$t" "$tmp/c.img" extra
bad "unknown option" "unknown option '--compress'" --compress "$t" "$tmp/c.img"
bad "unknown format" "--format: 'xfs' is not erofs or ext4" --format xfs "$t" "$tmp/c.img"
bad "--format without a value" "--format needs a value" "$t" "$tmp/c.img" --format
bad "--size not a number" "--size: '1G' is not a number" --format ext4 --size 1G "$t" "$tmp/c.img"
bad "--size 0" "--size: '0' MiB is out of range" --format ext4 --size 0 "$t" "$tmp/c.img"
bad "--size with erofs" "--size applies to --format ext4 only" --size 64 "$t" "$tmp/c.img"
bad "missing DIR" "$tmp/none: no such directory" "$tmp/none" "$tmp/c.img"
bad "DIR is a file" "not a directory" "$tmp/a.erofs" "$tmp/c.img"
bad "IMG exists" "already exists .use --force" "$t" "$tmp/a.erofs"
bad "IMG's directory missing" "$tmp/nodir: no such directory for the image" "$t" "$tmp/nodir/c.img"
bad "IMG inside DIR" "is inside" "$t" "$t/etc/self.img"
mkdir -p "$tmp/bin"
for c in bash dirname realpath; do ln -s "$(command -v "$c")" "$tmp/bin/$c"; done
mk_env=(env "PATH=$tmp/bin")
bad "mkfs.erofs missing names the package" "mkfs.erofs not found: apt-get install erofs-utils" "$t" "$tmp/c.img"
mk_env=()

# --force replaces an existing image with a sound one
pack "--force replaces an existing image" --force --format ext4 "$t" "$tmp/a.erofs"
expect "the replaced image is the new ext4" eval 'e2fsck -fn "$tmp/a.erofs" >"$tmp/err" 2>&1'

[ "$n" -eq 44 ] || echo "# ran $n tests, planned 44"
exit $((failed > 0))
