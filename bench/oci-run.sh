#!/usr/bin/env bash
# The container-engine benchmark's one command: podman 4 + conmon with `--runtime vmm`
# (build/oci/vmm-oci, one micro-VM per container) beside the same podman with crun, alternating
# in the same run (bench/oci.py): `podman run --rm IMG true`, `run -d` then `exec`, K containers
# started at once, and the host memory (Pss) per running container. Through the nested KVM
# harness where there is no /dev/kvm (it says so; compare ratios there). Needs root (podman
# rootful) and podman, conmon, crun, erofs-utils (scripts/install-deps.sh).
#
#   bench/oci-run.sh [--quick] [bench/oci.py options]
#
# --quick is the CI smoke run: 2 runs of each case, 3 containers at once, 1 round (5 minutes
# in the nest on an idle 2-core host, about twice that on a busy one). The full run: 5 runs, 10 at once, 2 rounds. Other options go to
# bench/oci.py (--runs N, --parallel K, --parallel-rounds R, --memory MIB, --runtimes vmm,crun).
# Results: build/bench/oci-results.json (VMM_BUILD_DIR overrides build/).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${VMM_BUILD_DIR:-$src/build}
args=() quick=0
while (($#)); do
	case $1 in
	--quick) quick=1 args+=(--runs 2 --parallel 3 --parallel-rounds 1) ;;
	*) args+=("$1") ;;
	esac
	shift
done
if [ "$(id -u)" -ne 0 ]; then
	echo "oci-bench: needs root (podman rootful, and in the nest a tmpfs over /run): skipped"
	exit 77
fi
for c in podman conmon crun fsck.erofs; do
	command -v "$c" >/dev/null || {
		echo "oci-bench: $c not found (scripts/install-deps.sh installs it): skipped"
		exit 77
	}
done
[ -x "$build/oci/vmm-oci" ] || { echo "oci-bench: $build/oci/vmm-oci not built: run scripts/build.sh" >&2; exit 1; }
[ -x "$build/vmm/vmm" ] || { echo "oci-bench: $build/vmm/vmm not built: run scripts/build.sh" >&2; exit 1; }
kdir=$("$src/kernel-config/build.sh" | tail -n1)
img=$("$src/rootfs/busybox-rootfs.sh" | tail -n1)
[ -f "$img" ] || { echo "oci-bench: rootfs/busybox-rootfs.sh gave no image" >&2; exit 1; }
mkdir -p "$build/bench"
py=/usr/bin/python3
[ -x "$py" ] || py=python3
# The full run (5 runs, 10 at once in 2 rounds) runs about 150 podman commands: in the nest,
# 20 to 40 minutes, more than its default 30.
# The smoke run takes about 330 s: a nest still going after 900 s is stopped.
if ((quick)); then export NEST_TIMEOUT=${NEST_TIMEOUT:-900}; else export NEST_TIMEOUT=${NEST_TIMEOUT:-3600}; fi
# The nest alone failing (its TCG outer guest stalled or crashed) earns up to two more boots.
exec "$src/tests/nested/with-kvm.sh" --tries 3 --rw "$src" --rw "$build" -- \
	"$py" "$src/bench/oci.py" --oci "$build/oci/vmm-oci" --kernel "$kdir/vmlinux" \
	--busybox-erofs "$img" --out "$build/bench" "${args[@]}"
