# Container tests, sourced by boot-tests.sh (its helpers vm, expect, has, ok, not_ok, $tmp, $vmm,
# $vmlinux): `vmm --rootfs IMG -- CMD` boots the built-in agent, which mounts IMG under a tmpfs
# overlay and runs CMD with vmm's stdio, over vsock. The sandbox is on (the default) throughout.
# Images come from the environment: VMM_TEST_BUSYBOX_EROFS, VMM_TEST_BUSYBOX_EXT4 (busybox-static
# trees packed by vmm-mkrootfs) and VMM_TEST_DEBIAN_IMG (debootstrap --variant=minbase, erofs);
# run.sh builds them on the host before the nest starts.
bb=${VMM_TEST_BUSYBOX_EROFS:-}
bb4=${VMM_TEST_BUSYBOX_EXT4:-}
deb=${VMM_TEST_DEBIAN_IMG:-}
export VMM_KERNEL=$vmlinux # the default kernel: no --kernel below

# c TIMEOUT ARGS...: like vm, but the output is byte-exact (no console in the way).
c() {
	local t=$1
	shift
	timeout -k 5 "$t" "$vmm" "$@" <"${VM_STDIN:-/dev/null}" >"$tmp/out" 2>"$tmp/err"
	rc=$?
}

if [ -z "$bb" ] || [ ! -f "$bb" ]; then
	not_ok "container tests: no busybox rootfs image (VMM_TEST_BUSYBOX_EROFS=$bb)"
