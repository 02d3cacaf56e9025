#!/usr/bin/env bash
# The jail itself, without KVM: vmm-jail runs the static jail-probe in vmm's place, and the probe
# reports what it sees from inside (tests/jail/jail-probe.c); this script checks every line, and
# what the host sees before and after. Needs root (namespaces, mounts, mknod); skipped otherwise.
# The cgroup limits are checked where cgroup v2 has the memory and pids controllers (else the
# one-line refusal is). Prints TAP. Usage: test_jail.sh VMM_JAIL JAIL_PROBE
set -u
jail=$1 probe=$2
if [ "$(id -u)" -ne 0 ] || ! unshare --mount --pid --fork true 2>/dev/null; then
	echo "1..0 # SKIP needs root and namespaces (unshare --mount --pid)"
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 failed=0
base=$tmp/base

ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
	n=$((n + 1)) failed=$((failed + 1))
	echo "not ok $n - $1"
	for f in "$tmp/out" "$tmp/err"; do
		[ -s "$f" ] && tail -n 30 "$f" | sed "s|^|# $(basename "$f"): |"
	done
}
expect() { # expect NAME CONDITION...
	local name=$1
	shift
	if "$@"; then ok "$name"; else not_ok "$name (exit $rc)"; fi
}
line() { grep -m1 "^$1: " "$tmp/out" | cut -d' ' -f2-; }
has() { grep -qxF -- "$1" "$tmp/out"; }

echo hello-host >"$tmp/data.txt"
echo mine >"$tmp/owned.txt"
truncate -s 4096 "$tmp/rw.img"
chown 4242 "$tmp/owned.txt" "$tmp/rw.img"

# 1. one full run: what the probe sees inside
exec 7</dev/null # an inherited descriptor that must not reach the jail
FOO=bar "$jail" --id t1 --uid 4242 --gid 4243 --chroot-base "$base" --exec-file "$probe" \
	--file "$tmp/data.txt:/data/in.txt" --file "$tmp/rw.img,rw" --file "$tmp/owned.txt" \
	--rlimit nofile=100:200 -- report 42 "read:/data/in.txt" write:/rw.img write:/owned.txt \
	mknod:/null2 open:/dev/kvm "arg with spaces" >"$tmp/out" 2>"$tmp/err"
rc=$?
exec 7<&-
expect "the program's exit status (42) is vmm-jail's" [ "$rc" -eq 42 ]
expect "it is PID 1 of a new PID namespace" eval '[ "$(line pid)" = 1 ] && [ "$(line ppid)" = 0 ]'
expect "it runs as uid 4242, gid 4243 (real, effective, saved), no supplementary groups" \
	eval '[ "$(line uid)" = "4242 4242 4242" ] && [ "$(line gid)" = "4243 4243 4243" ] && [ "$(line groups)" = 0 ]'
expect "the environment is empty; the arguments arrive as given" \
	eval '[ "$(line env)" = 0 ] && has "args: [jail-probe] [report] [42] [read:/data/in.txt] [write:/rw.img] [write:/owned.txt] [mknod:/null2] [open:/dev/kvm] [arg with spaces]"'
expect "only descriptors 0, 1 and 2 are open (an inherited fd 7 is closed)" eval '[ "$(line fds)" = "0 1 2" ]'
expect "rlimits: nofile as given (100:200), nproc 512 and core 0 by default" \
	eval 'has "rlimit nofile: 100 200" && has "rlimit nproc: 512 512" && has "rlimit core: 0 0"'
expect "no_new_privs is set, no capability is left" \
	eval '[ "$(line nnp)" = 1 ] && [ "$(line capeff)" = 0000000000000000 ] && [ "$(line capprm)" = 0000000000000000 ]'
expect "the hostname is the jail's id (UTS namespace)" eval '[ "$(line hostname)" = t1 ]'
want="/ /data /data/in.txt /dev /dev/kvm /jail-probe /owned.txt /rw.img"
tun=
if [ -c /dev/net/tun ]; then
	want="$want /dev/net /dev/net/tun"
	tun=$(stat -c '%t:%T' /dev/net/tun | { IFS=: read -r ma mi; echo "$((16#$ma)):$((16#$mi))"; })
fi
seen=$(grep '^file: ' "$tmp/out" | cut -d' ' -f2 | sort | tr '\n' ' ')
want=$(tr ' ' '\n' <<<"$want" | sort | tr '\n' ' ')
expect "the jail's whole tree is the given files, the program and /dev (nothing of the host)" \
	[ "$seen" = "$want" ]
expect "/dev/kvm is char 10:232, mode 0600, owned by 4242:4243" has "file: /dev/kvm c 0600 4242:4243 10:232"
if [ -n "$tun" ]; then
	expect "/dev/net/tun is the host's ($tun), mode 0600, owned by 4242:4243" \
		has "file: /dev/net/tun c 0600 4242:4243 $tun"
else
	expect "no /dev/net/tun in the jail when the host has none" eval '! grep -q "^file: /dev/net" "$tmp/out"'
