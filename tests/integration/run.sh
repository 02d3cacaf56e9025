#!/usr/bin/env bash
# Integration suite entry point (meson test --suite integration). Builds or finds the cached
# guest kernel, then runs boot-tests.sh under real KVM: directly where /dev/kvm works, otherwise
# inside the nested QEMU/TCG guest (tests/nested/with-kvm.sh), one boot of it per group of parts
# (boot-tests.sh lists them), so that an outer guest that breaks costs one group's time, not the
# suite's. Prints TAP, numbered across the groups. Usage: run.sh VMM INITRAMFS KVM_PROBE
set -uo pipefail
shopt -s extglob
vmm=$1 initramfs=$2 probe=$3
src=${VMM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${VMM_BUILD_DIR:-$(dirname "$vmm")}

if ! kdir=$("$src/kernel-config/build.sh" | tail -n1) || [ ! -f "$kdir/vmlinux" ]; then
	echo "1..1"
	echo "not ok 1 - guest kernel build (kernel-config/build.sh failed, see the log above)"
	exit 1
fi
echo "# guest kernel: $kdir"
echo "# kvm-check: $("$src/tests/nested/kvm-check.sh") (VMM_NEST=${VMM_NEST:-auto})"

# The container tests' root file systems, built (or found in ~/.cache/vmm/rootfs/) here on the
# host, where debootstrap has the network; a build that fails leaves its tests failing, not
# skipped.
if VMM_TEST_BUSYBOX_EROFS=$("$src/rootfs/busybox-rootfs.sh" | tail -n1) &&
	VMM_TEST_BUSYBOX_EXT4=$("$src/rootfs/busybox-rootfs.sh" --format ext4 | tail -n1); then
	export VMM_TEST_BUSYBOX_EROFS VMM_TEST_BUSYBOX_EXT4
	echo "# busybox rootfs: $VMM_TEST_BUSYBOX_EROFS (and .ext4)"
fi
if VMM_TEST_DEBIAN_IMG=$("$src/rootfs/debian-rootfs.sh" | tail -n1); then
	export VMM_TEST_DEBIAN_IMG
	echo "# Debian rootfs: $VMM_TEST_DEBIAN_IMG"
fi

# Each group runs once. The nest alone (exit 125, with NEST_FAIL_FILE saying retry=1: L1 stalled
# or broke, never a test result, nor a timeout unless the try passed units) earns more tries,
# since its TCG outer guest can stall or crash on an overloaded host. So does a group whose tests
# failed while the nest showed trouble: L1's kernel reported some (NEST_TROUBLE_FILE: an oops or
# a stall L1 lived through, which can hang or reset a test's VM), or a test's VM whose command
# never sleeps stopped running with vmm owing it nothing (a "# nest-trouble:" line from
# boot-tests.sh's watched). A try does not start from scratch: the units (parts, or sections of
# a part: boot-tests.sh) that an earlier try ended with every test passed keep their TAP and are
# not run again (VMM_TEST_SKIP), so that a long group whose nest dies often still gets through. A
# group gets up to three tries that keep no new unit, six in all. The rest of a try's TAP counts
# only if it is the group's last; a failed try is summarised. The source folder is shared too:
# the nest hides the host's /tmp, where a clone may live.
# VMM_TEST_ONLY (a list of parts) runs those parts in one group.
export NEST_TIMEOUT=${NEST_TIMEOUT:-1200}
# the virtio-net test makes a TAP; vmm-oci a TAP, a veth pair and tc redirects; podman's CNI
# network a bridge and iptables (nft) NAT rules, its cache an overlay on /var/lib
export NEST_MODULES="${NEST_MODULES:-} tun veth sch_ingress cls_u32 act_mirred bridge br_netfilter
	crc32c_generic nf_tables nft_compat nft_chain_nat nf_nat nf_conntrack xt_conntrack
	xt_MASQUERADE xt_addrtype xt_comment xt_multiport xt_mark xt_nat xt_tcpudp overlay"
if [ -n "${VMM_TEST_ONLY:-}" ]; then
	groups=("$VMM_TEST_ONLY")
else
	groups=("basic device sandbox" "container" "lifecycle jail" "fs" "volume oci" "engine" "containerd")
fi
log=$(mktemp)
trap 'rm -f "$log" "$log.err" "$log.trouble" "$log.fail" "$log.kept" "$log.skip"' EXIT
# keep_units [--count]: appends the TAP of each unit in $log that ended with no test failed to
# $log.kept and its name to $log.skip (with --count, only counts them); prints how many
keep_units() {
	awk -v kept="$log.kept" -v skip="$log.skip" -v count="${1:-}" '
		/^# unit: / { cur = substr($0, 9); buf = ""; bad = 0 }
		/^# unit split: / { cur = "" }
		cur != "" { buf = buf $0 "\n" }
		/^not ok / { bad = 1 }
		/^# unit done: / {
			if (cur != "" && substr($0, 14) == cur && !bad) {
				if (count == "") {
					printf "%s", buf >>kept
					print cur >>skip
				}
				k++
			}
			cur = ""
		}
		END { print k + 0 }' "$log"
}
n=0 failed=0 rc=0
for g in "${groups[@]}"; do
	: >"$log.kept"
	: >"$log.skip"
	try=0 barren=0
	while :; do
		try=$((try + 1))
		rm -f "$log.trouble" "$log.fail"
		try_start=$SECONDS
		NEST_TROUBLE_FILE=$log.trouble NEST_FAIL_FILE=$log.fail VMM_TEST_ONLY=$g \
			VMM_TEST_SKIP=$(tr '\n' ' ' <"$log.skip") "$src/tests/nested/with-kvm.sh" --rw "$src" --rw "$build" -- \
			"$src/tests/integration/boot-tests.sh" "$vmm" "$initramfs" "$kdir" "$probe" >"$log" 2>"$log.err"
		grc=$?
		finished=false
		grep -q '^# [0-9]* passed, [0-9]* failed' "$log" && finished=true
		new=$(keep_units --count) # the units this try passed
		if $finished; then
			# Finished: run again only when a test failed while the nest showed trouble
			# (L1's kernel reported some, or a busy test VM stopped: the failure may be it).
			grep -q '^# [0-9]* passed, 0 failed' "$log" && break
			[ -s "$log.trouble" ] || grep -q '^# nest-trouble:' "$log" || break
			# no time for another try before CI's deadline (nest.sh keeps to it too)
			if [ -n "${VMM_TEST_DEADLINE:-}" ] &&
				(($(date +%s) + SECONDS - try_start > VMM_TEST_DEADLINE)); then
				echo "# group \"$g\", try $try: $(grep -c '^not ok' "$log") failed while the nest showed trouble, but VMM_TEST_DEADLINE leaves too little time to run it again"
				break
			fi
			echo "# group \"$g\", try $try: $(grep -c '^not ok' "$log") failed while the nest showed trouble, so they may be the nest's; what it showed:"
			{ cat "$log.trouble" 2>/dev/null; grep '^# nest-trouble:' "$log"; } | sed 's/^/#   /'
			grep '^not ok' "$log" | sed 's/^/#   (was) /'
		else
			[ "$grc" -ne 125 ] && break
			# a nest that timed out (the group's own hang, maybe) or whose init failed
			# would only do so again: 1200 s more each time. Unless the try passed units:
			# then the group is longer than the nest's timeout, and the rest is run.
			if [ -s "$log.fail" ] && ! grep -q '^retry=1 ' "$log.fail" && [ "$new" -eq 0 ]; then
				break
			fi
			echo "# group \"$g\", try $try: the nested harness failed (exit 125) before its tests finished; its last words:"
			tail -n 8 "$log.err" | sed 's/^/#   /'
		fi
		# another try, with the units this one passed kept, unless it has had its share
		[ "$new" -gt 0 ] || barren=$((barren + 1))
		if ((barren >= 3 || try >= 6)); then
			echo "# group \"$g\": no more tries ($try, of which $barren kept no new unit)"
			break
		fi
		keep_units >/dev/null
		echo "# running the group again$([ -s "$log.skip" ] && printf ', without the units that passed: %s' "$(tr '\n' ' ' <"$log.skip")")"
	done
	cat "$log.err" >&2
	# renumber the group's TAP into the suite's (the kept units', then the last try's); its plan
	# and total are the suite's to give
	while IFS= read -r line; do
		case $line in
		"ok "[0-9]*)
			n=$((n + 1))
			echo "ok $n ${line#ok +([0-9]) }"
			;;
		"not ok "[0-9]*)
			n=$((n + 1)) failed=$((failed + 1))
			echo "not ok $n ${line#not ok +([0-9]) }"
			;;
		[0-9]*..[0-9]* | "# "[0-9]*" passed, "*) ;;
		*) echo "$line" ;;
		esac
	done < <(cat "$log.kept" "$log")
	if ! $finished; then
		n=$((n + 1)) failed=$((failed + 1))
		echo "not ok $n - group \"$g\": ended before its tests finished (exit $grc, tries $try): the lines above show how far it got"
		tail -n 12 "$log.err" | sed 's/^/#   /'
	fi
	[ "$grc" -eq 0 ] || rc=1
done
echo "1..$n"
echo "# $((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ] && exit "$rc"
exit 1