else
	c 180 --rootfs "$bb" --boot-timer -- /bin/echo hello
	expect "container: -- /bin/echo hello prints hello, exits 0" \
		eval '[ $rc -eq 0 ] && [ "$(cat "$tmp/out")" = hello ]'
	grep -o 'boot-timer: .*' "$tmp/err" | sed 's/^/# container /'

	c 180 --rootfs "$bb" -- sh -c 'exit 7'
	expect "container: sh -c 'exit 7' exits 7, nothing on stderr (the console is held back)" \
		eval '[ $rc -eq 7 ] && [ ! -s "$tmp/err" ]'

	c 180 --rootfs "$bb" -- sh -c 'kill -9 $$'
	expect "container: a process killed by SIGKILL gives 137" eval '[ $rc -eq 137 ]'

	head -c 300000 /dev/urandom >"$tmp/in"
	VM_STDIN=$tmp/in c 180 --rootfs "$bb" -- cat
	expect "container: 300000 bytes of stdin come back through cat intact" \
		eval '[ $rc -eq 0 ] && cmp -s "$tmp/in" "$tmp/out"'

	c 180 --rootfs "$bb" -- seq 1 200000
	expect "container: 1 MiB of stdout arrives intact and in order" \
		eval '[ $rc -eq 0 ] && [ "$(wc -c <"$tmp/out")" -gt 1048576 ] && seq 1 200000 | cmp -s - "$tmp/out"'

	c 180 --rootfs "$bb" -- sh -c 'echo out; echo err >&2; exit 3'
	expect "container: stdout and stderr stay apart" \
		eval '[ $rc -eq 3 ] && [ "$(cat "$tmp/out")" = out ] && grep -qx err "$tmp/err"'

	c 180 --rootfs "$bb" --env FOO=bar --env PATH=/bin --workdir /etc --user 1000:1001 \
		--hostname box1 -- sh -c 'echo "$FOO|$PATH|$(pwd)|$(id -u):$(id -g)|$(hostname)"'
	expect "container: env, workdir, user and hostname are what was asked" \
		eval '[ $rc -eq 0 ] && [ "$(cat "$tmp/out")" = "bar|/bin|/etc|1000:1001|box1" ]'

	c 180 --rootfs "$bb" --rootfs-readonly --tmpfs /tmp -- \
		sh -c 'echo x >/etc/new; echo w >/tmp/w && cat /tmp/w; grep -c "^devtmpfs /dev " /proc/mounts'
	expect "container: --rootfs-readonly: writes to the root fail (EROFS), a --tmpfs and /dev on it work" \
		eval '[ $rc -eq 0 ] && grep -q "/etc/new: Read-only file system" "$tmp/err" && grep -qx w "$tmp/out" && grep -qx 1 "$tmp/out"'

	c 180 --rootfs "$bb" -- no-such-command
	expect "container: an unknown command exits 127 with one clear line" \
		eval '[ $rc -eq 127 ] && grep -q "no-such-command: command not found" "$tmp/err"'

	c 180 --rootfs "$bb" --tty -- sh -c 'tty; echo tty-ok'
	expect "container: --tty runs the process on a pty" \
		eval '[ $rc -eq 0 ] && grep -q "^/dev/pts/[0-9]" "$tmp/out" && grep -q tty-ok "$tmp/out"'

	# SIGTERM to vmm reaches the process (its trap runs and picks the exit status)
	timeout -k 5 180 "$vmm" --rootfs "$bb" -- sh -c 'trap "echo got-term; exit 3" TERM; echo ready; while :; do sleep 1; done' \
		</dev/null >"$tmp/out" 2>"$tmp/err" &
	pid=$!
	wait_for ready "$tmp/out" "$pid"
	vpid=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null)
	vpid=${vpid%% *}
	kill -TERM "$vpid"
	wait "$pid"
	rc=$?
	expect "container: SIGTERM to vmm reaches the process" \
		eval '[ $rc -eq 3 ] && grep -q got-term "$tmp/out"'

	# vmm exec: a second process in the running container, through --api-sock
	timeout -k 5 240 "$vmm" --rootfs "$bb" --api-sock "$tmp/api.sock" -- \
		sh -c 'echo main > /tmp/shared; echo ready; while :; do sleep 1; done' \
		</dev/null >"$tmp/main-out" 2>"$tmp/main-err" &
	pid=$!
	wait_for ready "$tmp/main-out" "$pid"
	echo piped | timeout -k 5 60 "$vmm" exec --api-sock "$tmp/api.sock" --env X=1 -- \
		sh -c 'cat /tmp/shared; cat; echo "X=$X"; exit 5' >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "container: vmm exec runs a second process in the running container" \
		eval '[ $rc -eq 5 ] && [ "$(cat "$tmp/out")" = "$(printf "main\npiped\nX=1")" ]'
	vpid=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null)
	vpid=${vpid%% *}
	st=$(cat "/proc/$vpid/status" 2>/dev/null)
	kill -TERM "$vpid"
	wait "$pid"
	rc=$?
	expect "container: sandbox on while a container runs (Seccomp 2, NoNewPrivs 1, CapEff 0); SIGTERM ends it with 143" \
		eval '[ $rc -eq 143 ] && grep -q "^Seccomp:[[:space:]]*2$" <<<"$st" && grep -q "^NoNewPrivs:[[:space:]]*1$" <<<"$st" && grep -q "^CapEff:[[:space:]]*0000000000000000$" <<<"$st" && [ ! -e "$tmp/api.sock" ]'

	VMM_SECCOMP_TEST=session c 180 --rootfs "$bb" -- /bin/true
	expect "seccomp: a forbidden call on the session thread kills vmm (125) and names it" \
		eval '[ $rc -eq 125 ] && has_err "seccomp: thread session made a forbidden system call uname"'

	# --net with mtu=, --ip/--gateway: the agent configures eth0, whose MTU comes from the device
	# (VIRTIO_NET_F_MTU); the container pings the host's TAP, with a packet that fills the MTU
	# (in a network namespace of its own, as in device-tests.sh)
	cnet_test() {
		rc=1
		ip tuntap add dev vmmtap1 mode tap && ip addr add 10.0.3.1/24 dev vmmtap1 &&
			ip link set vmmtap1 mtu 1400 up || return 1
		timeout -k 5 180 "$vmm" --rootfs "$bb" --net tap=vmmtap1,mtu=1400 --ip 10.0.3.2/24 \
			--gateway 10.0.3.1 -- sh -c 'echo "mtu $(cat /sys/class/net/eth0/mtu)"; ip -4 addr show eth0; ip route; ping -c 2 -W 10 -s 1372 10.0.3.1 && echo PING-OK' \
			</dev/null >"$tmp/out" 2>"$tmp/err"
		rc=$?
	}
	if command -v ip >/dev/null && [ -c /dev/net/tun ]; then
		tmp=$tmp vmm=$vmm bb=$bb VMM_KERNEL=$VMM_KERNEL unshare --net bash -c \
			"$(declare -f cnet_test); cnet_test; echo \$rc >\"$tmp/cnet-rc\""
		rc=$(cat "$tmp/cnet-rc" 2>/dev/null || echo 1)
		expect "container: --net mtu=1400 --ip --gateway: eth0 is configured with that MTU and pings the host's TAP with 1400-byte packets" \
			eval '[ $rc -eq 0 ] && grep -qx "mtu 1400" "$tmp/out" && grep -q "inet 10.0.3.2/24" "$tmp/out" && grep -q "default via 10.0.3.1" "$tmp/out" && grep -q PING-OK "$tmp/out"'
	else
		not_ok "container: --net: no ip(8) or /dev/net/tun here (iproute2, the tun module)"
	fi

	# The process's settings (docs/config.md): capabilities down to CAP_NET_BIND_SERVICE, an
	# rlimit, umask, no_new_privileges, additional groups, oom_score_adj, a seccomp program that
	# makes mkdir fail with EPERM, a sysctl, a masked file and directory, a read-only path. One
	# boot. The program is classic BPF written here: ld arch; jne x86_64 -> allow; ld nr;
	# mkdir (83) or mkdirat (258) -> ERRNO|EPERM; allow.
	bpf_insn() {
		local c=$1 jt=$2 jf=$3 k=$4
		printf "$(printf '\\x%02x' $((c & 255)) $((c >> 8)) "$jt" "$jf" $((k & 255)) \
			$((k >> 8 & 255)) $((k >> 16 & 255)) $((k >> 24 & 255)))"
	}
	{
		bpf_insn 0x20 0 0 4
		bpf_insn 0x15 0 4 $((0xc000003e))
		bpf_insn 0x20 0 0 0
		bpf_insn 0x15 1 0 83
		bpf_insn 0x15 0 1 258
		bpf_insn 0x06 0 0 $((0x00050001))
		bpf_insn 0x06 0 0 $((0x7fff0000))
	} >"$tmp/mkdir.bpf"
	cat >"$tmp/proc.json" <<-JSON
	{"process": {"args": ["sh", "-c", "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp|Groups):' /proc/self/status; echo nofile=\$(ulimit -n):\$(ulimit -Hn); echo umask=\$(umask); mkdir /newdir 2>&1 || echo mkdir-failed; echo domain=\$(cat /proc/sys/kernel/domainname); echo version=[\$(cat /proc/version)]; echo syskernel=[\$(ls /sys/kernel)]; echo x 2>&1 >/etc/ro-test || echo ro-failed; echo oom=\$(cat /proc/self/oom_score_adj)"],
	  "user": {"uid": 0, "gid": 0, "additional_gids": [10, 20]},
	  "umask": 23, "no_new_privileges": true, "oom_score_adj": 100,
	  "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}],
	  "capabilities": {"bounding": ["CAP_NET_BIND_SERVICE"], "effective": ["CAP_NET_BIND_SERVICE"],
	    "permitted": ["CAP_NET_BIND_SERVICE"]},
	  "seccomp_bpf": "$tmp/mkdir.bpf"},
	 "sysctl": {"kernel.domainname": "vmm.test"},
	 "masked_paths": ["/proc/version", "/sys/kernel"],
	 "readonly_paths": ["/etc"]}
	JSON
	c 180 --rootfs "$bb" --config "$tmp/proc.json"
	sed 's/^/# proc: /' "$tmp/out" "$tmp/err"
	expect "container: process settings: caps, rlimit, umask, no_new_privs, groups, seccomp, sysctl, masked and read-only paths" \
		eval '[ $rc -eq 0 ] && grep -q "^CapEff:[[:space:]]*0000000000000400$" "$tmp/out" &&
			grep -q "^CapBnd:[[:space:]]*0000000000000400$" "$tmp/out" &&
			grep -q "^NoNewPrivs:[[:space:]]*1$" "$tmp/out" && grep -q "^Seccomp:[[:space:]]*2$" "$tmp/out" &&
			grep -q "^Groups:[[:space:]]*10 20[[:space:]]*$" "$tmp/out" && grep -qx "nofile=100:200" "$tmp/out" &&
			grep -q "^umask=0*27$" "$tmp/out" && grep -q "Operation not permitted" "$tmp/out" &&
			grep -qx mkdir-failed "$tmp/out" && grep -qx domain=vmm.test "$tmp/out" &&
			grep -qx "version=\[\]" "$tmp/out" && grep -qx "syskernel=\[\]" "$tmp/out" &&
			grep -qx ro-failed "$tmp/out" && grep -qx oom=100 "$tmp/out"'

	# The overlay: writes land in tmpfs, the image is unchanged
	sum=$(sha256sum <"$bb")
	c 180 --rootfs "$bb" -- sh -c 'echo new > /etc/newfile && cat /etc/newfile'
	expect "container: the rootfs is read-only under a writable overlay; the image is unchanged" \
		eval '[ $rc -eq 0 ] && [ "$(cat "$tmp/out")" = new ] && [ "$(sha256sum <"$bb")" = "$sum" ]'
