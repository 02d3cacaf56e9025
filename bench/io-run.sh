#!/usr/bin/env bash
# The device I/O benchmark's one command: virtio-blk, virtio-net (TAP) and virtio-vsock throughput
# of vmm beside QEMU microvm (bench/io.py), in a network namespace of its own, through the nested
# KVM harness where there is no /dev/kvm (it says so; compare ratios there). Needs root (a TAP).
#
#   bench/io-run.sh [--runs N] [--quick] [bench/io.py options]
#
# --quick is the CI smoke run (1 run, 2 s per random 4 KiB case, 8 MiB per network/vsock transfer). Other options go to
# bench/io.py (--cases blk,net-tx,net-rx,vsock; --io-seconds N). Results:
# build/bench/io-results.json, each boot's console in build/bench/console-*.log.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${VMM_BUILD_DIR:-$src/build}
args=() quick=0
while (($#)); do
	case $1 in
	--quick) quick=1 args+=(--runs 1 --io-seconds 2 --transfer-mib 8 --case-timeout 150) ;;
	*) args+=("$1") ;;
	esac
	shift
done
if [ "$(id -u)" -ne 0 ]; then
	echo "io-bench: needs root (it makes a TAP in a network namespace of its own): skipped"
	exit 77
fi
[ -x "$build/vmm/vmm" ] || { echo "io-bench: $build/vmm/vmm not built: run scripts/build.sh" >&2; exit 1; }
kdir=$("$src/kernel-config/build.sh" | tail -n1)
mkdir -p "$build/bench"
py=/usr/bin/python3
[ -x "$py" ] || py=python3
export NEST_MODULES="${NEST_MODULES:-} tun"
# The smoke run takes about 130 s in the nest, a boot 10 to 20 s: a boot still going after 150 s
# (--case-timeout) is hung and gets one more try, and a nest still going after 900 s is stopped, so
# that a hang in the nest costs CI minutes, not half an hour.
if ((quick)); then export NEST_TIMEOUT=${NEST_TIMEOUT:-900}; fi
# The nest alone failing (its TCG outer guest stalled or crashed) earns up to two more boots.
exec "$src/tests/nested/with-kvm.sh" --tries 3 --rw "$src" --rw "$build" -- \
	unshare --net "$py" "$src/bench/io.py" --vmm "$build/vmm/vmm" --kernel "$kdir/vmlinux" \
	--initrd "$build/guest/initramfs.cpio" --vsock-host "$src/tests/integration/vsock-host.py" \
	--work "${TMPDIR:-/tmp}" --out "$build/bench" "${args[@]}"
