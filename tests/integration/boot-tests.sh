#!/usr/bin/env bash
# Boot tests: each one starts vmm on a real guest kernel under real KVM and checks what the guest
# printed and how vmm exited. Runs wherever /dev/kvm works (the nested harness provides one).
# Prints TAP (the plan comes last) and a final "N passed, N failed" comment.
# Usage: boot-tests.sh VMM INITRAMFS KERNEL_DIR KVM_PROBE
set -u
vmm=$1 initramfs=$2 kdir=$3 probe=$4
vmlinux=$kdir/vmlinux bzimage=$kdir/bzImage
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 failed=0
[ -n "${VMM_NESTED:-}" ] && echo "# running inside the nested KVM harness (TCG outer guest): timings are not hardware timings"

ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
	n=$((n + 1)) failed=$((failed + 1))
	echo "not ok $n - $1"
	for f in "$tmp/out" "$tmp/err"; do
		[ -s "$f" ] && tail -n 25 "$f" | tr -d '\r' | sed "s|^|# $(basename "$f"): |"
	done
}

# vm TIMEOUT ARGS...: runs vmm with stdin from $tmp/in, output in $tmp/out and $tmp/err,
# exit status in $rc. The guest's console turns \n into \r\n: out is stored without \r.
vm() {
	local t=$1
	shift
	timeout -k 5 "$t" "$vmm" "$@" <"${VM_STDIN:-/dev/null}" >"$tmp/raw" 2>"$tmp/err"
	rc=$?
	tr -d '\r' <"$tmp/raw" >"$tmp/out"
}

expect() { # expect NAME CONDITION...
	local name=$1
	shift
	if "$@"; then ok "$name"; else not_ok "$name (exit $rc)"; fi
}
has() { grep -q -- "$1" "$tmp/out"; }

# wait_for PATTERN FILE PID [SECONDS]: waits until a line of FILE matches PATTERN (0), or PID has
# exited or SECONDS (default 600: the nest's serial port runs at ~30 bytes/s) have passed (1).
# An event with a deadline that fits the nest, never a fixed sleep.
wait_for() {
	local pattern=$1 file=$2 pid=$3 deadline=$((SECONDS + ${4:-600}))
	while ((SECONDS < deadline)); do
		grep -q -- "$pattern" "$file" 2>/dev/null && return 0
		kill -0 "$pid" 2>/dev/null || { grep -q -- "$pattern" "$file" 2>/dev/null; return; }
		sleep 0.1
	done
	return 1
}
has_err() { grep -q -- "$1" "$tmp/err"; }

# vsock_echo UDS COMMAND...: runs COMMAND (vmm, or vmm-jail around it) in the background while
# the host connects to vmm's socket UDS, asks for guest port 5001 with "CONNECT 5001" and sends
# 1 MiB through the guest's echo. Sets rc; $tmp/out holds the guest's output and the host's.
# (device and jail use it; each part runs alone in its group's nest, so helpers live here.)
vsock_host=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/vsock-host.py
vsock_echo() {
	local uds=$1 pid py=/usr/bin/python3
	shift
	[ -x "$py" ] || py=python3
	"$@" </dev/null >"$tmp/raw" 2>"$tmp/err" &
	pid=$!
	"$py" "$vsock_host" connect "$uds" 5001 1048576 >"$tmp/host" 2>&1
	wait "$pid"
	rc=$?
	tr -d '\r' <"$tmp/raw" >"$tmp/out"
	cat "$tmp/host" >>"$tmp/out"
}

