#!/usr/bin/env bash
# Installs the Debian 12 packages vmm needs to build, test and run its nested KVM harness.
set -euo pipefail
pkgs=(
	# build
	gcc make meson ninja-build pkg-config libc6-dev libcmocka-dev clang libclang-rt-14-dev
	liburing-dev libseccomp-dev libcap-ng-dev libjson-c-dev zlib1g-dev
	# guest side: busybox for the test initramfs, the kernel source and its build tools
	busybox-static linux-source-6.1 bc bison flex libelf-dev libssl-dev xz-utils cpio
	# nested harness: QEMU (TCG, -cpu max has SVM) and a Debian kernel with kvm-amd
	qemu-system-x86 linux-image-amd64 kmod
	# device tests: disk images (ext4, erofs), a TAP in a network namespace
	e2fsprogs erofs-utils iproute2 util-linux
	# rootfs images: vmm-mkrootfs (e2fsprogs, erofs-utils above), the Debian test rootfs
	debootstrap
	# container engines that drive vmm-oci in the tests (tests/integration/engine-tests.sh)
	podman conmon crun containerd docker.io catatonit containernetworking-plugins iptables
	# vmm-oci: the seccomp profile is compiled with libseccomp (libseccomp-dev above)
	# scripts
	python3 coreutils
	# bench: the boot-timeline chart
	python3-matplotlib
)
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${pkgs[@]}"
