#!/usr/bin/env bash
# vmm-oci's command line without KVM (oci/main.c): what the engines rely on for missing
# containers, the error lines and exit status of bad bundles, and that a failed create leaves
# nothing in --root. The booted paths are in tests/integration/oci-tests.sh. Prints TAP.
# Usage: test_oci.sh VMM-OCI
set -u
oci=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
	n=$((n + 1)) failed=$((failed + 1))
	echo "not ok $n - $1"
	for f in "$tmp/out" "$tmp/err"; do
		[ -s "$f" ] && tail -n 10 "$f" | sed "s|^|# $(basename "$f"): |"
	done
}
check() {
	local name=$1
	shift
	if "$@"; then ok "$name"; else not_ok "$name (exit $rc)"; fi
}
root=$tmp/root
run() { timeout -k 5 30 "$oci" --root "$root" "$@" </dev/null >"$tmp/out" 2>"$tmp/err"; rc=$?; }
empty_root() { [ ! -e "$root" ] || [ -z "$(ls -A "$root")" ]; }
mkdir -p "$tmp/rootfs" "$tmp/b"
good='{"ociVersion":"1.0.2","root":{"path":"'$tmp/rootfs'"},"process":{"args":["/bin/true"]}}'

run --version
check "--version names vmm-oci and the spec version" \
	eval '[ $rc -eq 0 ] && grep -q "^vmm-oci version [0-9]" "$tmp/out" && grep -q "^spec: 1\." "$tmp/out"'
run features
check "features prints a JSON object with ociVersionMax and the hooks" \
	eval '[ $rc -eq 0 ] && python3 -c "import json,sys; f=json.load(open(sys.argv[1])); assert f[\"ociVersionMax\"] and \"prestart\" in f[\"hooks\"]" "$tmp/out"'

run state nosuch
check "state of a missing container: exit 1, 'does not exist' (podman's test for gone)" \
	eval '[ $rc -eq 1 ] && grep -q "^vmm-oci: container nosuch does not exist$" "$tmp/err"'
run kill nosuch 9
check "kill of a missing container: exit 1, 'does not exist'" \
	eval '[ $rc -eq 1 ] && grep -q "container nosuch does not exist" "$tmp/err"'
run delete nosuch
rc1=$rc
env -i XDG_RUNTIME_DIR= "$oci" --root "$root" delete --force nosuch </dev/null >"$tmp/out" 2>"$tmp/err"
rc=$?
check "delete --force of a missing container exits 0 with no PATH in the environment; without --force 1" \
	eval '[ $rc -eq 0 ] && [ $rc1 -eq 1 ] && [ ! -s "$tmp/err" ]'
run kill nosuch SIGNOPE
check "kill with a signal that is no signal names it" \
	eval '[ $rc -eq 1 ] && grep -q "kill: .SIGNOPE. is not a signal" "$tmp/err"'

run create --bundle "$tmp/b" c1
check "create without config.json: one line naming the file, exit 1, nothing in --root" \
	eval '[ $rc -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "$tmp/b/config.json: no such file" "$tmp/err" && empty_root'
echo '{"root": ' >"$tmp/b/config.json"
run --log="$tmp/log.json" --log-format=json create --bundle="$tmp/b" c1
check "create with config.json not JSON (--opt=val forms): one JSON line in --log, exit 1, nothing in --root" \
	eval '[ $rc -eq 1 ] && [ "$(wc -l <"$tmp/log.json")" -eq 1 ] && python3 -c "import json,sys; l=json.loads(open(sys.argv[1]).read()); assert l[\"level\"]==\"error\" and \"not valid JSON\" in l[\"msg\"]" "$tmp/log.json" && empty_root'
echo '{"root":{"path":"'$tmp/rootfs'"},"process":{"args":"/bin/true"}}' >"$tmp/b/config.json"
run create -b "$tmp/b" c1
check "create with a wrong type names the key: process.args" \
	eval '[ $rc -eq 1 ] && grep -q "config.json: process.args: expected an array, got a string" "$tmp/err" && empty_root'
echo '{"root":{"path":"'$tmp/none'"},"process":{"args":["/bin/true"]}}' >"$tmp/b/config.json"
run create -b "$tmp/b" c1
check "create with a rootfs that does not exist names root.path" \
	eval '[ $rc -eq 1 ] && grep -q "config.json: root.path: $tmp/none: No such file or directory" "$tmp/err" && empty_root'
echo "$good" >"$tmp/b/config.json"
run create -b "$tmp/b" ../escape
check "a container id with a slash is refused" \
	eval '[ $rc -eq 1 ] && grep -q "container id .../escape.: only letters" "$tmp/err" && empty_root'
VMM_OCI_VMM=/bin/false run create -b "$tmp/b" --pid-file "$tmp/pid" c1
check "vmm failing to create the VM: exit 1, the line says so, its records are removed, no pid file" \
	eval '[ $rc -eq 1 ] && grep -q "vmm could not create the VM (exit status 1)" "$tmp/err" && empty_root && [ ! -e "$tmp/pid" ]'
mkdir -p "$root/c2"
run create -b "$tmp/b" c2
check "create of an id that exists is refused and leaves it be" \
	eval '[ $rc -eq 1 ] && grep -q "container c2 already exists" "$tmp/err" && [ -d "$root/c2" ]'
rmdir "$root/c2"
run frobnicate c1
check "an unknown command: exit 1, says so" \
	eval '[ $rc -eq 1 ] && grep -q "unknown command .frobnicate." "$tmp/err"'
run --no-such-flag state c1
check "an unknown global option: exit 1, names it" \
	eval '[ $rc -eq 1 ] && grep -q "unknown global option .--no-such-flag." "$tmp/err"'

echo "1..$n"
[ "$failed" -eq 0 ]
