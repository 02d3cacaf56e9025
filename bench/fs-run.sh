#!/usr/bin/env bash
# The file-system benchmark's one command: vmm's virtio-fs (cache=auto, cache=none) beside QEMU
# microvm's virtio-9p-device on the same host directory, and vmm's virtio-blk with an erofs image
# of the same tree for reads (bench/fs.py), through the nested KVM harness where there is no
# /dev/kvm (it says so; compare ratios there).
#
#   bench/fs-run.sh [--quick] [bench/fs.py options]
#
# --quick is the CI smoke run: 1 run, 100 files / 1 MiB untarred, 300 files stat'ed, 16 MiB
# sequential, 1 s per random 4 KiB case, 1 pair of memory boots (about 3 minutes in a busy
# nest). Other options go to bench/fs.py (--runs N, --configs vmm,vmm-none,qemu-9p,vmm-blk,
# --tar-files, --stat-files, --seq-mib, ...).
# Results: build/bench/fs-results.json, each boot's console in build/bench/fs-console-*.log.
#
# The guest kernel is the project's (kernel-config/vmm.config), which has 9P for QEMU's 9p and
# PROC_SYSCTL for /proc/sys/vm/drop_caches. Both VMMs boot it.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${VMM_BUILD_DIR:-$src/build}
args=() quick=0
while (($#)); do
	case $1 in
	--quick) quick=1 args+=(--runs 1 --tar-files 100 --tar-mib 1 --stat-files 300 --seq-mib 16 --io-seconds 1 --memory-pairs 1 --case-timeout 150) ;;
	*) args+=("$1") ;;
	esac
	shift
done
[ -x "$build/vmm/vmm" ] || { echo "fs-bench: $build/vmm/vmm not built: run scripts/build.sh" >&2; exit 1; }
[ -f "$build/guest/initramfs.cpio" ] || { echo "fs-bench: $build/guest/initramfs.cpio not built (meson setup without -Dguest=false)" >&2; exit 1; }
command -v mkfs.erofs >/dev/null || { echo "fs-bench: mkfs.erofs not found: apt-get install erofs-utils" >&2; exit 1; }
kdir=$("$src/kernel-config/build.sh" | tail -n1)
mkdir -p "$build/bench"
py=/usr/bin/python3
[ -x "$py" ] || py=python3
# The smoke run takes about 400 s in the nest, a boot 10 to 40 s: a boot still going after 150 s
# (--case-timeout) is hung and gets one more try, and a nest still going after 1000 s is stopped.
if ((quick)); then export NEST_TIMEOUT=${NEST_TIMEOUT:-1000}; fi
# The nest alone failing (its TCG outer guest stalled or crashed) earns up to two more boots.
exec "$src/tests/nested/with-kvm.sh" --tries 3 --rw "$src" --rw "$build" -- \
	"$py" "$src/bench/fs.py" --vmm "$build/vmm/vmm" --kernel "$kdir/vmlinux" \
	--initrd "$build/guest/initramfs.cpio" --work "${TMPDIR:-/tmp}" --out "$build/bench" \
	"${args[@]}"
