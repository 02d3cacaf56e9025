# Jail tests, sourced by boot-tests.sh after device-tests.sh (their helpers vm, expect, has,
# has_err, ok, not_ok, vsock_echo and $tmp, $vmm, $vmlinux, $initramfs): vmm-jail (built beside vmm) runs vmm as uid 4242 in its
# jail while a real guest boots. While it runs, the host checks what vmm can see (/proc/PID/root),
# its sandbox (/proc/PID/status) and its cgroup limits (read back from cgroupfs); then a jailed
# guest uses a disk and vsock, so the seccomp and io_uring allow-lists are proven with the jail
# on. Needs root (the nest runs as root) and cgroup v2, which is mounted at /sys/fs/cgroup when
# nothing is (the nest's L1 mounts none).
# shellcheck shell=bash
jail=$(dirname "$vmm")/vmm-jail
jbase=$tmp/jails
ju=4242
iname=$(basename "$initramfs")

# the first cgroup2 mount: its type is the field after the "-" (the optional fields before it
# vary: none for a private mount, "shared:N" or "master:N" otherwise)
cgroot=$(awk '{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") { print $5; exit } next } }' /proc/self/mountinfo)
if [ -z "$cgroot" ] && [ -d /sys/fs/cgroup ] &&
	! awk '$5 == "/sys/fs/cgroup" { found = 1 } END { exit !found }' /proc/self/mountinfo; then
	mount -t cgroup2 none /sys/fs/cgroup && cgroot=/sys/fs/cgroup
fi
echo "# jail: cgroup v2 at ${cgroot:-nowhere}, controllers: $(cat "$cgroot/cgroup.controllers" 2>/dev/null)"

# children PID: the first child of PID (vmm-jail's child is vmm, PID 1 of its namespace)
children() { local c; c=$(cat "/proc/$1/task/$1/children" 2>/dev/null); echo "${c%% *}"; }

# 1. a jailed guest that sleeps, inspected from the host while it runs
timeout -k 5 300 "$jail" --id j1 --uid "$ju" --gid "$ju" --chroot-base "$jbase" --file "$vmlinux" \
	--file "$initramfs" --cgroup memory.max=536870912 --cgroup pids.max=64 --cgroup "cpu.max=200000 100000" \
	-- --kernel /vmlinux --initrd "/$iname" --cpus 2 --cmdline "-- /bin/sleep 600" \
	</dev/null >"$tmp/raw" 2>"$tmp/err" &
