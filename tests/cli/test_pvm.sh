#!/usr/bin/env bash
# On a kvm_pvm host (/dev/kvm opens but the CPU has no VT-x/SVM) the project's guest kernel
# stops with a KVM internal error: vmm, run directly (no nest), must end with status 125, its one
# warning line, and exactly one error line that names the suberror, the guest's rip, the bytes
# there and kvm_pvm. Skipped on any other host and where no guest kernel is built. Prints TAP.
# Usage: test_pvm.sh VMM INITRAMFS SOURCE_DIR
set -u
vmm=$1 initrd=$2 src=$3
name="kvm_pvm: the guest kernel stops with one internal-error line and status 125"
echo "1..1"
skip() {
	echo "ok 1 - $name # SKIP $*"
	exit 0
}
[ -e /sys/module/kvm_pvm ] || skip "not a kvm_pvm host (no /sys/module/kvm_pvm)"
grep -Eqw 'vmx|svm' /proc/cpuinfo 2>/dev/null && skip "the CPU has VT-x/SVM"
{ [ -r /dev/kvm ] && [ -w /dev/kvm ]; } || skip "no read/write access to /dev/kvm"
[ -r "$initrd" ] || skip "no initramfs at $initrd"
kdir=$("$src/kernel-config/build.sh" --print-dir 2>/dev/null) ||
	skip "kernel-config/build.sh --print-dir failed"
[ -f "$kdir/vmlinux" ] ||
	skip "no guest kernel built ($kdir/vmlinux: kernel-config/build.sh builds it)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
timeout 120 "$vmm" --kernel "$kdir/vmlinux" --initrd "$initrd" --cmdline '-- /bin/true' \
	</dev/null >"$tmp/out" 2>"$tmp/err"
rc=$?
lines=$(wc -l <"$tmp/err")
warn='^vmm: warning: /dev/kvm works but this CPU has no VT-x/SVM \(KVM here is kvm_pvm'
err='^vmm: vcpu [0-9]+: KVM internal error \(suberror [0-9]+, [a-z_]+\)'
# rip, its gpa and at least one instruction byte, then the kvm_pvm hint
detail=' at rip 0x[0-9a-f]+ \(gpa 0x[0-9a-f]+\):( [0-9a-f]{2})+: '
hint='.*kvm_pvm.*tests/nested/with-kvm\.sh'
warnings=$(grep -Ec "$warn" "$tmp/err")
errors=$(grep -Ec "$err" "$tmp/err")
full=$(grep -Ec "$err$detail$hint" "$tmp/err")
if [ "$rc" -eq 125 ] && [ "$lines" -eq 2 ] && [ "$warnings" -eq 1 ] && [ "$errors" -eq 1 ] &&
	[ "$full" -eq 1 ]; then
	echo "ok 1 - $name"
	sed 's/^/# /' "$tmp/err"
else
	echo "not ok 1 - $name (exit $rc, $lines stderr lines, $warnings warning, $errors error" \
		"lines, $full with rip, bytes and the kvm_pvm hint)"
	sed 's/^/# /' "$tmp/err"
	tail -n 5 "$tmp/out" | sed 's/^/# console: /'
	exit 1
fi
