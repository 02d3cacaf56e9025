#!/usr/bin/env bash
# tests/integration/run.sh resumes a group whose nest died: the units (parts, sections of a part)
# that a try ended with every test passed keep their TAP and are not run again, the rest are; a
# group gets three tries that keep nothing new, six in all. The nest is a fake (a with-kvm.sh
# that runs boot-tests.sh directly and reports a dead L1 when the command exits 99), the parts are
# fakes that count their runs, so no KVM is needed. A few seconds. Prints TAP.
# Usage: test_resume.sh SOURCE_DIR
set -u
src=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$src/tests/lib/tap.sh"
TAP_SHOW="$tmp/out $tmp/ran"

# A fake source tree: run.sh and boot-tests.sh are the real ones; the kernel build, the rootfs
# builders and the KVM check are fakes, and so is the nest.
f=$tmp/src
mkdir -p "$f/kernel-config" "$f/rootfs" "$f/tests/nested" "$f/tests/integration" "$tmp/k"
touch "$tmp/k/vmlinux"
ln -s "$src/tests/integration/run.sh" "$src/tests/integration/boot-tests.sh" "$f/tests/integration/"
printf '#!/bin/sh\necho %s\n' "$tmp/k" >"$f/kernel-config/build.sh"
printf '#!/bin/sh\nexit 1\n' >"$f/rootfs/busybox-rootfs.sh"
printf '#!/bin/sh\nexit 1\n' >"$f/rootfs/debian-rootfs.sh"
printf '#!/bin/sh\necho fake\n' >"$f/tests/nested/kvm-check.sh"
cat >"$f/tests/nested/with-kvm.sh" <<'EOF'
#!/usr/bin/env bash
# the fake nest: runs the command after --; its exit status 99 is an L1 that died
while [ "$1" != -- ]; do shift; done
shift
"$@"
rc=$?
case $rc in
99) echo "retry=1 L1 died (fake)" >"$NEST_FAIL_FILE" ;;
98) echo "retry=0 timed out (fake)" >"$NEST_FAIL_FILE" ;;
*) exit $rc ;;
esac
echo "nest: $(cut -d' ' -f2- "$NEST_FAIL_FILE")" >&2
exit 125
EOF
# Parts: each test notes its run in $tmp/ran; "die NAME K" ends the run as a dead L1 the first K
# times it is reached (K=always: every time).
cat >"$tmp/lib.sh" <<EOF
ran() { echo "\$1" >>"$tmp/ran"; }
die() {
	local c=\$(grep -cx "die \$1" "$tmp/ran")
	echo "die \$1" >>"$tmp/ran"
	[ "\$2" = always ] || [ "\$c" -lt "\$2" ] && exit \${DIE_STATUS:-99}
}
EOF
cat >"$f/tests/integration/alpha-tests.sh" <<EOF
. "$tmp/lib.sh"
ran alpha
ok "alpha"
EOF
cat >"$f/tests/integration/beta-tests.sh" <<EOF
. "$tmp/lib.sh"
ran beta-setup
b1() { ran b1; ok "b1"; }
b2() { ran b2; ok "b2 first"; die b2 \${BETA_DIES:-1}; ok "b2 second"; }
b3() {
	ran b3
	if \${BETA_FAILS:-false}; then
		not_ok "b3"
	elif [ -n "\${BETA_TROUBLE:-}" ] && [ "\$(grep -cx b3 "$tmp/ran")" = 1 ]; then
		echo "# nest-trouble: fake"
		not_ok "b3"
	else
		ok "b3"
	fi
}
section one b1
section two b2
section three b3
EOF
chmod +x "$f"/kernel-config/build.sh "$f"/rootfs/*.sh "$f"/tests/nested/*.sh
# run [ENV=VALUE...]: run.sh on parts alpha and beta, in one group; sets $rc
run() {
	rm -f "$tmp/ran"
	env VMM_SOURCE_DIR="$f" VMM_BUILD_DIR="$tmp" VMM_TEST_ONLY="${VMM_TEST_ONLY:-alpha beta}" "$@" \
		bash "$f/tests/integration/run.sh" "$tmp/vmm" "$tmp/initramfs" "$tmp/probe" >"$tmp/out" 2>&1
	rc=$?
}
count() { grep -cx "$1" "$tmp/ran"; } # how many times a test or set-up ran
oks() { grep -c "^ok [0-9]* - $1\$" "$tmp/out"; }

run
check "a dead nest in a section: the next try runs only that section and the ones after it" \
	eval '[ $rc -eq 0 ] && [ "$(count alpha)" = 1 ] && [ "$(count b1)" = 1 ] && [ "$(count b2)" = 2 ] && [ "$(count b3)" = 1 ] && [ "$(count beta-setup)" = 2 ]'
check "each test's TAP once, numbered 1..5 across the tries, and the suite's plan" \
	eval '[ "$(oks alpha)" = 1 ] && [ "$(oks b1)" = 1 ] && [ "$(oks "b2 first")" = 1 ] && [ "$(oks "b2 second")" = 1 ] && [ "$(oks b3)" = 1 ] && [ "$(grep -c "^ok " "$tmp/out")" = 5 ] && grep -qx "1..5" "$tmp/out" && grep -qx "ok 5 - b3" "$tmp/out" && grep -qx "# 5 passed, 0 failed" "$tmp/out"'
check "the retry says which units it leaves out" \
	grep -q "^# running the group again, without the units that passed: alpha beta/one" "$tmp/out"

run BETA_DIES=always
check "a section whose nest always dies: three tries that keep nothing new, then the group fails" \
	eval '[ $rc -ne 0 ] && [ "$(count "die b2")" = 4 ] && [ "$(count alpha)" = 1 ] && [ "$(count b3)" = 0 ] && grep -q "^# group \"alpha beta\": no more tries (4, of which 3 kept no new unit)" "$tmp/out" && grep -q "^not ok 4 - group \"alpha beta\": ended before its tests finished (exit 125, tries 4)" "$tmp/out"'
check "the units that passed count once (alpha, b1), and the last try's partial unit's TAP (b2 first)" \
	eval '[ "$(oks alpha)" = 1 ] && [ "$(oks b1)" = 1 ] && [ "$(oks "b2 first")" = 1 ] && grep -qx "# 3 passed, 1 failed" "$tmp/out"'

run DIE_STATUS=98
check "a nest that timed out after units passed: the rest is run (a group longer than the timeout)" \
	eval '[ $rc -eq 0 ] && [ "$(count alpha)" = 1 ] && [ "$(count b2)" = 2 ] && [ "$(count b3)" = 1 ] && grep -qx "# 5 passed, 0 failed" "$tmp/out"'

VMM_TEST_ONLY=beta
run DIE_STATUS=98 BETA_DIES=always
check "a nest that timed out with no unit passed since: no other try" \
	eval '[ $rc -ne 0 ] && [ "$(count "die b2")" = 2 ] && grep -q "^not ok [0-9]* - group \"beta\": ended before its tests finished (exit 125, tries 2)" "$tmp/out"'
VMM_TEST_ONLY="alpha beta"

run BETA_DIES=0 BETA_FAILS=true
check "a failed test where the nest showed no trouble: one try, the failure is the result" \
	eval '[ $rc -ne 0 ] && [ "$(count alpha)" = 1 ] && [ "$(count b3)" = 1 ] && grep -q "^not ok [0-9]* - b3" "$tmp/out" && ! grep -q "running the group again" "$tmp/out"'

run BETA_DIES=0 BETA_TROUBLE=1
check "a failed test while the nest showed trouble: the next try runs only the unit that failed" \
	eval '[ $rc -eq 0 ] && [ "$(count alpha)" = 1 ] && [ "$(count b2)" = 1 ] && [ "$(count b3)" = 2 ] && [ "$(oks b3)" = 1 ] && ! grep -q "^not ok" "$tmp/out" && grep -qx "# 5 passed, 0 failed" "$tmp/out"'

tap_end
