#!/usr/bin/env bash
# Step one of the README: install what is needed, build vmm and the guest kernel, and run an
# example container (a busybox rootfs) in a micro-VM that runs a command and exits. Where
# /dev/kvm cannot run the guest (none, or no VT-x/SVM such as kvm_pvm) the VM runs inside the nested
# harness (a QEMU/TCG guest with AMD SVM, tests/nested/), which says so and is much slower.
# Run it as root (no sudo needed), or with sudo as a user who has it. tests/nested/with-kvm.sh
# decides where the VM runs and prints one line saying which and why.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then
	echo "== running as root${SUDO_USER:+ (through sudo, for $SUDO_USER)}" >&2
else
	echo "quickstart: needs root (packages, a root file system image, /dev/kvm): run it as root, or as sudo scripts/quickstart.sh" >&2
	exit 1
fi
scripts/install-deps.sh
scripts/build.sh
echo "== building the guest kernel (cached; ~8 minutes on 2 cores the first time)" >&2
kdir=$(kernel-config/build.sh | tail -n1)
echo "== making a busybox root file system image (cached in ~/.cache/vmm/rootfs/)" >&2
img=$(rootfs/busybox-rootfs.sh | tail -n1)
echo "== running a container: vmm --rootfs $img -- sh -c ..." >&2
exec tests/nested/with-kvm.sh --rw "$PWD" --rw "$PWD/build" -- env VMM_KERNEL="$kdir/vmlinux" \
	"$PWD/build/vmm/vmm" --rootfs "$img" --cpus 2 --boot-timer --hostname demo -- \
	/bin/sh -c 'echo "Hello from a container on its own kernel: $(uname -sr), $(nproc) CPUs, host name $(hostname)"'
