# virtio-fs tests, sourced by boot-tests.sh (its helpers expect, ok, not_ok, wait_for, $tmp, $vmm,
# $vmlinux, $initramfs) after lifecycle-tests.sh. Five boots (the nest's time budget: each one
# does many checks), all containers whose root is a host directory (--rootfs DIR), the busybox
# erofs image (VMM_TEST_BUSYBOX_EROFS) or the Debian one (VMM_TEST_DEBIAN_IMG) extracted with
# fsck.erofs, owners and modes kept:
#  1. every file operation, and a read-only --share;
#  2. the worker thread's seccomp list is live;
#  3. the data: writes, truncates, an mmap write, modes, xattrs and removals are exactly so on the
#     host; a 50 MB tar tree untarred from a ro share; a host change seen at once under
#     cache=none; an fsync'd write survives kill -9 of vmm;
#  4. a Debian minbase tree runs apt --version, and find /usr holds ~6000 inodes;
#  5. a hostile guest program (guest/fs-hostile.c) against a share next to a host canary.
# The guest programs (guest/fs-test.c, guest/fs-hostile.c, static) are copied from the build into
# the root directory.
bb=${VMM_TEST_BUSYBOX_EROFS:-}
deb=${VMM_TEST_DEBIAN_IMG:-}
gdir=$(dirname "$initramfs") # build/guest: fs-test, fs-hostile
fspy=/usr/bin/python3
[ -x "$fspy" ] || fspy=python3
fs_t0=$SECONDS fs_lap=$SECONDS
# lap NAME: a TAP comment with the seconds since the last lap (the nest's budget)
lap() {
	echo "# fs-tests: $1: $((SECONDS - fs_lap)) s"
	fs_lap=$SECONDS
}
export VMM_KERNEL=$vmlinux

# fsvm TIMEOUT ARGS...: vmm with byte-exact stdout in $tmp/out, stderr in $tmp/err, status in $rc;
# one that hangs is reported (watched, in boot-tests.sh; none of these commands sleeps).
fsvm() {
	local t=$1
	shift
	WATCH_BUSY=1 watched "$t" "$tmp/fsvm.sock" "$tmp/out" "$tmp/err" "$@"
}
# snap PATH: content hash, mode, owner, size and mtime (what a canary must keep)
snap() { echo "$(sha256sum <"$1") $(stat -c '%a %u:%g %s %Y.%y' "$1")"; }

fsroot=$tmp/fsroot fsroot_ok=
if [ -z "$bb" ] || [ ! -f "$bb" ]; then
	not_ok "virtio-fs tests: no busybox rootfs image (VMM_TEST_BUSYBOX_EROFS=$bb)"
elif ! fsck.erofs --extract="$fsroot" "$bb" >"$tmp/err" 2>&1 || [ ! -x "$fsroot/bin/busybox" ]; then
	rc=1
	not_ok "virtio-fs tests: cannot extract $bb into a directory (fsck.erofs --extract)"
else
	fsroot_ok=1
	mkdir -p "$fsroot/work"
fi

