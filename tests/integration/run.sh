#!/usr/bin/env bash
# Integration suite entry point (meson test --suite integration). Builds or finds the cached
# guest kernel, then runs boot-tests.sh under real KVM: directly where /dev/kvm works, otherwise
# inside the nested QEMU/TCG guest (tests/nested/with-kvm.sh), which boots once for all tests.
# Prints TAP. Usage: run.sh VMM INITRAMFS KVM_PROBE
set -uo pipefail
vmm=$1 initramfs=$2 probe=$3
src=${VMM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${VMM_BUILD_DIR:-$(dirname "$vmm")}

if ! kdir=$("$src/kernel-config/build.sh" | tail -n1) || [ ! -f "$kdir/vmlinux" ]; then
	echo "1..1"
	echo "not ok 1 - guest kernel build (kernel-config/build.sh failed, see the log above)"
	exit 1
fi
echo "# guest kernel: $kdir"
echo "# kvm-check: $("$src/tests/nested/kvm-check.sh") (VMM_NEST=${VMM_NEST:-auto})"

# The container tests' root file systems, built (or found in ~/.cache/vmm/rootfs/) here on the
# host, where debootstrap has the network; a build that fails leaves its tests failing, not
# skipped.
if VMM_TEST_BUSYBOX_EROFS=$("$src/rootfs/busybox-rootfs.sh" | tail -n1) &&
	VMM_TEST_BUSYBOX_EXT4=$("$src/rootfs/busybox-rootfs.sh" --format ext4 | tail -n1); then
	export VMM_TEST_BUSYBOX_EROFS VMM_TEST_BUSYBOX_EXT4
	echo "# busybox rootfs: $VMM_TEST_BUSYBOX_EROFS (and .ext4)"
fi
if VMM_TEST_DEBIAN_IMG=$("$src/rootfs/debian-rootfs.sh" | tail -n1); then
	export VMM_TEST_DEBIAN_IMG
	echo "# Debian rootfs: $VMM_TEST_DEBIAN_IMG"
fi

# The tests run once; the nest alone (exit 125 from nest.sh: L1 stalled, timed out or broke, never
# a test result) earns one more try, since its TCG outer guest can stall on an overloaded host.
# Each try's output is kept apart so that TAP shows one run only; the failed try is summarised.
# The source folder is shared too: the nest hides the host's /tmp, where a clone may live.
export NEST_TIMEOUT=${NEST_TIMEOUT:-1700}
export NEST_MODULES="${NEST_MODULES:-} tun veth sch_ingress cls_u32 act_mirred" # the virtio-net test makes a TAP; vmm-oci a TAP, a veth pair and tc redirects
log=$(mktemp)
trap 'rm -f "$log" "$log.err"' EXIT
for try in 1 2; do
	"$src/tests/nested/with-kvm.sh" --rw "$src" --rw "$build" -- \
		"$src/tests/integration/boot-tests.sh" "$vmm" "$initramfs" "$kdir" "$probe" >"$log" 2>"$log.err"
	rc=$?
	if [ "$rc" -ne 125 ] || [ "$try" -eq 2 ] || grep -q '^# [0-9]* passed, [0-9]* failed' "$log"; then
		break
	fi
	echo "# try $try: the nested harness failed (exit 125) before the tests finished; its last words:"
	tail -n 8 "$log.err" | sed 's/^/#   /'
	echo "# running the integration tests again"
done
cat "$log.err" >&2
cat "$log"
exit "$rc"