jpid=$!
wait_for "vmm-init: booted" "$tmp/raw" "$jpid"
vpid=$(children "$(children "$jpid")") # timeout(1), vmm-jail, vmm
tree=$(find "/proc/$vpid/root/" -mindepth 1 2>&1 | sed "s|^/proc/$vpid/root||" | sort | tr '\n' ' ')
want="/dev /dev/kvm /vmlinux /vmm /$iname"
[ -c /dev/net/tun ] && want="$want /dev/net /dev/net/tun"
want=$(tr ' ' '\n' <<<"$want" | sort | tr '\n' ' ')
st=$(cat "/proc/$vpid/status" 2>/dev/null)
threads_ok=true nthreads=0
for t in /proc/$vpid/task/*; do
	nthreads=$((nthreads + 1))
	grep -q "^Seccomp:[[:space:]]*2$" "$t/status" 2>/dev/null || threads_ok=false
done
cgpath=$(cat "/proc/$vpid/cgroup" 2>/dev/null)
cg=$cgroot/vmm/j1
mem=$(cat "$cg/memory.max" 2>&1) pids=$(cat "$cg/pids.max" 2>&1) cpu=$(cat "$cg/cpu.max" 2>&1)
memcur=$(cat "$cg/memory.current" 2>&1) pidcur=$(cat "$cg/pids.current" 2>&1)
kill -TERM "$jpid" # timeout(1) passes it to vmm-jail, which forwards it to vmm
wait "$jpid"
rc=$?
tr -d '\r' <"$tmp/raw" >"$tmp/out"
echo "# jailed vmm (pid $vpid) sees: $tree"
grep "^\(Uid\|Gid\|Seccomp\|NoNewPrivs\|CapEff\):" <<<"$st" | tr '\t' ' ' | sed 's/^/# jailed vmm /'
echo "# jailed vmm cgroup $cgpath: memory.max $mem (current $memcur), pids.max $pids (current $pidcur), cpu.max $cpu"
expect "jail: the jailed vmm boots the guest; SIGTERM to vmm-jail reaches it, 143 comes back" \
	eval 'has "vmm-init: booted (2 CPUs)" && [ $rc -eq 143 ] && has_err "stopped by signal 15"'
expect "jail: vmm's root (/proc/PID/root) holds only the kernel, initramfs, vmm and /dev/kvm (+ /dev/net/tun)" \
	[ "$tree" = "$want" ]
expect "jail: vmm runs as uid 4242 with Seccomp 2, NoNewPrivs 1, CapEff 0" \
	eval 'grep -q "^Uid:[[:space:]]*4242[[:space:]]*4242[[:space:]]*4242[[:space:]]*4242$" <<<"$st" && grep -q "^Gid:[[:space:]]*4242[[:space:]]*4242[[:space:]]*4242[[:space:]]*4242$" <<<"$st" && grep -q "^Seccomp:[[:space:]]*2$" <<<"$st" && grep -q "^NoNewPrivs:[[:space:]]*1$" <<<"$st" && grep -q "^CapEff:[[:space:]]*0000000000000000$" <<<"$st"'
expect "jail: all $nthreads threads of the jailed vmm have Seccomp 2" eval '$threads_ok && [ "$nthreads" -ge 3 ]'
expect "jail: cgroup limits read back from cgroupfs (memory.max, pids.max, cpu.max), vmm charged there" \
	eval '[ "$cgpath" = "0::/vmm/j1" ] && [ "$mem" = 536870912 ] && [ "$pids" = 64 ] && [ "$cpu" = "200000 100000" ] && [ "${memcur:-0}" -gt 0 ] && [ "${pidcur:-0}" -ge 3 ]'
expect "jail: the jail directory and the cgroup leaf are removed at exit" \
	eval '[ ! -e "$jbase/j1" ] && [ ! -e "$cg" ]'

# 2. a jailed guest writes a disk (io_uring, restricted ring) and echoes 1 MiB over vsock to the
# host, which connects to vmm's socket inside the jail's root (a directory the host sees)
truncate -s 8M "$tmp/jdisk.img"
chown "$ju:$ju" "$tmp/jdisk.img"
seq 1 12000 >"$tmp/pattern"
plen=$(wc -c <"$tmp/pattern")
vsock_echo "$jbase/j2/root/v.sock" timeout -k 5 300 "$jail" --id j2 --uid "$ju" --gid "$ju" \
	--chroot-base "$jbase" --file "$vmlinux" --file "$initramfs" --file "$tmp/jdisk.img:/disk.img,rw" \
	--cgroup memory.max=536870912 --cgroup pids.max=64 \
	-- --kernel /vmlinux --initrd "/$iname" --disk path=/disk.img --vsock cid=3,uds=/v.sock --verbose \
	--cmdline '-- /bin/sh -c "seq 1 12000 | dd of=/dev/vda bs=4096 conv=fsync 2>/dev/null && echo WROTE && /bin/vsock-test listen 5001"'
expect "jail: a jailed guest writes a disk through the restricted io_uring ring, the image holds it" \
	eval '[ $rc -eq 0 ] && has "^WROTE" && cmp -s -n "$plen" "$tmp/pattern" "$tmp/jdisk.img" && has_err "io_uring I/O engine" && ! has_err "cannot be restricted"'
expect "jail: host -> jailed guest vsock (the socket in the jail's root) echoes 1 MiB intact" \
	eval 'has "^vsock-host: echoed 1048576 bytes intact" && has "^vsock-test: echoed 1048576 bytes back" && [ ! -e "$jbase/j2" ]'

# 3. a container in the jail: the agent, the session thread and its allow-list, with vmm as uid
# 4242 in a root that holds only the kernel, the rootfs image and vmm
if [ -n "${bb:-}" ] && [ -f "$bb" ]; then
	timeout -k 5 300 "$jail" --id j3 --uid "$ju" --gid "$ju" --chroot-base "$jbase" \
		--file "$vmlinux" --file "$bb:/rootfs.img" --cgroup memory.max=536870912 --cgroup pids.max=64 \
		-- --kernel /vmlinux --rootfs /rootfs.img -- /bin/sh -c 'echo "hello from $(hostname) as $(id -u)"; exit 4' \
		</dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "jail: a jailed container runs its command, its output and exit status come back" \
		eval '[ $rc -eq 4 ] && [ "$(cat "$tmp/out")" = "hello from vmm as 0" ] && [ ! -e "$jbase/j3" ]'
else
	not_ok "jail: a jailed container (no busybox rootfs image)"
fi