# boots 1 and 2 (the section "ops"; the others, "data", "debian" and "hostile", are boots 3 to 5:
# a try of the group that the nest ends keeps the sections that passed)
fs_ops() {
	mkdir -p "$tmp/roshare"
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
echo o >owned && chown 1234:5678 owned && mkdir od && chown 4321:8765 od &&
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
	expect "virtio-fs: chown by the guest's root gives the host file and directory those owners (1234:5678, 4321:8765)" \
		eval '[ "$(stat -c %u:%g "$w/owned")" = 1234:5678 ] && [ "$(stat -c %u:%g "$w/od")" = 4321:8765 ]'
	expect "virtio-fs: chmod 0751 is the host's mode; removed files and directories are gone" \
		eval '[ "$(stat -c %a "$w/mode")" = 751 ] && [ ! -e "$w/d" ] && [ ! -e "$w/gone" ] && [ "$(stat -c %u "$w/new.txt")" = "$(id -u)" ]'
	expect "virtio-fs: a ro --share is read, a write is refused with EROFS, the share is unchanged" \
		eval 'grep -qx ro-content "$tmp/out" && grep -q "Read-only file system" "$tmp/out" && grep -qx ro-write-refused "$tmp/out" && [ ! -e "$tmp/roshare/new" ] && [ "$(snap "$tmp/roshare/file")" = "$rofile" ]'
	expect "virtio-fs: the host canary outside the shares is untouched" \
		eval '[ "$(snap "$tmp/canary")" = "$canary" ] && [ "$(ls "$tmp/roshare")" = file ]'

	lap "boot 1 (file operations, ro share)"

	VMM_SECCOMP_TEST=fs fsvm 180 --rootfs "$fsroot" -- /bin/true
	expect "seccomp: a forbidden call on the virtio-fs worker thread kills vmm (125) and names it" \
		eval '[ $rc -eq 125 ] && grep -q "seccomp: thread fs made a forbidden system call uname" "$tmp/err"'
	lap "boot 2 (seccomp)"
}

# wait_file PATH PID SECONDS: until PATH exists (0), or PID has exited or SECONDS passed (1).
wait_file() {
	local deadline=$((SECONDS + $3))
	while ((SECONDS < deadline)); do
		[ -e "$1" ] && return 0
		kill -0 "$2" 2>/dev/null || { [ -e "$1" ]; return; }
		sleep 0.1
	done
	return 1
}
# sha FILE: its content hash alone
sha() { sha256sum <"$1" | cut -c1-64; }

tools_ok=
if [ -n "$fsroot_ok" ]; then
	if [ -x "$gdir/fs-test" ] && [ -x "$gdir/fs-hostile" ]; then
		install -m 0755 "$gdir/fs-test" "$gdir/fs-hostile" "$fsroot/bin/" && tools_ok=1
	fi
	[ -n "$tools_ok" ] || not_ok "virtio-fs: no guest/fs-test and guest/fs-hostile in $gdir (a build with -Dguest=true has them)"
fi

# The Debian tree for boot 4 is extracted meanwhile (fsck.erofs takes a minute or two in the nest,
# on the nest's second CPU while boot 3's guest runs on the first).
debroot=$tmp/debroot deb_pid=
case " ${VMM_TEST_SKIP:-} " in *" fs/debian "*) deb= ;; esac # passed in an earlier try
if [ -n "$deb" ] && [ -f "$deb" ]; then
	fsck.erofs --extract="$debroot" "$deb" >"$tmp/deb-extract.log" 2>&1 &
	deb_pid=$!
fi

