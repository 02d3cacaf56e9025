#!/usr/bin/env bash
# tests/nested/kvm-check.sh (can this /dev/kvm run the guest?) and with-kvm.sh's choice, on fake
# inputs: cpuinfo with and without vmx/svm, module lists with kvm_pvm or kvm_intel, a missing
# node and one that does not open. No KVM needed. Prints TAP.
# Usage: test_kvm_check.sh SOURCE_DIR
set -u
src=$1
check=$src/tests/nested/kvm-check.sh with_kvm=$src/tests/nested/with-kvm.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
	n=$((n + 1)) failed=$((failed + 1))
	echo "not ok $n - $1"
	sed 's/^/# out: /' "$tmp/out"
}

# Fakes. A node that opens read-write: a character device that always opens (/dev/null's
# numbers). A node that does not open: a character device with no driver behind it (ENXIO or
# ENODEV); as a non-root user the test makes it unopenable by mode instead.
printf 'processor\t: 0\nflags\t\t: fpu vme sse2 vmx ssse3\n' >"$tmp/cpu-vmx"
printf 'processor\t: 0\nflags\t\t: fpu sse2 svm lahf_lm\n' >"$tmp/cpu-svm"
printf 'processor\t: 0\nflags\t\t: fpu sse2 vmxnet lahf_lm hypervisor\n' >"$tmp/cpu-none"
printf 'kvm_pvm 45056 0 - Live 0x0\nkvm 1114112 1 kvm_pvm, Live 0x0\n' >"$tmp/mod-pvm"
printf 'kvm_intel 380928 0 - Live 0x0\nkvm 1114112 1 kvm_intel, Live 0x0\n' >"$tmp/mod-intel"
: >"$tmp/mod-none"
mkdir -p "$tmp/sys-empty" "$tmp/sys-amd/kvm_amd"
node_ok=$tmp/kvm-ok node_bad=$tmp/kvm-bad
if ! mknod "$node_ok" c 1 3 2>/dev/null; then
	node_ok=/dev/null
fi
if ! mknod "$node_bad" c 10 254 2>/dev/null || { exec 9<>"$node_bad"; } 2>/dev/null; then
	rm -f "$node_bad"
	mknod "$node_bad" c 1 3 2>/dev/null || cp -a /dev/null "$node_bad" 2>/dev/null
	chmod 000 "$node_bad" 2>/dev/null
fi
exec 9>&-

