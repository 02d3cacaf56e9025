#!/usr/bin/env bash
# Step one of the README: install what is needed, build vmm and the guest kernel, and run an
# example container (a busybox rootfs) in a micro-VM that runs a command and exits. Without /dev/kvm the VM runs inside the nested
# harness (a QEMU/TCG guest with AMD SVM, tests/nested/), which says so and is much slower.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
echo "== building the guest kernel (cached; ~8 minutes on 2 cores the first time)" >&2
kdir=$(kernel-config/build.sh | tail -n1)
echo "== making a busybox root file system image (cached in ~/.cache/vmm/rootfs/)" >&2
img=$(rootfs/busybox-rootfs.sh | tail -n1)
if [ -w /dev/kvm ] || [ -r /dev/kvm ]; then
	echo "== booting on this machine's KVM" >&2
else
	echo "== no /dev/kvm here: booting inside the nested KVM harness (QEMU TCG + SVM)" >&2
fi
echo "== running a container: vmm --rootfs $img -- sh -c ..." >&2
exec tests/nested/with-kvm.sh --rw "$PWD" --rw "$PWD/build" -- env VMM_KERNEL="$kdir/vmlinux" \
	"$PWD/build/vmm/vmm" --rootfs "$img" --cpus 2 --boot-timer --hostname demo -- \
	/bin/sh -c 'echo "Hello from a container on its own kernel: $(uname -sr), $(nproc) CPUs, host name $(hostname)"'
