#!/usr/bin/env bash
# Step one of the README: install what is needed, build vmm and the guest kernel, and boot an
# example micro-VM that runs a command and exits. Without /dev/kvm the VM runs inside the nested
# harness (a QEMU/TCG guest with AMD SVM, tests/nested/), which says so and is much slower.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
echo "== building the guest kernel (cached; ~8 minutes on 2 cores the first time)" >&2
kdir=$(kernel-config/build.sh | tail -n1)
if [ -w /dev/kvm ] || [ -r /dev/kvm ]; then
	echo "== booting on this machine's KVM" >&2
else
	echo "== no /dev/kvm here: booting inside the nested KVM harness (QEMU TCG + SVM)" >&2
fi
exec tests/nested/with-kvm.sh --rw "$PWD" --rw "$PWD/build" -- "$PWD/build/vmm/vmm" \
	--kernel "$kdir/vmlinux" --initrd "$PWD/build/guest/initramfs.cpio" --cpus 2 --boot-timer \
	--cmdline '-- /bin/sh -c "echo Hello from a vmm micro-VM; uname -sr; nproc"'
