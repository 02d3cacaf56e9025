# The shell tests' TAP, sourced by them (tests/cli, tests/rootfs).
#   check NAME CONDITION...  "ok N - NAME" when CONDITION succeeds, else "not ok N - NAME" and,
#                            as TAP comments, each non-empty file that TAP_SHOW names (a
#                            space-separated list, read at each failure)
#   tap_end                  the plan; status 0 when every check passed
n=0 failed=0
check() {
	local name=$1 f
	shift
	n=$((n + 1))
	if "$@"; then
		echo "ok $n - $name"
	else
		failed=$((failed + 1))
		echo "not ok $n - $name"
		for f in ${TAP_SHOW:-}; do
			[ -s "$f" ] && sed "s|^|# $(basename "$f"): |" "$f"
		done
	fi
	return 0
}
tap_end() {
	echo "1..$n"
	[ "$failed" -eq 0 ]
}
