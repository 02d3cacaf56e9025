#!/usr/bin/env bash
# vmm's host end of the agent protocol (vmm/session.c) against the real agent (guest/agent*.c),
# without KVM: the agent runs in its test mode (Unix sockets instead of vsock, no PID-1 setup),
# and api-front.py stands in for vmm's control API: `vmm exec` sends it the API's exec request,
# as to a container's --api-sock, and is then relayed to the agent's listening socket.
# Prints TAP. Usage: test_exec.sh VMM AGENT_TEST_BINARY
set -u
vmm=$1 agent=$2
tmp=$(mktemp -d)
n=0 failed=0
py=$(command -v python3)
cleanup() {
	[ -n "${hold:-}" ] && kill "$hold" 2>/dev/null
	[ -n "${apid:-}" ] && kill "$apid" 2>/dev/null
	[ -n "${front:-}" ] && kill "$front" 2>/dev/null
	[ -n "${badfront:-}" ] && kill "$badfront" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
	n=$((n + 1)) failed=$((failed + 1))
	echo "not ok $n - $1"
	for f in "$tmp/out" "$tmp/err"; do
		[ -s "$f" ] && tail -n 10 "$f" | sed "s|^|# $(basename "$f"): |"
	done
}
expect() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name (exit $rc)"; fi; }
x() { # x ARGS...: vmm exec with stdin from $IN (default /dev/null)
	timeout -k 5 60 "$vmm" exec --api-sock "$tmp/api" "$@" <"${IN:-/dev/null}" >"$tmp/out" 2>"$tmp/err"
	rc=$?
}

echo "1..13"
# The agent's main connection goes to a socket that accepts it and sends nothing: the tests
# are all exec sessions, as `vmm exec` makes them.
"$py" -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)
c, _ = s.accept(); time.sleep(600)' "$tmp/main" &
hold=$!
for _ in $(seq 1 100); do [ -S "$tmp/main" ] && break; sleep 0.1; done
"$agent" --test "$tmp/main" "$tmp/listen" 2>"$tmp/agent.log" &
apid=$!
for _ in $(seq 1 100); do [ -S "$tmp/listen" ] && break; sleep 0.1; done
"$py" "$(dirname "$0")/api-front.py" "$tmp/api" "$tmp/listen" &
front=$!
for _ in $(seq 1 100); do [ -S "$tmp/api" ] && break; sleep 0.1; done

x -- echo hello
expect "echo hello: stdout and exit 0" eval '[ $rc -eq 0 ] && [ "$(cat "$tmp/out")" = hello ]'
x -- sh -c 'echo to-err >&2; exit 7'
expect "exit 7 and stderr kept apart" eval '[ $rc -eq 7 ] && [ ! -s "$tmp/out" ] && grep -qx to-err "$tmp/err"'
x -- sh -c 'kill -9 $$'
expect "killed by SIGKILL: 137" eval '[ $rc -eq 137 ]'
x -- no-such-command-here
expect "unknown command: 127 and one line" \
	eval '[ $rc -eq 127 ] && [ "$(cat "$tmp/err")" = "vmm: container: no-such-command-here: command not found" ]'
head -c 700000 /dev/urandom >"$tmp/in"
IN=$tmp/in x -- cat
expect "700000 bytes of stdin come back intact through cat" eval '[ $rc -eq 0 ] && cmp -s "$tmp/in" "$tmp/out"'
x -- seq 1 200000
expect "1.2 MB of stdout intact and in order" eval '[ $rc -eq 0 ] && seq 1 200000 | cmp -s - "$tmp/out"'
x --env A=1 --env PATH=/usr/bin:/bin --workdir /tmp -- sh -c 'echo "$A|$PATH|$(pwd)|$HOME"'
expect "env (defaults overridden), workdir" eval '[ $rc -eq 0 ] && [ "$(cat "$tmp/out")" = "1|/usr/bin:/bin|/tmp|/root" ]'
# --process FILE: the whole process from a JSON file (what vmm-oci exec hands over), on fd 3
# as vmm-oci passes it; the flags and a command after -- still apply over it
cat >"$tmp/proc.json" <<'EOF'
{"args": ["sh", "-c", "echo \"$P|$(pwd)|$(umask)|$(ulimit -n)\"; ls /proc/self/fd"], "env": ["P=from-file", "PATH=/usr/bin:/bin"],
 "cwd": "/tmp", "umask": 23, "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 200, "hard": 300}], "terminal": false}
EOF
x --process /dev/fd/3 3<"$tmp/proc.json"
expect "--process FILE: args, env, cwd, umask and rlimits from the file; the file's fd is not the process's" \
	eval '[ $rc -eq 0 ] && [ "$(head -n 1 "$tmp/out")" = "from-file|/tmp|0027|200" ] && [ "$(sed 1d "$tmp/out" | tr "\n" " ")" = "0 1 2 3 " ]'
x --process "$tmp/proc.json" --env Q=1 -- sh -c 'echo "$P$Q"'
expect "--process FILE with --env and a command: the command replaces the file's args" \
	eval '[ $rc -eq 0 ] && [ "$(cat "$tmp/out")" = from-file1 ]'
echo '{"args": ["true"], "capabilitiez": {}}' >"$tmp/bad.json"
x --process "$tmp/bad.json"
expect "--process with an unknown key: one line naming the file and the key, exit 125" \
	eval '[ $rc -eq 125 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "^vmm: --process $tmp/bad.json: process.capabilitiez: unknown key" "$tmp/err"'
x --tty -- sh -c 'tty; echo "TERM=$TERM"'
expect "--tty: a pty and TERM" eval '[ $rc -eq 0 ] && grep -q "^/dev/pts/" "$tmp/out" && grep -q "TERM=xterm" "$tmp/out"'
timeout -k 5 60 "$vmm" exec --api-sock "$tmp/api" -- sh -c 'trap "echo got-term; exit 3" TERM; echo ready; while :; do sleep 0.1; done' \
	</dev/null >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 1 200); do grep -q ready "$tmp/out" 2>/dev/null && break; sleep 0.1; done
vpid=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null)
kill -TERM "${vpid%% *}"
wait "$pid"
rc=$?
expect "SIGTERM to vmm exec reaches the process" eval '[ $rc -eq 3 ] && grep -q got-term "$tmp/out"'
# A peer that is not the agent: after the API's reply it sends a frame with a bad header, vmm
# exec gives one line, 125
"$py" "$(dirname "$0")/api-front.py" "$tmp/bad" "$tmp/listen" --bad-agent &
badfront=$!
for _ in $(seq 1 100); do [ -S "$tmp/bad" ] && break; sleep 0.1; done
timeout -k 5 60 "$vmm" exec --api-sock "$tmp/bad" -- true </dev/null >"$tmp/out" 2>"$tmp/err"
rc=$?
expect "a peer breaking the protocol: one line, exit 125" \
	eval '[ $rc -eq 125 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "broke the protocol" "$tmp/err"'
echo "# $((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
