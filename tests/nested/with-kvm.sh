#!/usr/bin/env bash
# with-kvm.sh: the one entry point for anything that needs KVM.
#
#   tests/nested/with-kvm.sh [--rw DIR]... [--quiet] -- COMMAND [ARGS...]
#
# Runs COMMAND directly when this machine has a usable /dev/kvm, and otherwise
# inside the nested harness (nest.sh: a QEMU/TCG guest whose CPU has AMD SVM,
# so KVM works inside it). --rw DIR names a directory COMMAND writes to (the
# build folder): the nest shares it read-write, a direct run needs nothing.
# VMM_NEST=1 forces the nest, VMM_NEST=0 forbids it. The exit status is
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
	--quiet | -q)
		nest_args+=(--quiet)
		shift
		;;
	--)
		shift
		break
		;;
	*)
		echo "with-kvm: unexpected argument '$1' (usage: with-kvm.sh [--rw DIR]... [--quiet] -- COMMAND...)" >&2
		exit 125
		;;
	esac
done
(($#)) || { echo "with-kvm: no command given (usage: with-kvm.sh [--rw DIR]... -- COMMAND...)" >&2; exit 125; }

have_kvm() {
	[[ -c /dev/kvm && -r /dev/kvm && -w /dev/kvm ]] || return 1
	# The node can exist without working (no VT-x/SVM, module refused): try to open it.
	{ exec 9<>/dev/kvm; } 2>/dev/null || return 1
	exec 9>&-
}

case ${VMM_NEST:-auto} in
1) use_nest=1 ;;
0)
	have_kvm || { echo "with-kvm: VMM_NEST=0 but /dev/kvm cannot be opened here" >&2; exit 125; }
	use_nest=0
	;;
*) if have_kvm; then use_nest=0; else use_nest=1; fi ;;
esac

if ((use_nest)); then
	echo "with-kvm: no usable /dev/kvm here: running inside the nested KVM harness (QEMU TCG + SVM; slow, not hardware timings)" >&2
	exec "$here/nest.sh" "${nest_args[@]}" -- "$@"
fi
exec "$@"
