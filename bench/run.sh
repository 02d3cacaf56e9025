#!/usr/bin/env bash
# The benchmark's one command: boots vmm and QEMU microvm side by side (bench/bench.py) with the
# project's guest kernel and test initramfs, through the nested KVM harness where there is no
# /dev/kvm (it says so; compare ratios there, not absolute times).
#
#   bench/run.sh [--boots N] [--parallel K] [--memory-samples M] [--variant-boots V]
#                [--lifecycle-samples L] [--pause-cycles P] [--only lifecycle] [--no-qemu] [--quick]
#
# --quick is the CI smoke run: 2 boots, 1 memory sample, 2 in parallel, 1 boot per tuning
# variant, 2 lifecycle samples, 5 pause/resume cycles (the full run boots each boot-speed tuning
# variant 5 times, see docs/performance.md). The lifecycle section (pause, resume, start from
# --paused, the API's memory) boots containers of the busybox erofs image that
# rootfs/busybox-rootfs.sh builds or finds in its cache; --only lifecycle runs that section
# alone. Results go to build/bench/results.json and build/bench/boot-timeline.png
# (VMM_BUILD_DIR overrides build/).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${VMM_BUILD_DIR:-$src/build}
args=() quick=0
while (($#)); do
	case $1 in
	--quick) quick=1 args+=(--boots 2 --memory-samples 1 --parallel 2 --variant-boots 1 --lifecycle-samples 2 --pause-cycles 5) ;;
	*) args+=("$1") ;;
	esac
	shift
done
[ -x "$build/vmm/vmm" ] || { echo "bench: $build/vmm/vmm not built: run scripts/build.sh" >&2; exit 1; }
kdir=$("$src/kernel-config/build.sh" | tail -n1)
# The container image of the lifecycle section; without it that section is skipped (one line).
rootfs=()
if img=$("$src/rootfs/busybox-rootfs.sh" | tail -n1) && [ -f "$img" ]; then
	rootfs=(--rootfs "$img")
else
	echo "bench: rootfs/busybox-rootfs.sh found no image: the lifecycle section is skipped" >&2
fi
mkdir -p "$build/bench"
# Debian's python3, which has the packages install-deps.sh installs (matplotlib), even when
# another python3 comes first in PATH.
py=/usr/bin/python3
export MPLCONFIGDIR=${MPLCONFIGDIR:-$build/bench/.mpl}
[ -x "$py" ] || py=python3
# The smoke run takes about 450 s in the nest (each boot has its own deadline in bench.py): a nest
# still going after 1200 s is stopped.
if ((quick)); then export NEST_TIMEOUT=${NEST_TIMEOUT:-1200}; fi
# The nest alone failing (its TCG outer guest stalled or crashed) earns up to two more boots.
exec "$src/tests/nested/with-kvm.sh" --tries 3 --rw "$src" --rw "$build" -- \
	"$py" "$src/bench/bench.py" --vmm "$build/vmm/vmm" --kernel "$kdir/vmlinux" \
	--bzimage "$kdir/bzImage" --initrd "$build/guest/initramfs.cpio" --out "$build/bench" \
	--variant-boots 5 "${rootfs[@]}" "${args[@]}"