# 3. The data, one boot: the guest's writes, truncates (down and up), an mmap write, modes,
# xattrs and removals are exactly so on the host; a deterministic 50 MB tree (300 small files,
# 4 large, symlinks; each file costs ~8 requests, 5-10 ms each in the nest) untarred by busybox tar from a ro share into the root directory is the same
# tree on both sides; a file the host rewrites in place on a cache=none share is seen at once;
# last, an fsync'd write survives kill -9 of vmm. The guest and the host meet on marker files
# in the cache=none share (ready, flag) and on stdout (FSYNCED), polled with deadlines.
# User xattrs: the nest's /tmp is a tmpfs of Linux 6.1, which has none (6.6 added them), so the
# xattr share is the first of $tmp/xa and the build directory (a 9p mount in the nest, on the
# host's file system) that takes one; where none does, the guest must see EOPNOTSUPP.
fs_data() {
	cat >"$tmp/tree.py" <<-'PY'
		# tree.py make TAR: writes the test tree as TAR, prints the number of paths (".", too)
		# tree.py check TAR DIR: DIR holds exactly TAR's members, with their types, modes, sizes,
		# contents, mtimes and link targets; prints "same N" or the first difference
		import io, os, random, stat, sys, tarfile
		MTIME = 1700000000
		def tree():
		    rnd = random.Random(20240601)
		    block = rnd.randbytes(1 << 20)
		    yield "t", "d", 0o755, None
		    for d in range(10):
		        dn = "t/d%02d" % d
		        yield dn, "d", 0o750 if d % 5 == 0 else 0o755, None
		        for f in range(30):
		            data = rnd.randbytes(rnd.randrange(0, 4097))
		            yield "%s/f%02d" % (dn, f), "f", (0o644, 0o600, 0o755, 0o444)[f % 4], data
		        yield dn + "/link", "l", 0o777, "f00"
		    yield "t/empty", "d", 0o700, None
		    # 12 MB each: 1 MiB blocks, each rotated by its own offset (cheaper than random bytes
		    # in the nest, and a block written at the wrong place still shows)
		    for b in range(4):
		        size, parts, k = 12_000_000 + b * 4097, [], 0
		        while sum(map(len, parts)) < size:
		            r = (b * 7919 + k * 4099) % len(block)
		            parts.append(block[r:] + block[:r])
		            k += 1
		        yield "t/big%d" % b, "f", 0o644, b"".join(parts)[:size]
		def make(path):
		    n = 1
		    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as t:
		        for name, kind, mode, data in tree():
		            i = tarfile.TarInfo(name)
		            i.mode, i.mtime, i.uid, i.gid = mode, MTIME, os.getuid(), os.getgid()
		            i.uname = i.gname = ""
		            if kind == "d":
		                i.type = tarfile.DIRTYPE
		                t.addfile(i)
		            elif kind == "l":
		                i.type, i.linkname = tarfile.SYMTYPE, data
		                t.addfile(i)
		            else:
		                i.size = len(data)
		                t.addfile(i, io.BytesIO(data))
		            n += 1
		    print(n)
		def check(path, root):
		    want = {}
		    with tarfile.open(path) as t:
		        for m in t:
		            # the bytes themselves: comparing them is cheaper than hashing in the nest
		            data = t.extractfile(m).read() if m.isfile() else None
		            want[m.name] = (m.type, m.mode, m.size, data, m.linkname, m.mtime)
		    seen = set()
		    for d, dirs, files in os.walk(root):
		        for e in dirs + files:
		            p = os.path.join(d, e)
		            name = os.path.relpath(p, root)
		            seen.add(name)
		            if name not in want:
		                return print("extra", name)
		            typ, mode, size, data, target, mtime = want[name]
		            st = os.lstat(p)
		            if stat.S_IMODE(st.st_mode) != mode and typ != tarfile.SYMTYPE:
		                return print("mode", name, oct(st.st_mode), oct(mode))
		            if typ == tarfile.SYMTYPE:
		                if not stat.S_ISLNK(st.st_mode) or os.readlink(p) != target:
		                    return print("symlink", name)
		                continue
		            if typ == tarfile.DIRTYPE:
		                if not stat.S_ISDIR(st.st_mode):
		                    return print("not a directory", name)
		                continue
		            if not stat.S_ISREG(st.st_mode) or st.st_size != size:
		                return print("size", name, st.st_size, size)
		            with open(p, "rb") as f:
		                if f.read() != data:
		                    return print("content", name)
		            if int(st.st_mtime) != mtime:
		                return print("mtime", name, st.st_mtime)
		    missing = set(want) - seen
		    if missing:
		        return print("missing", sorted(missing)[0])
		    print("same", len(seen) + 1)
		if sys.argv[1] == "make":
		    make(sys.argv[2])
		else:
		    check(sys.argv[2], sys.argv[3])
	PY
	mkdir -p "$tmp/tarshare" "$tmp/ns"
	tar_paths=$("$fspy" "$tmp/tree.py" make "$tmp/tarshare/tree.tar")
	echo "# fs-tests: the tar tree: $tar_paths paths, $(($(stat -c %s "$tmp/tarshare/tree.tar") >> 20)) MiB"
	xattr_ok() { "$fspy" -c 'import os, sys
p = os.path.join(sys.argv[1], "probe"); open(p, "w").close()
try: os.setxattr(p, "user.vmm.probe", b"1")
finally: os.remove(p)' "$1" 2>/dev/null; }
	xadir=
	for d in "$tmp/xa" "${VMM_BUILD_DIR:+$VMM_BUILD_DIR/fs-tests-xattr}"; do
		[ -n "$d" ] || continue
		rm -rf "$d" && mkdir -p "$d" && xattr_ok "$d" && xadir=$d && break
		[ "$d" = "$tmp/xa" ] || rm -rf "$d"
	done
	xa_have=1
	[ -n "$xadir" ] || { xadir=$tmp/xa xa_have=; }
	echo "# fs-tests: the xattr share: $xadir (user xattrs: ${xa_have:-none, EOPNOTSUPP expected})"
	lap "the tar tree and the shares"
	echo host-1 >"$tmp/ns/file"
	# shellcheck disable=SC2016 # expanded in the guest
	script='t() { echo "t: $1 $(cut -d" " -f1 /proc/uptime)"; }
t start
cd /work && mkdir a && cd a || exit 1
mkdir -p /ns /xa /tar && mount -t virtiofs ns /ns && mount -t virtiofs xa /xa && mount -t virtiofs -o ro tar /tar || exit 1
seq 1 100000 >seq.txt && chmod 0640 seq.txt
seq 1 50000 >shrink.txt && truncate -s 1000 shrink.txt
printf abc >grow.txt && truncate -s 70000 grow.txt
seq 1 1000 >mmap.txt && /bin/fs-test mmap mmap.txt 100 MMAPPED-BYTES
mkdir -m 0710 dir && echo in-dir >dir/f && chmod 0604 dir/f
echo gone >gone.txt && rm gone.txt
mkdir -p gone.d/a/b && echo x >gone.d/a/b/f && rm -r gone.d
echo guest-view: $(stat -c "%n:%s:%a" seq.txt shrink.txt grow.txt mmap.txt dir dir/f)
echo xa >/xa/x.txt
/bin/fs-test setxattr /xa/x.txt user.vmm.kept "kept value"
/bin/fs-test setxattr /xa/x.txt user.vmm.gone removed
/bin/fs-test removexattr /xa/x.txt user.vmm.gone
/bin/fs-test getxattr /xa/x.txt user.vmm.kept
t untar
mkdir untar && tar -xf /tar/tree.tar -C untar; s=$?
t find
n=$(cd untar && find . | wc -l); echo "untar: status $s, $((n)) paths"
t cache-none
echo "ns-before: $(cat /ns/file)"
echo read >/ns/ready
i=0; while [ ! -e /ns/flag ] && [ $i -lt 1500 ]; do sleep 0.2; i=$((i + 1)); done
echo "ns-after: $(cat /ns/file) ($(stat -c %s /ns/file) bytes)"
/bin/fs-test fsync /work/a/synced.txt survives-kill-9 && echo FSYNCED && sleep 600'
	# watch_start/watch_end (boot-tests.sh): a vmm that SIGKILL cannot end (the nest's KVM wedged)
	# ends the group for run.sh to run again, instead of holding it until the nest's timeout
	watch_start "$tmp/fsvm.sock" "$tmp/out" "$tmp/err" --rootfs "$fsroot" --memory 256 \
		--share "tag=ns,path=$tmp/ns,cache=none" --share "tag=xa,path=$xadir" \
		--share "tag=tar,path=$tmp/tarshare,ro" -- /bin/sh -c "$script"
	# the host rewrites the file in place (same inode, new length) once the guest has read it
	wait_file "$tmp/ns/ready" "$pid" 400 && printf 'host-2: rewritten in place\n' >"$tmp/ns/file"
	: >"$tmp/ns/flag"
	wait_for '^FSYNCED$' "$tmp/out" "$pid" 300
	kill -KILL "$pid" 2>/dev/null
	watch_end 30
	lap "boot 3 itself"
	grep '^t: ' "$tmp/out" | sed 's/^/# guest /'
	grep -q 'Too many open files' "$tmp/err" &&
		echo "# vmm ran out of descriptors (ulimit -n $(ulimit -n)): the server holds one per inode the guest has looked up"
	a=$fsroot/work/a
	expect "virtio-fs: an fsync'd write survives kill -9 of vmm (exit 137): the file is on the host" \
		eval '[ $rc -eq 137 ] && grep -qx FSYNCED "$tmp/out" && [ "$(cat "$a/synced.txt")" = survives-kill-9 ]'
	expect "virtio-fs: written and truncated (down, up) files: content hash, size and mode on the host" \
		eval '[ "$(sha "$a/seq.txt")" = "$(seq 1 100000 | sha256sum | cut -c1-64)" ] && [ "$(stat -c "%s %a" "$a/seq.txt")" = "588895 640" ] &&
			[ "$(sha "$a/shrink.txt")" = "$(seq 1 50000 | head -c 1000 | sha256sum | cut -c1-64)" ] && [ "$(stat -c %s "$a/shrink.txt")" = 1000 ] &&
			[ "$(sha "$a/grow.txt")" = "$({ printf abc; head -c 69997 /dev/zero; } | sha256sum | cut -c1-64)" ] && [ "$(stat -c %s "$a/grow.txt")" = 70000 ] &&
			grep -q "^guest-view: seq.txt:588895:640 shrink.txt:1000:644 grow.txt:70000:644 mmap.txt:3893:644 dir:[0-9]*:710 dir/f:7:604$" "$tmp/out"'
	expect "virtio-fs: an mmap MAP_SHARED write (msync) is in the host's file, the rest unchanged" \
		eval 'grep -qx "fs-test: mmap mmap.txt: ok" "$tmp/out" && [ "$(sha "$a/mmap.txt")" = "$({ seq 1 1000 | head -c 100; printf MMAPPED-BYTES; seq 1 1000 | tail -c +114; } | sha256sum | cut -c1-64)" ]'
	expect "virtio-fs: mkdir -m 0710, chmod 0604 are the host's modes; removed files and trees are gone" \
		eval '[ "$(stat -c %a "$a/dir")" = 710 ] && [ "$(stat -c %a "$a/dir/f")" = 604 ] && [ "$(cat "$a/dir/f")" = in-dir ] && [ ! -e "$a/gone.txt" ] && [ ! -e "$a/gone.d" ]'
	if [ -n "$xa_have" ]; then
		# the value, and the user.vmm.* names left (python: the attr package's getfattr is not
		# among the project's packages)
		xa=$("$fspy" -c 'import os, sys
names = sorted(n for n in os.listxattr(sys.argv[1]) if n.startswith("user.vmm."))
print(os.getxattr(sys.argv[1], "user.vmm.kept").decode(), *names)' "$xadir/x.txt" 2>&1)
		expect "virtio-fs: a user xattr the guest set is the host's value; the one it removed is gone" \
			eval 'grep -qx "fs-test: getxattr /xa/x.txt: user.vmm.kept=kept value" "$tmp/out" && [ "$xa" = "kept value user.vmm.kept" ]'
	else
		expect "virtio-fs: user xattrs on a host file system without them: the guest sees EOPNOTSUPP" \
			eval 'grep -q "^fs-test: setxattr /xa/x.txt: failed: user.vmm.kept: EOPNOTSUPP" "$tmp/out" && [ "$(cat "$xadir/x.txt")" = xa ]'
	fi
	check=$("$fspy" "$tmp/tree.py" check "$tmp/tarshare/tree.tar" "$a/untar" 2>&1)
	expect "virtio-fs: a 50 MB tree untarred from a ro share: find | wc -l is $tar_paths on both sides, every file the same" \
		eval 'grep -qx "untar: status 0, $tar_paths paths" "$tmp/out" && [ "$(cd "$a/untar" && find . | wc -l)" -eq "$tar_paths" ] && [ "$check" = "same $tar_paths" ]'
	[ "$check" = "same $tar_paths" ] || echo "# tree check: $check"
	expect "virtio-fs: cache=none: the guest sees the host's in-place rewrite at once (content and size)" \
		eval 'grep -qx "ns-before: host-1" "$tmp/out" && grep -qx "ns-after: host-2: rewritten in place (27 bytes)" "$tmp/out"'
	rm -rf "$a/untar" "$tmp/tarshare" "${VMM_BUILD_DIR:-/nonexistent}/fs-tests-xattr"
	lap "boot 3 (data, untar, cache=none, kill -9)"
}

# 4. A Debian minbase tree as the root directory: apt --version runs (its libraries come through
# virtio-fs), the image's owners and modes reach the guest (/etc/shadow is 0640 root:shadow), and
# find /usr lists as many paths as on the host: about 6000 inodes the guest holds at once, so the
# server's inode table grows past 4096 entries (192 KiB: glibc's realloc of such a block is an
# mremap, which the worker's seccomp list must allow) and vmm's descriptor limit must cover them.
fs_debian() {
	if [ -z "$deb_pid" ]; then
		not_ok "virtio-fs: no Debian rootfs image (VMM_TEST_DEBIAN_IMG=$deb)"
	elif ! wait "$deb_pid" || [ ! -x "$debroot/usr/bin/apt" ]; then
		rc=1
		cp "$tmp/deb-extract.log" "$tmp/err"
		not_ok "virtio-fs: cannot extract $deb into a directory (fsck.erofs --extract)"
	else
		lap "the rest of the Debian tree's extraction"
		fsvm 400 --rootfs "$debroot" --memory 256 -- /bin/sh -c 'apt --version && stat -c "%a %U %G %n" /etc/shadow && echo "usr: $(find /usr | wc -l) paths"'
		expect "virtio-fs: a Debian minbase tree as --rootfs DIR runs apt --version" \
			eval 'grep -q "^apt [0-9]" "$tmp/out"'
		expect "virtio-fs: the image's owners and modes reach the guest (/etc/shadow 640 root:shadow)" \
			eval 'grep -qx "640 root shadow /etc/shadow" "$tmp/out"'
		usr=$(find "$debroot/usr" | wc -l)
		expect "virtio-fs: find /usr in the guest lists the host's $usr paths (that many inodes held at once)" \
			eval '[ $rc -eq 0 ] && grep -qx "usr: $usr paths" "$tmp/out"'
		lap "boot 4 (Debian)"
	fi
	rm -rf "$debroot"
}

# 5. A hostile guest program (guest/fs-hostile.c) against a share that sits, on the host, next to
# a canary file and a second secret file: symlinks planted by the host (../canary, the canary's
# absolute host path, .., /) and made by the guest, ".." from the share's root and from deep
# down, rename and link to ../x, odd names, device nodes, security.capability and trusted.*
# xattrs, 60 levels of 100-byte names, and opening one file until the open fails and then using
# the share again. vmm runs with 512 descriptors (prlimit) and without CAP_SYS_RESOURCE (setpriv), so that it
# cannot raise its descriptor limit past 512 (devices/virtio_fs.c raise_nofile), and the bound is
# that limit (EMFILE: every handle is a host descriptor): filling the server's table of 16384
# handles (ENFILE) takes about 50000 requests, 270 s in the nest, and is the unit tests' business. Everything goes
# through the guest kernel; raw FUSE requests no kernel would send are covered on the host by
# tests/fuzz/fuzz_fuse.c and tests/unit/test_fuse_server.c. The host checks the canaries'
# content, mode, owner, size, link count, mtime and atime (set 2 days back: relatime updates it
# on any read), that the directory around the share lists the same, and, with inotify on that
# directory (python ctypes), that nothing in it but the share itself was opened, read, listed or
# changed. setuid bits are left out (their handling is being changed).
fs_hostile() {
	hz=$tmp/hz
	mkdir -p "$hz/share"
	printf 'HOST-CANARY-%s\n' "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" >"$hz/canary"
	echo host-secret >"$hz/hostile-secret"
	ln -s ../canary "$hz/share/planted-rel"
	ln -s "$hz/canary" "$hz/share/planted-abs"
	ln -s .. "$hz/share/planted-dir"
	ln -s / "$hz/share/planted-root"
	printf 'guest-canary\n' >"$fsroot/canary" # the guest's own /canary
	secret=$(cat "$hz/canary")
	hashes() { sha256sum "$hz/canary" "$hz/hostile-secret"; }
	# the directory around the share: its own mtime and links, each entry but the share
	around() {
		stat -c '%Y %h' "$hz"
		find "$hz" -mindepth 1 -maxdepth 1 ! -name share -printf '%P %y %m %U:%G %s %n %T@ %A@\n' | sort
	}
	before_h=$(hashes)
	touch -a -d '2 days ago' "$hz/canary" "$hz/hostile-secret"
	before_a=$(around)
	cat >"$tmp/inotify.py" <<-'PY'
		# inotify.py DIR LOG STOP: every event on DIR and its entries, "MASK NAME" per line in
		# LOG ("watching" first), until the file STOP exists
		import ctypes, os, select, struct, sys
		libc = ctypes.CDLL(None, use_errno=True)
		fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
		if fd < 0 or libc.inotify_add_watch(fd, os.fsencode(sys.argv[1]), 0xfff) < 0:
		    sys.exit("inotify: " + os.strerror(ctypes.get_errno()))
		log = open(sys.argv[2], "w", buffering=1)
		log.write("watching\n")
		while True:
		    select.select([fd], [], [], 0.2)
		    stop = os.path.exists(sys.argv[3])
		    try:
		        buf = os.read(fd, 65536)
		    except BlockingIOError:
		        buf = b""
		    i = 0
		    while i < len(buf):
		        _, mask, _, n = struct.unpack_from("iIII", buf, i)
		        name = buf[i + 16:i + 16 + n].rstrip(b"\0").decode(errors="backslashreplace")
		        log.write("%#x %s\n" % (mask, name))
		        i += 16 + n
		    if stop and not buf:
		        break
	PY
	lap "boot 5's setup"
	"$fspy" "$tmp/inotify.py" "$hz" "$tmp/inotify.log" "$tmp/inotify.stop" 2>"$tmp/inotify.err" &
	ipid=$!
	wait_for '^watching$' "$tmp/inotify.log" "$ipid" 60
	# watched (WATCH_BUSY: fs-hostile never sleeps), so that a VM the nest wedges is reported
	# and its group run again
	WATCH_WRAP="prlimit --nofile=512 setpriv --bounding-set -sys_resource" fsvm 400 --rootfs "$fsroot" --memory 256 --share "tag=h,path=$hz/share" \
		-- /bin/sh -c "mkdir -p /h && mount -t virtiofs h /h && exec /bin/fs-hostile /h $hz/canary"
	lap "boot 5 itself"
	: >"$tmp/inotify.stop"
	wait "$ipid"
	after_a=$(around)
	after_h=$(hashes)
	s=$hz/share
	expect "fs-hostile: every escape attempt got the expected result (EMFILE at vmm's 512 descriptors), the VM went on and exited 0" \
		eval '[ $rc -eq 0 ] && grep -qx "fs-hostile: 39 attempts, 0 unexpected" "$tmp/out" && grep -q "^ok: open one file until it fails: [0-9]* opens, then EMFILE$" "$tmp/out" && ! grep -q UNEXPECTED "$tmp/out"'
	grep -e '^UNEXPECTED' -e '^fs-hostile: .* took' "$tmp/out" | sed 's/^/# /'
	expect "fs-hostile: the canaries keep content, mode, owner, size, links, mtime, atime; their directory lists the same" \
		eval '[ "$before_h" = "$after_h" ] && [ "$before_a" = "$after_a" ] && [ -n "$before_a" ]'
	expect "fs-hostile: inotify saw no open, read, listing or change in the share's directory but of the share itself" \
		eval 'grep -qx watching "$tmp/inotify.log" && ! grep -v -e "^watching$" -e "^0x[0-9a-f]* share$" "$tmp/inotify.log" | grep -q .'
	grep -v -e '^watching$' -e '^0x[0-9a-f]* share$' "$tmp/inotify.log" | head -n 5 | sed 's/^/# inotify: /'
	expect "fs-hostile: the guest never read the canary; what it wrote through planted links is in its own root" \
		eval '! grep -qF "$secret" "$tmp/out" && [ "$(cat "$fsroot/canary")" = "$(printf "guest-canary\nappended-through-planted-rel")" ] && [ -f "$fsroot/made-through-planted-dir" ] && [ -f "$fsroot/x" ] && [ ! -e "$hz/x" ] && [ ! -e "$hz/made-through-planted-dir" ]'
	expect "fs-hostile: link of a planted symlink is a symlink in the share; f was not renamed or linked out" \
		eval '[ -L "$s/linked" ] && [ "$(readlink "$s/linked")" = ../canary ] && [ "$(stat -c %h "$s/planted-rel")" = 2 ] && [ "$(cat "$s/f")" = f ] && [ "$(stat -c %h "$s/f")" = 1 ] && [ ! -e "$s/linked-follow" ]'
	odd=$("$fspy" -c 'import os, sys
want = {b"\x01\x02\x03", b"new\nline", b"\xff\xfe\xfd", b"tab\there", b" lead-space", b"-n",
        b"back\\slash", b"q\"uo'"'"'te", b"*?[glob", b"%s%n%x", b"\x7f", b"\xc3\x28",
        b"trailing-dot.", b"...", b"..x", b"a b c", b"n" * 255}
print(set(os.listdir(os.fsencode(sys.argv[1]))) == want)' "$s/odd" 2>&1)
	expect "fs-hostile: the 17 odd names (control bytes, newline, bad UTF-8, 255 bytes) are the host's names, byte for byte" \
		eval '[ "$odd" = True ]'
	capx=$("$fspy" -c 'import os, sys
print(sorted(n for n in os.listxattr(sys.argv[1]) if not n.startswith("security.selinux")))' "$s/f" 2>&1)
	expect "fs-hostile: no device node in the share, the FIFO is one; f has no security.capability or trusted xattr" \
		eval '[ -z "$(find "$s" \( -type b -o -type c \) -print)" ] && [ -p "$s/fifo" ] && [ "$capx" = "[]" ]'
	expect "fs-hostile: 60 levels of 100-byte names are on the host with the bottom file; after the ENFILE, after-many was written" \
		eval '[ "$(find "$s/deep" -mindepth 60 -type d | wc -l)" = 1 ] && [ "$(find "$s/deep" -name bottom -execdir cat {} \;)" = bottom ] && [ "$(cat "$s/after-many")" = after ]'
	lap "boot 5 (hostile)"
	rm -rf "$hz"
}
[ -z "$fsroot_ok" ] || section ops fs_ops
[ -z "$tools_ok" ] || section data fs_data
section debian fs_debian
[ -z "$tools_ok" ] || section hostile fs_hostile
echo "# fs-tests: $((SECONDS - fs_t0)) s in all"