fi
expect "the root belongs to the jailed user (its sockets go there); the rest to root" \
	eval 'has "file: / d 0755 4242:4243" && has "file: /dev d 0755 0:0" && has "file: /jail-probe f 0755 0:0"'
expect "a read-only file reads" has "read /data/in.txt: ok hello-host"
expect "a ,rw file takes a write, which the host sees" \
	eval 'has "write /rw.img: ok" && [ "$(head -c 15 "$tmp/rw.img")" = written-in-jail ]'
expect "a file without ,rw refuses writes even to its owner (read-only bind)" \
	eval 'has "write /owned.txt: error Read-only file system" && [ "$(cat "$tmp/owned.txt")" = mine ]'
expect "mknod is refused" has "mknod /null2: error Operation not permitted"
expect "/dev/kvm opens as far as the driver (no permission error)" \
	eval 'grep -q "^open /dev/kvm: \(ok\|error No such device\)" "$tmp/out"'
expect "no stderr output, and the jail directory is removed at exit" \
	eval '[ ! -s "$tmp/err" ] && [ ! -e "$base/t1" ] && [ -d "$base" ]'

# 2. --new-netns: only a loopback interface
"$jail" --id t2 --uid 4242 --gid 4243 --chroot-base "$base" --exec-file "$probe" --new-netns \
	-- report 0 >"$tmp/out" 2>"$tmp/err"
rc=$?
expect "--new-netns: the program sees only lo" eval '[ $rc -eq 0 ] && [ "$(line netifs)" = lo ]'

# 3. SIGTERM to vmm-jail reaches the program (PID 1 of its namespace), whose status comes back;
# the jail directory is removed after
"$jail" --id t3 --uid 4242 --gid 4243 --chroot-base "$base" --exec-file "$probe" \
	-- wait-term 0 >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 1 300); do grep -q '^ready$' "$tmp/out" 2>/dev/null && break; sleep 0.1; done
kill -TERM "$pid"
wait "$pid"
rc=$?
expect "SIGTERM is forwarded: the program handles it and its 143 comes back" \
	eval '[ $rc -eq 143 ] && has "got SIGTERM" && [ ! -e "$base/t3" ]'

# 4. a failure inside the jail (a dynamic program finds no loader there): one line, 125, cleaned
"$jail" --id t4 --uid 4242 --gid 4243 --chroot-base "$base" --exec-file /bin/true \
	-- >"$tmp/out" 2>"$tmp/err"
rc=$?
expect "a program that cannot run in the jail: one line, 125, the jail directory removed" \
	eval '[ $rc -eq 125 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "^vmm-jail: cannot run /true in the jail" "$tmp/err" && [ ! -e "$base/t4" ]'

# 5. cgroup v2 limits: applied and read back while the program runs, the leaf removed after; or,
# where cgroup v2 lacks the controllers (a v1 or hybrid host), one line and nothing created
# the first cgroup2 mount: its type is the field after the "-" (the optional fields before it
# vary: none for a private mount, "shared:N" or "master:N" otherwise)
cgroot=$(awk '{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") { print $5; exit } next } }' /proc/self/mountinfo)
ctl=$(cat "$cgroot/cgroup.controllers" 2>/dev/null)
if [ -n "$cgroot" ] && grep -qw memory <<<"$ctl" && grep -qw pids <<<"$ctl"; then
	"$jail" --id t5 --uid 4242 --gid 4243 --chroot-base "$base" --exec-file "$probe" \
		--cgroup memory.max=64M --cgroup pids.max=20 -- wait-term 0 >"$tmp/out" 2>"$tmp/err" &
	pid=$!
	for _ in $(seq 1 300); do grep -q '^ready$' "$tmp/out" 2>/dev/null && break; sleep 0.1; done
	cg=$cgroot/vmm/t5
	mem=$(cat "$cg/memory.max" 2>&1) pids=$(cat "$cg/pids.max" 2>&1) procs=$(cat "$cg/cgroup.procs" 2>&1)
	child=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null)
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	echo "# cgroup $cg: memory.max $mem, pids.max $pids, procs $procs (program $child)"
	expect "cgroup v2: memory.max and pids.max read back, the program is in the leaf" \
		eval '[ "$mem" = 67108864 ] && [ "$pids" = 20 ] && [ "$procs" = "${child% }" ]'
	expect "cgroup v2: the leaf is removed at exit" eval '[ $rc -eq 143 ] && [ ! -e "$cg" ]'
else
	"$jail" --id t5 --uid 4242 --gid 4243 --chroot-base "$base" --exec-file "$probe" \
		--cgroup memory.max=64M -- report 0 >"$tmp/out" 2>"$tmp/err"
	rc=$?
	echo "# cgroup v2 here: ${cgroot:-none}, controllers '$ctl': checking the refusal"
	expect "cgroup v2 without the memory controller: one line naming it, 125" \
		eval '[ $rc -eq 125 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "^vmm-jail: --cgroup memory.max: .*memory controller is not available\|no cgroup v2 hierarchy" "$tmp/err"'
	expect "... and nothing created" eval '[ ! -e "$base/t5" ] && [ ! -e "$cgroot/vmm/t5" ]'
fi

echo "1..$n"
echo "# $((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
