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
# The source folder is shared too: the nest hides the host's /tmp, where a clone may live.
exec "$src/tests/nested/with-kvm.sh" --rw "$src" --rw "$build" -- \
	"$src/tests/integration/boot-tests.sh" "$vmm" "$initramfs" "$kdir" "$probe"
