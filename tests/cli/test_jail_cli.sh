#!/usr/bin/env bash
# Bad input on vmm-jail's command line: each case must give exactly one "vmm-jail: ..." line on
# stderr naming the problem, exit status 125, and leave nothing created (the chroot base stays
# empty, no cgroup). Needs no root: arguments are checked before the root check. Prints TAP.
# Usage: test_jail_cli.sh VMM_JAIL VMM
set -u
jail=$1 vmm=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 failed=0
base=$tmp/base
mkdir "$base" "$base/taken" "$tmp/dir"
echo data >"$tmp/file"
echo x >"$tmp/not-exec"
mkfifo "$tmp/fifo"

# case NAME EXPECTED_STDERR_REGEX ARGS...
case_() {
	local name=$1 want=$2
	shift 2
	n=$((n + 1))
	"$jail" "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
	local rc=$?
	local lines
	lines=$(wc -l <"$tmp/err")
	if [ "$rc" -eq 125 ] && [ "$lines" -eq 1 ] && grep -Eq -- "^vmm-jail: .*$want" "$tmp/err" &&
		[ "$(ls -A "$base")" = "taken" ]; then
		echo "ok $n - $name"
	else
		failed=$((failed + 1))
		echo "not ok $n - $name (exit $rc, $lines stderr lines, base holds: $(ls -A "$base" | tr '\n' ' '))"
		sed 's/^/# /' "$tmp/err"
	fi
}

ok=(--id j1 --uid 4242 --gid 4242 --chroot-base "$base" --exec-file "$vmm")
echo "1..34"
case_ "no --id" "no --id given" --uid 1 --gid 1 --chroot-base "$base" -- --help
case_ "--id with a slash" "--id: '../x' has the character '.'" --id ../x --uid 1 --gid 1
case_ "--id empty" "--id: '' must have 1 to 64" --id "" --uid 1 --gid 1
case_ "--id too long" "must have 1 to 64 characters" --id "$(head -c 65 /dev/zero | tr '\0' a)" --uid 1 --gid 1
case_ "no --uid" "no --uid given" --id j1 --gid 1
case_ "no --gid" "no --gid given" --id j1 --uid 1
case_ "--uid 0" "--uid: 0 is root" --id j1 --uid 0 --gid 1
case_ "--gid 0" "--gid: 0 is root" --id j1 --uid 1 --gid 0
case_ "--uid not a number" "--uid: 'bob' is not a number" --id j1 --uid bob --gid 1
case_ "--uid out of range" "--uid: '4294967295' is out of range" --id j1 --uid 4294967295 --gid 1
case_ "--chroot-base relative" "--chroot-base: 'rel' must be an absolute path" "${ok[@]}" --chroot-base rel
case_ "--chroot-base is a file" "--chroot-base: '$tmp/file' is not a directory" "${ok[@]}" --chroot-base "$tmp/file"
case_ "--chroot-base parent missing" "--chroot-base: cannot use '$tmp/no/base'" "${ok[@]}" --chroot-base "$tmp/no/base"
case_ "jail directory exists" "the jail directory $base/taken exists" "${ok[@]}" --id taken
case_ "--exec-file missing" "--exec-file: cannot use '$tmp/none'" "${ok[@]}" --exec-file "$tmp/none"
case_ "--exec-file not executable" "--exec-file: '$tmp/not-exec' is not an executable file" "${ok[@]}" --exec-file "$tmp/not-exec"
case_ "--file host missing" "--file $tmp/none: cannot use '$tmp/none'" "${ok[@]}" --file "$tmp/none"
case_ "--file a FIFO" "is not a regular file, block device or directory" "${ok[@]}" --file "$tmp/fifo"
case_ "--file relative jail path" "the jail path 'rel' must be absolute" "${ok[@]}" --file "$tmp/file:rel"
case_ "--file jail path with .." "has an empty, '.' or '..' component" "${ok[@]}" --file "$tmp/file:/a/../etc"
case_ "--file under /dev" "is under /dev" "${ok[@]}" --file "$tmp/file:/dev/sda"
case_ "--file twice at one place" "clashes with '/data'" "${ok[@]}" --file "$tmp/file:/data" --file "$tmp/dir:/data/x"
case_ "--file where the program goes" "is where the program goes" "${ok[@]}" --file "$tmp/file:/vmm"
case_ "--netns and --new-netns" "--netns and --new-netns exclude each other" "${ok[@]}" --netns /proc/self/ns/net --new-netns
case_ "--netns missing" "--netns: cannot use '$tmp/none'" "${ok[@]}" --netns "$tmp/none"
case_ "--cgroup without =" "--cgroup memory: give KEY=VALUE" "${ok[@]}" --cgroup memory
case_ "--cgroup unknown controller" "'cgroup.procs' is not a file of the memory, cpu" "${ok[@]}" --cgroup cgroup.procs=1
case_ "--cgroup key twice" "pids.max given twice" "${ok[@]}" --cgroup pids.max=5 --cgroup pids.max=6
case_ "--rlimit unknown" "--rlimit bogus=1: unknown limit 'bogus'" "${ok[@]}" --rlimit bogus=1
case_ "--rlimit soft above hard" "the soft limit is above the hard limit" "${ok[@]}" --rlimit nofile=200:100
case_ "--rlimit not a number" "the values must be numbers or 'unlimited'" "${ok[@]}" --rlimit nproc=lots
case_ "option without its value" "option '--exec-file' needs a value" "${ok[@]}" --exec-file
case_ "unknown option" "unknown option '--frobnicate'" "${ok[@]}" --frobnicate
case_ "program arguments without --" "unexpected argument 'stray': put the program's arguments after --" "${ok[@]}" stray
echo "# $((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
