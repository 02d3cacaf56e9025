# --volume tests, sourced by boot-tests.sh (its helpers expect, ok, not_ok, $tmp, $vmm, $vmlinux)
# after fs-tests.sh. One boot (the nest's time budget): a container on the busybox erofs image
# (so under the agent's overlay) with a read-write directory volume, a read-only one, a
# read-write single file and a read-only single file, a --tmpfs at /run (mode 755, 8 MiB) with a
# read-only volume bound inside it, and a read-only --tmpfs at /scratch (default mode 1777); then
# the host's side: what the guest wrote, what it could not, and that neither the host's mount
# table nor /run or $TMPDIR keep anything.
bb=${VMM_TEST_BUSYBOX_EROFS:-}
export VMM_KERNEL=$vmlinux

# volvm TIMEOUT ARGS...: vmm with stdout in $tmp/out, stderr in $tmp/err, status in $rc.
volvm() {
	local t=$1
	shift
	timeout -k 5 "$t" "$vmm" "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
}
# the host's trace of vmm's staging: mounts naming it or the volumes, and the entries of /run and
# $TMPDIR (vmm makes no directory there: this proves it)
host_trace() {
	grep -c -e vmm-vol -e "$tmp/vol" /proc/self/mountinfo
	ls -a /run "${TMPDIR:-/tmp}" 2>/dev/null | grep -c '^vmm'
}

if [ -z "$bb" ] || [ ! -f "$bb" ]; then
	not_ok "--volume tests: no busybox rootfs image (VMM_TEST_BUSYBOX_EROFS=$bb)"
else
	v=$tmp/vol
	mkdir -p "$v/rw" "$v/ro"
	echo ro-content >"$v/ro/file"
	echo file-content >"$v/file"
	echo rofile-content >"$v/rofile"
	before=$(host_trace)
	ro_sum=$(sha256sum "$v/ro/file" "$v/rofile")
	# shellcheck disable=SC2016 # expanded in the guest
	script='echo from-guest >/data/new && cat /ro/file &&
{ sh -c "echo w >/ro/new" 2>&1 || echo ro-write-refused; } &&
cat /etc/vol-file && echo appended >>/etc/vol-file &&
cat /etc/ro-file && { sh -c "echo w >>/etc/ro-file" 2>&1 || echo rofile-write-refused; } &&
grep -E " /(ro|data|etc/vol-file|etc/ro-file|run/in-tmpfs) " /proc/mounts &&
grep -E "^tmpfs /(run|scratch) " /proc/mounts && ls -ld /run /scratch &&
echo in-run >/run/new && echo "tmpfs-read: $(cat /run/new)" &&
echo "in-tmpfs: $(cat /run/in-tmpfs/file)" &&
{ out=$(sh -c "echo w >/scratch/new" 2>&1) && echo scratch-write-ok || echo "scratch-write-refused: $out"; } &&
echo hello-vol; exit 42'
	volvm 240 --rootfs "$bb" --volume "$v/rw:/data" --volume "$v/ro:/ro:ro" \
		--volume "$v/file:/etc/vol-file" --volume "$v/rofile:/etc/ro-file:ro" \
		--volume "$v/ro:/run/in-tmpfs:ro" --tmpfs /scratch:ro --tmpfs /run:mode=755,size=8 \
		-- /bin/sh -c "$script"
	expect "--volume: the container runs on a busybox image with five volumes and two tmpfs and exits 42" \
		eval '[ $rc -eq 42 ] && [ "$(tail -n1 "$tmp/out")" = hello-vol ]'
	expect "--volume: what the guest wrote in a read-write directory volume is on the host" \
		eval '[ "$(cat "$v/rw/new")" = from-guest ]'
	expect "--volume: a read-only directory volume is read; a write is refused with EROFS" \
		eval 'grep -qx ro-content "$tmp/out" && grep -q "Read-only file system" "$tmp/out" && grep -qx ro-write-refused "$tmp/out" && [ ! -e "$v/ro/new" ]'
	expect "--volume: a single-file volume is read in the guest and written through to the host" \
		eval 'grep -qx file-content "$tmp/out" && [ "$(cat "$v/file")" = "$(printf "file-content\nappended")" ]'
	expect "--volume: a read-only single-file volume is read and refuses a write; both ro files unchanged" \
		eval 'grep -qx rofile-content "$tmp/out" && grep -qx rofile-write-refused "$tmp/out" && [ "$(sha256sum "$v/ro/file" "$v/rofile")" = "$ro_sum" ]'
	expect "--volume: in the guest the ro volumes are read-only mounts too, the rw ones read-write" \
		eval 'grep -q "^vmm-vol /ro virtiofs ro," "$tmp/out" && grep -q "^vmm-vol /etc/ro-file virtiofs ro," "$tmp/out" && grep -q "^vmm-vol /data virtiofs rw," "$tmp/out" && grep -q "^vmm-vol /etc/vol-file virtiofs rw," "$tmp/out"'
	expect "--tmpfs: /run is a tmpfs in the guest, mode 755, 8 MiB, nosuid,nodev, written and read there" \
		eval 'grep -q "^tmpfs /run tmpfs rw,nosuid,nodev,.*size=8192k" "$tmp/out" && grep -q "^tmpfs /run tmpfs .*mode=755" "$tmp/out" && grep -q "^drwxr-xr-x .* /run$" "$tmp/out" && grep -qx "tmpfs-read: in-run" "$tmp/out"'
	expect "--tmpfs: a volume under the tmpfs /run (which sorts first) is bound inside it" \
		eval 'grep -qx "in-tmpfs: ro-content" "$tmp/out" && grep -q "^vmm-vol /run/in-tmpfs virtiofs ro," "$tmp/out"'
	expect "--tmpfs: /scratch:ro is a read-only tmpfs, mode 1777 (the default), refusing a write with EROFS" \
		eval 'grep -q "^tmpfs /scratch tmpfs ro,nosuid,nodev," "$tmp/out" && grep -q "^drwxrwxrwt .* /scratch$" "$tmp/out" && grep -q "^scratch-write-refused: .*Read-only file system" "$tmp/out" && ! grep -q scratch-write-ok "$tmp/out"'
	expect "--volume: after exit the host's mount table, /run and \$TMPDIR hold nothing of the staging" \
		eval '[ "$(host_trace)" = "$before" ] && [ "$(head -n1 <<<"$before")" = 0 ]'
fi