# run CPUINFO MODULES SYSMODULE NODE [COMMAND...]: kvm-check.sh (or COMMAND) with those inputs
run() {
	local c=$1 m=$2 s=$3 d=$4
	shift 4
	(($#)) || set -- "$check"
	VMM_KVM_CHECK_TEST=1 VMM_KVM_CPUINFO=$c VMM_KVM_MODULES=$m VMM_KVM_SYSMODULE=$s \
		VMM_KVM_DEV=$d "$@" >"$tmp/out" 2>&1
	rc=$?
}
# case NAME WANT_RC PATTERN: the last run exited WANT_RC with one line matching PATTERN
case_() {
	if [ "$rc" -eq "$2" ] && [ "$(wc -l <"$tmp/out")" -eq 1 ] && grep -q -- "$3" "$tmp/out"; then
		ok "$1"
	else
		not_ok "$1 (exit $rc, want $2 and one line matching '$3')"
	fi
}

echo "1..13"
run "$tmp/cpu-vmx" "$tmp/mod-none" "$tmp/sys-empty" "$node_ok"
case_ "vmx flag and a node that opens: usable (VT-x)" 0 "has VT-x$"
run "$tmp/cpu-svm" "$tmp/mod-none" "$tmp/sys-empty" "$node_ok"
case_ "svm flag and a node that opens: usable (SVM)" 0 "has SVM$"
run "$tmp/cpu-none" "$tmp/mod-pvm" "$tmp/sys-empty" "$node_ok"
case_ "no vmx/svm, kvm_pvm loaded, the node opens: not usable, and says kvm_pvm" 1 \
	"is kvm_pvm (no VT-x/SVM)"
run "$tmp/cpu-none" "$tmp/mod-none" "$tmp/sys-empty" "$node_ok"
case_ "no vmx/svm and no hardware module: not usable" 1 "the CPU has no VT-x/SVM"
run "$tmp/cpu-none" "$tmp/mod-intel" "$tmp/sys-empty" "$node_ok"
case_ "no flag but kvm_intel in /proc/modules: usable" 0 "has VT-x (kvm_intel)"
run "$tmp/cpu-none" "$tmp/mod-none" "$tmp/sys-amd" "$node_ok"
case_ "no flag but kvm_amd in /sys/module: usable" 0 "has SVM (kvm_amd)"
run "$tmp/cpu-vmx" "$tmp/mod-none" "$tmp/sys-empty" "$tmp/missing"
case_ "vmx but no node: not usable, says to load the module" 1 "no $tmp/missing here.*modprobe"
run "$tmp/cpu-vmx" "$tmp/mod-none" "$tmp/sys-empty" "$node_bad"
case_ "vmx and a node that does not open: not usable, gives the error" 1 \
	"does not open read-write ([A-Z]"
run "$tmp/cpu-vmx" "$tmp/mod-none" "$tmp/sys-empty" "$tmp/cpu-vmx"
case_ "a regular file as the node: not usable" 1 "is not a character device"

# Outside test mode the variables are ignored: the real /proc/cpuinfo decides, whatever they say.
VMM_KVM_CPUINFO=$tmp/cpu-vmx VMM_KVM_DEV=$tmp/missing "$check" >"$tmp/out" 2>&1
rc=$?
VMM_KVM_CHECK_TEST=0 "$check" >"$tmp/real" 2>&1
real_rc=$?
if [ "$rc" -eq "$real_rc" ] && cmp -s "$tmp/out" "$tmp/real" && ! grep -q "$tmp" "$tmp/out"; then
	ok "the fake inputs are read in test mode only"
else
	not_ok "the fake inputs are read in test mode only"
fi

# with-kvm.sh: usable -> the command runs here, with the line; VMM_NEST=0 on a PVM node runs it
# here too, saying so; VMM_NEST=0 with no node is an error (125) before anything runs.
# check NAME CONDITION: ok when CONDITION (evaluated) holds for the last run
check() { if eval "$2"; then ok "$1"; else not_ok "$1 (exit $rc)"; fi; }
run "$tmp/cpu-svm" "$tmp/mod-none" "$tmp/sys-empty" "$node_ok" "$with_kvm" -- echo RAN-HERE
check "with-kvm.sh runs the command directly on a usable node and says why" \
	'[ $rc -eq 0 ] && grep -q "^RAN-HERE$" "$tmp/out" && grep -q "^with-kvm: $node_ok here has SVM: running directly" "$tmp/out"'
VMM_NEST=0 run "$tmp/cpu-none" "$tmp/mod-pvm" "$tmp/sys-empty" "$node_ok" "$with_kvm" -- echo RAN-HERE
check "with-kvm.sh: VMM_NEST=0 runs directly on a kvm_pvm node, saying so" \
	'[ $rc -eq 0 ] && grep -q "^RAN-HERE$" "$tmp/out" && grep -q "^with-kvm: VMM_NEST=0: running directly although .*kvm_pvm" "$tmp/out"'
VMM_NEST=0 run "$tmp/cpu-vmx" "$tmp/mod-none" "$tmp/sys-empty" "$tmp/missing" "$with_kvm" -- echo RAN-HERE
check "with-kvm.sh: VMM_NEST=0 with no node fails with 125 and one line" \
	'[ $rc -eq 125 ] && ! grep -q RAN-HERE "$tmp/out" && grep -q "^with-kvm: VMM_NEST=0 but no " "$tmp/out"'
exit $((failed > 0))
