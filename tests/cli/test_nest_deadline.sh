#!/usr/bin/env bash
# tests/nested/nest.sh keeps to VMM_TEST_DEADLINE (CI's end): a bad value is refused, no L1 boots
# after it, --timeout is cut to it, and a failed try is not repeated when less time is left than
# it took. QEMU is a fake (NEST_QEMU), so no KVM or TCG is needed, but nest.sh still builds its L1
# initramfs: skipped without a Debian kernel with kvm-amd, busybox-static or cpio. About a minute.
# Also: a command that finds L1 broken (a nest-broken: line and status 125) gets another boot.
# Prints TAP. Usage: test_nest_deadline.sh SOURCE_DIR
set -u
src=$1
nest=$src/tests/nested/nest.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! compgen -G '/lib/modules/*/kernel/arch/x86/kvm/kvm-amd.ko*' >/dev/null ||
	! command -v busybox >/dev/null || ! command -v cpio >/dev/null; then
	echo "1..0 # SKIP no Debian kernel with kvm-amd, busybox or cpio (scripts/install-deps.sh)"
	exit 0
fi
. "$src/tests/lib/tap.sh"
TAP_SHOW=$tmp/out
# fake QEMU: notes that it ran, then sleeps SLEEP seconds and ends without an exit status for the
# command (as a crashed L1 would). With FAKE_BROKEN, its first boot reports the command's status
# 125 with a "nest-broken:" line on the command's stderr, later boots status 0 (in the run
# directory, the nestio share).
cat >"$tmp/qemu" <<EOF
#!/bin/sh
echo ran >>"$tmp/ran"
sleep "\${FAKE_SLEEP:-0}"
[ -n "\${FAKE_BROKEN:-}" ] || exit 1
for a; do
	case \$a in *mount_tag=nestio*) io=\${a#local,path=} io=\${io%%,mount_tag=*} ;; esac
done
if [ "\$(wc -l <"$tmp/ran")" -eq 1 ]; then
	[ -n "\${FAKE_NO_LINE:-}" ] || echo "nest-broken: vmm stuck (fake)" >>"\$io/stderr"
	echo 125 >"\$io/status"
else
	echo 0 >"\$io/status"
fi
exit 0
EOF
chmod +x "$tmp/qemu"
# run [ENV=VALUE...] -- NEST_ARGS...: nest.sh with the fake QEMU; sets $rc and $took
run() {
	local envs=()
	while [ "$1" != -- ]; do
		envs+=("$1")
		shift
	done
	shift
	rm -f "$tmp/ran" "$tmp/fail"
	local t0=$SECONDS
	env -u VMM_TEST_DEADLINE NEST_QEMU="$tmp/qemu" NEST_FAIL_FILE="$tmp/fail" NEST_NO_WATCHDOG=1 "${envs[@]}" \
		"$nest" --quiet "$@" -- true >"$tmp/out" 2>&1
	rc=$? took=$((SECONDS - t0))
}
said() { grep -q -- "$1" "$tmp/out"; }
ran_times() { local c=0; [ -e "$tmp/ran" ] && c=$(wc -l <"$tmp/ran"); [ "$c" -eq "$1" ]; }
now() { date +%s; }

run VMM_TEST_DEADLINE=soon --
check "a deadline that is not a time is refused (exit 125, one line saying so)" \
	eval '[ $rc -eq 125 ] && said "VMM_TEST_DEADLINE wants a time in seconds since the epoch" && ran_times 0'

run VMM_TEST_DEADLINE=$(($(now) - 5)) -- --tries 3
check "past the deadline no L1 boots (exit 125, retry=0 in NEST_FAIL_FILE)" \
	eval '[ $rc -eq 125 ] && said "deadline (VMM_TEST_DEADLINE) passed [0-9]*s ago: L1 not booted" && ran_times 0 && grep -q "^retry=0 " "$tmp/fail"'

run VMM_TEST_DEADLINE=$(($(now) + 40)) FAKE_SLEEP=600 -- --timeout 1800
check "--timeout is cut to the deadline (a hung L1 is stopped by it, not after 1800 s)" \
	eval '[ $rc -eq 125 ] && [ $took -lt 70 ] && said "timed out after [0-9]*s (cut to VMM_TEST_DEADLINE)"'

run VMM_TEST_DEADLINE=$(($(now) + 45)) FAKE_SLEEP=25 -- --tries 3
check "an L1 that died is not booted again when less time is left than its try took" \
	eval '[ $rc -eq 125 ] && ran_times 1 && said "no other try: less time than this one took is left" && grep -q "^retry=0 " "$tmp/fail"'

run FAKE_SLEEP=0 -- --tries 2
check "without a deadline an L1 that died gets its other try" \
	eval '[ $rc -eq 125 ] && ran_times 2 && said "booting L1 again for the command (try 2 of 2)"'

run FAKE_BROKEN=1 -- --tries 2
check "a command that finds L1 broken (status 125, a nest-broken: line) gets another boot" \
	eval '[ $rc -eq 0 ] && ran_times 2 && said "the command found L1 broken after [0-9]*s: vmm stuck (fake); booting L1 again"'

run FAKE_BROKEN=1 -- --tries 1
check "... and with no try left, nest.sh fails with the reason (retry=1 in NEST_FAIL_FILE)" \
	eval '[ $rc -eq 125 ] && ran_times 1 && grep -q "^retry=1 the command found L1 broken" "$tmp/fail"'

run FAKE_BROKEN=1 FAKE_NO_LINE=1 -- --tries 2
check "a command's own status 125 (no nest-broken: line) is its result: no other boot" \
	eval '[ $rc -eq 125 ] && ran_times 1 && ! said "found L1 broken" && ! said "internal error"'

tap_end