# watched TIMEOUT SOCK OUT ERR ARGS...: vmm ARGS with stdin from /dev/null, stdout in OUT, stderr
# in ERR and its control socket at SOCK. Past TIMEOUT seconds it is stopped (TERM, then KILL 5 s
# later), and first its metrics, read twice 5 s apart, go to the TAP as comments: the vCPU exits
# and each device queue's indexes tell a guest that waits on vmm (a request queue offered but not
# taken, or taken but not returned) from one that stopped running (seen in the nest, whose TCG can
# wedge a vCPU of L1's KVM). With WATCH_BUSY=1 (a command that never sleeps) in the nest, such a
# stop is also a "# nest-trouble:" line, on which run.sh runs the group again. A vmm that is still
# there 30 s after SIGKILL ends the group (exit 125, a "# nest-trouble:" line), which run.sh runs
# again. Sets rc (137 for a vmm that had to be killed, as with timeout -k). WATCH_WRAP: words
# put before vmm (a setpriv that drops a capability). It is watch_start and watch_end: a test that
# acts on the VM meanwhile (kills it) calls the two itself.
watched() {
	local t=$1
	shift
	watch_start "$@"
	watch_end "$t"
}
# watch_start SOCK OUT ERR ARGS...: starts vmm as watched does, in the background; sets pid (vmm's)
watch_start() {
	local sock=$1 out=$2 err=$3
	shift 3
	rm -f "$sock" "$tmp/watch.rc" "$tmp/watch.pid"
	# vmm runs under a subshell that writes its status once it is reaped, so that a vmm that
	# SIGKILL cannot end is seen (a plain `wait` would block until the nest's timeout)
	(
		${WATCH_WRAP:-} "$vmm" --api-sock "$sock" "$@" </dev/null >"$out" 2>"$err" &
		echo $! >"$tmp/watch.pid"
		wait $! 2>/dev/null # (no "Killed" line from the shell: a test may kill it)
		echo $? >"$tmp/watch.rc"
	) &
	watch_sub=$! watch_sock=$sock
	while [ ! -s "$tmp/watch.pid" ]; do sleep 0.1; done
	pid=$(<"$tmp/watch.pid")
}
# watch_end TIMEOUT: waits up to TIMEOUT seconds for the vmm of watch_start to end, then as watched
watch_end() {
	local t=$1 sock=$watch_sock end py=/usr/bin/python3
	[ -x "$py" ] || py=python3
	end=$((SECONDS + t))
	while [ ! -e "$tmp/watch.rc" ] && ((SECONDS < end)); do sleep 0.5; done
	if [ ! -e "$tmp/watch.rc" ]; then
		echo "# vmm still runs after $t s; its metrics, 5 s apart:"
		timeout 20 "$vmm" ctl --api-sock "$sock" metrics >"$tmp/watch1" 2>&1
		sleep 5
		timeout 20 "$vmm" ctl --api-sock "$sock" metrics >"$tmp/watch2" 2>&1
		"$py" - "$tmp/watch1" "$tmp/watch2" "${VMM_NESTED:+${WATCH_BUSY:-}}" <<'PY'
import json, sys
# The receive-side queues, whose buffers normally wait offered and not taken.
RX = {("vsock", 0), ("vsock", 2), ("net", 0)}
ms = []
for path in sys.argv[1:3]:
    t = open(path).read()
    try:
        ms.append(json.loads(t))
    except ValueError:
        print("#   (no metrics: %s)" % t.strip()[:200])
        sys.exit()
for j in ms:
    qs = ["%s q%d %d/%d/%d signalled %d used_event %s%s" % (d["name"], q["index"], q["offered"],
          q["taken"], q["returned"], q["signalled"], q.get("used_event", "-"),
          " BROKEN" if q["broken"] else "") for d in j["devices"] for q in d["queues"]]
    print("#   %s, vCPU exits %d; queues offered/taken/returned: %s; interrupt status %s" % (
          j["state"], j["vcpu_exits"]["total"], "; ".join(qs),
          [d["interrupt_status"] for d in j["devices"]]))
a, b = ms
# Settled: every request taken and answered, and what the driver has not consumed yet (returned
# past its used_event) has its interrupt raised and pending; a lost interrupt would be vmm's.
settled = all(q["taken"] == q["returned"] and (q["offered"] == q["taken"] or (d["type"], q["index"]) in RX)
              and not q["broken"] and (q.get("used_event", q["returned"]) == q["returned"] or d["interrupt_status"])
              for d in b["devices"] for q in d["queues"])
still = a["vcpu_exits"] == b["vcpu_exits"] and a["devices"] == b["devices"]
if sys.argv[3] and settled and still:
    # A command that never idles, vmm owes the guest nothing, and nothing moved: the guest
    # stopped running, which in the nest is its TCG outer guest wedging a vCPU (run.sh runs
    # the group again)
    print("# nest-trouble: the guest stopped with every request answered and no exit in 5 s")
PY
		kill -TERM "$pid" 2>/dev/null
		end=$((SECONDS + 5))
		while kill -0 "$pid" 2>/dev/null && ((SECONDS < end)); do sleep 0.5; done
		kill -KILL "$pid" 2>/dev/null
		end=$((SECONDS + 30))
		while [ ! -e "$tmp/watch.rc" ] && ((SECONDS < end)); do sleep 0.5; done
		if [ ! -e "$tmp/watch.rc" ]; then
			# Still there 30 s after SIGKILL: a thread of it is stuck in the kernel that runs
			# it. In the nest that is the outer guest's KVM wedged (its /proc/PID/task/TID/stack
			# then hangs a reader too), and nothing after it can be trusted: the group ends
			# here, unfinished, and run.sh runs it again.
			not_ok "vmm (pid $pid) still there 30 s after SIGKILL"
			echo "# nest-trouble: vmm survived SIGKILL for 30 s: a thread of it is stuck in the kernel (in the nest, the outer guest's KVM wedged); the group stops here"
			exit 125
		fi
	fi
	wait "$watch_sub"
	rc=$(<"$tmp/watch.rc")
}