fi

if [ -n "$bb4" ] && [ -f "$bb4" ]; then
	cp "$bb4" "$tmp/rw.img"
	c 180 --rootfs "$tmp/rw.img" --rootfs-rw -- sh -c 'echo kept > /kept && sync'
	expect "container: --rootfs-rw on ext4 writes reach the image" \
		eval '[ $rc -eq 0 ] && [ "$(debugfs -R "cat /kept" "$tmp/rw.img" 2>/dev/null)" = kept ]'
	c 180 --rootfs "$bb4" -- sh -c 'grep " / " /proc/mounts'
	expect "container: an ext4 image works under the overlay too" \
		eval '[ $rc -eq 0 ] && grep -q "^overlay / overlay" "$tmp/out"'
else
	not_ok "container: no ext4 busybox image (VMM_TEST_BUSYBOX_EXT4=$bb4)"
	not_ok "container: an ext4 image works under the overlay too"
fi

head -c 3145728 /dev/urandom >"$tmp/garbage.img"
c 180 --rootfs "$tmp/garbage.img" -- /bin/true
expect "container: a rootfs that is not a file system image: the agent's one line, exit 125" \
	eval '[ $rc -eq 125 ] && grep -q "cannot mount the rootfs /dev/vda: no ext4 or erofs superblock" "$tmp/err"'

if [ -n "$deb" ] && [ -f "$deb" ]; then
	c 300 --rootfs "$deb" --memory 256 -- apt --version
	expect "container: a Debian minbase rootfs runs apt --version" \
		eval '[ $rc -eq 0 ] && grep -q "^apt [0-9]" "$tmp/out"'
else
	not_ok "container: no Debian rootfs image (VMM_TEST_DEBIAN_IMG=$deb)"
fi
