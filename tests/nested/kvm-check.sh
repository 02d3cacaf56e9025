#!/usr/bin/env bash
# kvm-check.sh: the one decision "can this machine's /dev/kvm run the project's guest?", used by
# with-kvm.sh (and through it by the quick start, the integration runner and the benchmarks).
#
#   tests/nested/kvm-check.sh        prints one line saying why; exit 0 usable, 1 not
#
# Usable means both:
#   - the CPU has hardware virtualisation: the vmx (VT-x) or svm (AMD-V) flag in /proc/cpuinfo,
#     or the kvm_intel / kvm_amd module loaded (/proc/modules or /sys/module);
#   - /dev/kvm is a character device that opens read-write.
# A /dev/kvm without VT-x/SVM (kvm_pvm, software virtualisation) opens and creates VMs but stops
# the guest kernel with KVM internal errors, and runs what it can about 10x slower than the
# nested harness: it is not usable.
#
# Test mode only (VMM_KVM_CHECK_TEST=1), the inputs come from the environment:
#   VMM_KVM_CPUINFO (file), VMM_KVM_MODULES (file in /proc/modules form), VMM_KVM_SYSMODULE
#   (directory in /sys/module form), VMM_KVM_DEV (the device node).
set -uo pipefail

cpuinfo=/proc/cpuinfo modules=/proc/modules sysmodule=/sys/module dev=/dev/kvm
if [[ ${VMM_KVM_CHECK_TEST:-} == 1 ]]; then
	cpuinfo=${VMM_KVM_CPUINFO:-$cpuinfo}
	modules=${VMM_KVM_MODULES:-$modules}
	sysmodule=${VMM_KVM_SYSMODULE:-$sysmodule}
	dev=${VMM_KVM_DEV:-$dev}
fi

# the first "flags" line's words, padded so that " vmx " matches a whole word
flags=$(grep -m1 '^flags[[:space:]]*:' "$cpuinfo" 2>/dev/null | cut -d: -f2-)
flags=" ${flags//$'\t'/ } "
loaded() { # module name: in /proc/modules or /sys/module
	grep -q "^$1 " "$modules" 2>/dev/null || [[ -d $sysmodule/$1 ]]
}

hw=
if [[ $flags == *' vmx '* ]]; then
	hw=VT-x
elif [[ $flags == *' svm '* ]]; then
	hw=SVM
elif loaded kvm_intel; then
	hw="VT-x (kvm_intel)"
elif loaded kvm_amd; then
	hw="SVM (kvm_amd)"
fi

if [[ ! -e $dev ]]; then
	echo "no $dev here${hw:+ (the CPU has $hw, but KVM is not loaded: modprobe kvm_intel or kvm_amd)}"
	exit 1
fi
if [[ ! -c $dev ]]; then
	echo "$dev here is not a character device"
	exit 1
fi
# The node can exist without working (module refused, no access): open it.
if ! err=$({ exec 9<>"$dev"; } 2>&1); then
	err=${err##*: }
	echo "$dev here does not open read-write (${err:-open failed})${hw:+; the CPU has $hw}"
	exit 1
fi
if [[ -z $hw ]]; then
	if loaded kvm_pvm; then
		echo "$dev here is kvm_pvm (no VT-x/SVM): it cannot run the guest kernel"
	else
		echo "$dev opens but the CPU has no VT-x/SVM (no vmx/svm flag, no kvm_intel/kvm_amd): it cannot run the guest kernel"
	fi
	exit 1
fi
echo "$dev here has $hw"
exit 0