bb=${VMM_TEST_BUSYBOX_EROFS:-}
export VMM_KERNEL=$vmlinux # the default kernel of the parts that pass no --kernel

basic_tests() {
	# 1. KVM itself works here (the nest's kvm-amd, or the host's)
	if "$probe" >"$tmp/out" 2>"$tmp/err"; then rc=0; ok "kvm-probe runs a guest instruction"; else rc=$?; not_ok "kvm-probe"; fi

	# 2-3. PVH vmlinux and bzImage boot to init; a guest poweroff (reboot through the i8042) exits 0
	vm 180 --kernel "$vmlinux" --initrd "$initramfs" --boot-timer
	expect "PVH vmlinux boots to init, poweroff exits 0" eval '[ $rc -eq 0 ] && has "vmm-init: booted (1 CPUs)"'
	grep -o 'boot-timer: .*' "$tmp/err" | sed 's/^/# pvh /'
	vm 180 --kernel "$bzimage" --initrd "$initramfs" --boot-timer
	expect "bzImage boots to init, poweroff exits 0" eval '[ $rc -eq 0 ] && has "vmm-init: booted (1 CPUs)"'
	grep -o 'boot-timer: .*' "$tmp/err" | sed 's/^/# bzimage /'

	# 4. the boot timer is reported
	expect "--boot-timer reports vmm start to init" has_err "boot-timer: guest init reached [0-9.]* ms"

	# 5. SMP: --cpus 2 and the guest sees two CPUs (only the processor lines: the whole of
	# /proc/cpuinfo is about 3 KB, over 90 s of the nest's serial port, and ran past 180 s once)
	vm 180 --kernel "$vmlinux" --initrd "$initramfs" --cpus 2 --cmdline '-- /bin/sh -c "grep ^processor /proc/cpuinfo"'
	expect "--cpus 2: the guest sees 2 CPUs" eval '[ $rc -eq 0 ] && has "vmm-init: booted (2 CPUs)" && [ "$(grep -c "^processor" "$tmp/out")" -eq 2 ]'

	# 6. the init's command and its exit status (the kernel groups words with double quotes only)
	vm 180 --kernel "$vmlinux" --initrd "$initramfs" --cmdline '-- /bin/sh -c "echo from-guest-sh; exit 7"'
	expect "guest command output and exit status 7 reach vmm" eval '[ $rc -eq 7 ] && has "from-guest-sh"'

	# 7. stdin reaches the guest
	printf 'hello-from-stdin\n' >"$tmp/in"
	VM_STDIN=$tmp/in vm 180 --kernel "$vmlinux" --initrd "$initramfs" --cmdline '-- /bin/sh -c "read line; echo got:$line"'
	expect "stdin reaches the guest" eval '[ $rc -eq 0 ] && has "got:hello-from-stdin"'

	# 8. 61250 bytes of piped stdin arrive intact (vmm's flow control loses nothing). Whole lines keep
	# the guest tty in canonical mode within its 4 KiB line limit (a last line without a newline would
	# never be handed to the reader: the serial line has no end-of-file).
	head -c 40000 /dev/urandom | od -An -tx1 -v | head -n 1250 >"$tmp/in"
	want=$(sha256sum <"$tmp/in" | cut -c1-64)
	VM_STDIN=$tmp/in vm 180 --kernel "$vmlinux" --initrd "$initramfs" --cmdline '-- /bin/sh -c "stty -echo; head -n 1250 | sha256sum"'
	expect "61250 bytes of stdin arrive intact" has "$want"

	# 9. a guest kernel panic (no root, panic=-1) exits non-zero
	vm 180 --kernel "$vmlinux" --cmdline "panic=-1"
	expect "guest kernel panic exits 125" eval '[ $rc -eq 125 ] && has_err "panicked"'

	# 10. SIGTERM stops the VM cleanly with 128+15
	timeout -k 5 900 "$vmm" --kernel "$vmlinux" --initrd "$initramfs" --cmdline "-- /bin/sleep 900" </dev/null >"$tmp/raw" 2>"$tmp/err" &
	pid=$!
	wait_for "vmm-init: booted" "$tmp/raw" "$pid"
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	tr -d '\r' <"$tmp/raw" >"$tmp/out"
	expect "SIGTERM stops the VM with exit 143" eval '[ $rc -eq 143 ] && has_err "stopped by signal 15"'

	# 11. a command the guest cannot run gives 127
	vm 180 --kernel "$vmlinux" --initrd "$initramfs" --cmdline "-- /no/such/program"
	expect "unknown guest command exits 127" eval '[ $rc -eq 127 ]'

	# 12. bzImage with SMP
	vm 180 --kernel "$bzimage" --initrd "$initramfs" --cpus 2 --memory 256
	expect "bzImage with --cpus 2 --memory 256" eval '[ $rc -eq 0 ] && has "vmm-init: booted (2 CPUs)"'

	# 13. virtio-rng over virtio-mmio: the guest's /dev/hwrng is ours and gives 4 KiB
	vm 180 --kernel "$vmlinux" --initrd "$initramfs" --rng --cmdline '-- /bin/sh -c "cat /sys/class/misc/hw_random/rng_current; head -c 4096 /dev/hwrng | wc -c"'
	expect "virtio-rng: the guest reads 4096 bytes from /dev/hwrng" eval '[ $rc -eq 0 ] && has "^virtio_rng" && has "^ *4096$"'
}

