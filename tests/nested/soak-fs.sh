#!/usr/bin/env bash
# A soak test of the nest itself, for choosing its options: N boots (default 20) of the virtio-fs
# test's Debian tree (find /usr over virtio-fs, the load that broke the nest most often), each
# given T seconds (default 150). Prints one line per boot and "N boots, F failed" at the end.
# Run it inside the nest with the build's vmm:
#   tests/nested/with-kvm.sh -- tests/nested/soak-fs.sh build/vmm/vmm
# (NEST_KVM_AMD=, NEST_TCG_THREAD=single... to compare options).
set -uo pipefail
vmm=${1:?usage: soak-fs.sh VMM}
src=$(cd "$(dirname "$0")/../.." && pwd)
deb=$("$src/rootfs/debian-rootfs.sh" | tail -n1) || exit 1
kdir=$("$src/kernel-config/build.sh" | tail -n1) || exit 1
export VMM_KERNEL=$kdir/vmlinux
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fsck.erofs --extract="$tmp/root" "$deb" >/dev/null 2>&1 || { echo "cannot extract $deb"; exit 1; }
want=$(find "$tmp/root/usr" | wc -l)
echo "# kvm_amd: npt=$(cat /sys/module/kvm_amd/parameters/npt 2>/dev/null) vgif=$(cat /sys/module/kvm_amd/parameters/vgif 2>/dev/null); /usr holds $want paths"
failed=0 n=${N:-20}
for i in $(seq 1 "$n"); do
	t0=$SECONDS
	timeout -k 10 "${T:-150}" "$vmm" --rootfs "$tmp/root" --memory 256 -- \
		/bin/sh -c 'echo "usr: $(find /usr | wc -l)"' </dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ $rc -eq 0 ] && grep -qx "usr: $want" "$tmp/out"; then
		echo "boot $i: ok in $((SECONDS - t0)) s"
	else
		failed=$((failed + 1))
		echo "boot $i: FAILED (exit $rc) after $((SECONDS - t0)) s: $(tail -n 1 "$tmp/err")"
	fi
done
echo "$n boots, $failed failed"
