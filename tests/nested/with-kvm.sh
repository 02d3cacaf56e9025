#!/usr/bin/env bash
# with-kvm.sh: the one entry point for anything that needs KVM.
#
#   tests/nested/with-kvm.sh [--rw DIR]... [--tries N] [--quiet] -- COMMAND [ARGS...]
#
# Runs COMMAND directly when this machine's /dev/kvm can run the guest (kvm-check.sh: VT-x or
# SVM, and the node opens read-write), and otherwise inside the nested harness (nest.sh: a QEMU/TCG guest whose CPU has AMD SVM,
# so KVM works inside it). --rw DIR names a directory COMMAND writes to (the
# build folder): the nest shares it read-write, a direct run needs nothing. --tries N lets the
# nest boot up to N times when its outer guest stalls or crashes (nest.sh); a direct run has no
# outer guest and runs once.
# It prints one line saying which, and why. VMM_NEST=1 forces the nest, VMM_NEST=0 forbids it
# (then any /dev/kvm that opens is used, even one without VT-x/SVM). The exit status is
# COMMAND's (125 when the nest itself failed).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

nest_args=()
while (($#)); do
	case $1 in
	--rw)
		(($# >= 2)) || { echo "with-kvm: --rw needs a directory" >&2; exit 125; }
		nest_args+=(--rw "$2")
		shift 2
		;;
	--tries)
		(($# >= 2)) || { echo "with-kvm: --tries needs a number" >&2; exit 125; }
		nest_args+=(--tries "$2")
		shift 2
		;;
	--quiet | -q)
		nest_args+=(--quiet)
		shift
		;;
	--)
		shift
		break
		;;
	*)
		echo "with-kvm: unexpected argument '$1' (usage: with-kvm.sh [--rw DIR]... [--tries N] [--quiet] -- COMMAND...)" >&2
		exit 125
		;;
	esac
done
(($#)) || { echo "with-kvm: no command given (usage: with-kvm.sh [--rw DIR]... -- COMMAND...)" >&2; exit 125; }

# The decision and its one line of reasons: kvm-check.sh (exit 0: this /dev/kvm runs the guest).
usable=1
why=$("$here/kvm-check.sh") || usable=0
nest_line="running in the nested harness (QEMU TCG + SVM; slow, not hardware timings)"
case ${VMM_NEST:-auto} in
1)
	echo "with-kvm: VMM_NEST=1: $nest_line; $why" >&2
	use_nest=1
	;;
0)
	# Forced: run here on any /dev/kvm that opens, even one that cannot run the guest (PVM).
	if ((usable)); then
		echo "with-kvm: VMM_NEST=0: $why: running directly" >&2
	elif [[ $why == *"no VT-x/SVM"* ]]; then
		echo "with-kvm: VMM_NEST=0: running directly although $why" >&2
	else
		echo "with-kvm: VMM_NEST=0 but $why" >&2
		exit 125
	fi
	use_nest=0
	;;
*)
	if ((usable)); then
		echo "with-kvm: $why: running directly on this machine's KVM" >&2
		use_nest=0
	else
		echo "with-kvm: $why: $nest_line" >&2
		use_nest=1
	fi
	;;
esac

if ((use_nest)); then
	exec "$here/nest.sh" "${nest_args[@]}" -- "$@"
fi
exec "$@"
