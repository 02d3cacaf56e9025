# virtio-fs tests, sourced by boot-tests.sh (its helpers expect, ok, not_ok, $tmp, $vmm, $vmlinux)
# after lifecycle-tests.sh. Kept to two boots (the nest's time budget): one container whose root
# is a host directory (--rootfs DIR) does every file operation and reads and writes a read-only
# --share; one proves the worker thread's seccomp list is live. The directory is the busybox erofs
# image (VMM_TEST_BUSYBOX_EROFS) extracted with fsck.erofs, owners and modes kept.
bb=${VMM_TEST_BUSYBOX_EROFS:-}
export VMM_KERNEL=$vmlinux

# fsvm TIMEOUT ARGS...: vmm with byte-exact stdout in $tmp/out, stderr in $tmp/err, status in $rc.
fsvm() {
	local t=$1
	shift
	timeout -k 5 "$t" "$vmm" "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
}
# snap PATH: content hash, mode, owner, size and mtime (what a canary must keep)
snap() { echo "$(sha256sum <"$1") $(stat -c '%a %u:%g %s %Y.%y' "$1")"; }

fsroot=$tmp/fsroot
if [ -z "$bb" ] || [ ! -f "$bb" ]; then
	not_ok "virtio-fs tests: no busybox rootfs image (VMM_TEST_BUSYBOX_EROFS=$bb)"
elif ! fsck.erofs --extract="$fsroot" "$bb" >"$tmp/err" 2>&1 || [ ! -x "$fsroot/bin/busybox" ]; then
	rc=1
	not_ok "virtio-fs tests: cannot extract $bb into a directory (fsck.erofs --extract)"
else
	mkdir -p "$fsroot/work" "$tmp/roshare"
	echo ro-content >"$tmp/roshare/file"
	echo canary >"$tmp/canary" # next to the root directory and the share, outside both
	canary=$(snap "$tmp/canary")
	rofile=$(snap "$tmp/roshare/file")
	# shellcheck disable=SC2016 # expanded in the guest
	script='cd /work &&
printf content-1 >new.txt &&
printf "abc\n" >w.txt && printf "def\n" >>w.txt &&
echo data >old && mv old renamed &&
ln -s renamed link && ln renamed hard &&
echo x >mode && chmod 0751 mode &&
mkdir d && echo y >d/f && rm d/f && rmdir d &&
echo z >gone && rm gone &&
mkdir -p /ro && mount -t virtiofs ro /ro && cat /ro/file &&
{ sh -c "echo w >/ro/new" 2>&1 || echo ro-write-refused; } &&
grep " / " /proc/mounts &&
echo hello-fs; exit 42'
	fsvm 240 --rootfs "$fsroot" --share "tag=ro,path=$tmp/roshare,ro" -- /bin/sh -c "$script"
	expect "virtio-fs: --rootfs DIR runs echo from the directory and exits with its status (42)" \
		eval '[ $rc -eq 42 ] && [ "$(tail -n1 "$tmp/out")" = hello-fs ]'
	expect "virtio-fs: the root is the virtio-fs share vmm-root, no overlay" \
		eval 'grep -q "^vmm-root / virtiofs rw" "$tmp/out"'
	w=$fsroot/work
	expect "virtio-fs: files the guest created and wrote are on the host, byte for byte" \
		eval '[ "$(cat "$w/new.txt")" = content-1 ] && [ "$(printf "abc\ndef\n" | sha256sum)" = "$(sha256sum <"$w/w.txt")" ]'
	expect "virtio-fs: rename, symlink (target renamed) and hard link (2 links) are on the host" \
		eval '[ ! -e "$w/old" ] && [ "$(cat "$w/renamed")" = data ] && [ -L "$w/link" ] && [ "$(readlink "$w/link")" = renamed ] && [ "$(stat -c %h "$w/renamed")" = 2 ] && [ "$w/hard" -ef "$w/renamed" ]'
	expect "virtio-fs: chmod 0751 is the host's mode; removed files and directories are gone" \
		eval '[ "$(stat -c %a "$w/mode")" = 751 ] && [ ! -e "$w/d" ] && [ ! -e "$w/gone" ] && [ "$(stat -c %u "$w/new.txt")" = "$(id -u)" ]'
	expect "virtio-fs: a ro --share is read, a write is refused with EROFS, the share is unchanged" \
		eval 'grep -qx ro-content "$tmp/out" && grep -q "Read-only file system" "$tmp/out" && grep -qx ro-write-refused "$tmp/out" && [ ! -e "$tmp/roshare/new" ] && [ "$(snap "$tmp/roshare/file")" = "$rofile" ]'
	expect "virtio-fs: the host canary outside the shares is untouched" \
		eval '[ "$(snap "$tmp/canary")" = "$canary" ] && [ "$(ls "$tmp/roshare")" = file ]'

	VMM_SECCOMP_TEST=fs fsvm 180 --rootfs "$fsroot" -- /bin/true
	expect "seccomp: a forbidden call on the virtio-fs worker thread kills vmm (125) and names it" \
		eval '[ $rc -eq 125 ] && grep -q "seccomp: thread fs made a forbidden system call uname" "$tmp/err"'
fi