sandbox_tests() {
	# The sandbox (docs/security.md). Every test above already ran with it on (the default): that is
	# the proof the allow-lists suffice. Here: the filters are live, per thread kind, and name the call.
	for kind in main vcpu; do
		VMM_SECCOMP_TEST=$kind vm 180 --kernel "$vmlinux" --initrd "$initramfs"
		expect "seccomp: a forbidden call on the $kind thread kills vmm (125) and names it" \
			eval '[ $rc -eq 125 ] && has_err "seccomp: thread $kind made a forbidden system call uname ([0-9]*); this is a vmm bug"'
	done
	VMM_SECCOMP_TEST=vcpu vm 180 --kernel "$vmlinux" --initrd "$initramfs" --seccomp=off
	expect "--seccomp=off: no filter, a one-line warning, the guest runs" \
		eval '[ $rc -eq 0 ] && has "vmm-init: booted" && [ "$(grep -c "seccomp=off" "$tmp/err")" -eq 1 ]'

	# While a guest runs: seccomp in filter mode on every thread, no_new_privs, no capabilities
	timeout -k 5 900 "$vmm" --kernel "$vmlinux" --initrd "$initramfs" --cpus 2 --cmdline "-- /bin/sleep 900" </dev/null >"$tmp/raw" 2>"$tmp/err" &
	pid=$!
	wait_for "vmm-init: booted" "$tmp/raw" "$pid"
	vpid=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null) # $pid is timeout(1), vmm its child
	vpid=${vpid%% *}
	st=$(cat "/proc/$vpid/status" 2>/dev/null)
	grep "^\(Seccomp\|NoNewPrivs\|CapEff\|CapPrm\|CapBnd\):" <<<"$st" | sed 's/^/# vmm /'
	threads_ok=true nthreads=0
	for t in /proc/$vpid/task/*; do
		nthreads=$((nthreads + 1))
		grep -q "^Seccomp:[[:space:]]*2$" "$t/status" 2>/dev/null || threads_ok=false
	done
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	expect "sandbox: Seccomp 2, NoNewPrivs 1, CapEff 0 while the guest runs" \
		eval 'grep -q "^Seccomp:[[:space:]]*2$" <<<"$st" && grep -q "^NoNewPrivs:[[:space:]]*1$" <<<"$st" && grep -q "^CapEff:[[:space:]]*0000000000000000$" <<<"$st" && grep -q "^CapPrm:[[:space:]]*0000000000000000$" <<<"$st"'
	expect "sandbox: all $nthreads threads (main + 2 vCPUs) have Seccomp 2; SIGTERM still exits 143" \
		eval '$threads_ok && [ "$nthreads" -eq 3 ] && [ $rc -eq 143 ]'
}

# The parts, in this order unless VMM_TEST_ONLY names some (a space-separated list, for working on
# one part: the whole suite takes long in the nest). run.sh gives each group of parts a nest of
# its own. The engine parts stay last: they mount tmpfs over /run and the engines' state
# directories.
#   basic      KVM itself, PVH and bzImage boot, SMP, stdio, exit statuses, virtio-rng (above)
#   device     virtio-blk and virtio-net (device-tests.sh)
#   container  the built-in agent runs a command in a rootfs image (container-tests.sh)
#   lifecycle  the lifecycle and the control API (lifecycle-tests.sh)
#   fs         virtio-fs: a container root from a directory, read-only shares (fs-tests.sh)
#   volume     --volume and --tmpfs through the staging share (volume-tests.sh)
#   oci        vmm-oci driven as conmon and containerd's shim drive it (oci-tests.sh)
#   sandbox    the seccomp filters are live, per thread kind, and name the call (above); every
#              other part already runs with them on, which proves the allow-lists suffice
#   jail       vmm-jail around vmm (jail-tests.sh)
#   engine     podman with --runtime vmm (engine-tests.sh)
#   containerd containerd's ctr with --runc-binary vmm-oci, Docker with runtimes.vmm
#              (containerd-tests.sh)
#
# Resume: a part, or a section of one, is a unit, between "# unit: NAME" and "# unit done: NAME"
# lines (NAME is PART or PART/SECTION). run.sh keeps the TAP of each unit that ended with every
# test passed, and when it runs the group again (its nest died) it names those units in
# VMM_TEST_SKIP (space-separated), which are then not run again. A part that has sections says
# "# unit split: PART"; what it runs outside them (its set-up) runs in every try.
# skip_unit UNIT: 0 (and a line saying so) when an earlier try passed UNIT
skip_unit() {
	case " ${VMM_TEST_SKIP:-} " in
	*" $1 "*) echo "# unit $1: passed in an earlier try, not run again" ;;
	*) return 1 ;;
	esac
}
# section NAME FUNCTION: runs FUNCTION as the unit PART/NAME of the part being run
section() {
	local u=$part/$1
	[ -n "$part_split" ] || { part_split=1; echo "# unit split: $part"; }
	skip_unit "$u" && return 0
	echo "# unit: $u"
	"$2"
	echo "# unit done: $u"
}
here_parts=$(dirname "$0")
for part in ${VMM_TEST_ONLY:-basic device container lifecycle fs volume oci sandbox jail engine containerd}; do
	echo "# part: $part"
	skip_unit "$part" && continue
	echo "# unit: $part"
	part_split=
	case $part in
	basic) basic_tests ;;
	sandbox) sandbox_tests ;;
	*)
		if [ -f "$here_parts/$part-tests.sh" ]; then
			. "$here_parts/$part-tests.sh"
		else
			not_ok "VMM_TEST_ONLY: no part named $part (see boot-tests.sh)"
		fi
		;;
	esac
	echo "# unit done: $part"
done

echo "1..$n"
echo "# $((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
