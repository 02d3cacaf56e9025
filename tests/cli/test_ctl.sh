#!/usr/bin/env bash
# `vmm ctl` (vmm/api/ctl.c) end to end against a fake control server in python (no KVM): the request
# line each command sends, what it prints, its exit status and its one-line errors. Prints TAP.
# Usage: test_ctl.sh VMM
set -u
vmm=$1
tmp=$(mktemp -d)
n=0 failed=0
cleanup() {
	[ -n "${spid:-}" ] && kill "$spid" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
	n=$((n + 1)) failed=$((failed + 1))
	echo "not ok $n - $1"
	for f in "$tmp/out" "$tmp/err" "$tmp/req"; do
		[ -s "$f" ] && tail -n 10 "$f" | sed "s|^|# $(basename "$f"): |"
	done
}
# serve REPLY: a server on $tmp/api.sock answering one connection with REPLY (may be empty),
# writing the request line it read to $tmp/req; it gives up after 10 s without a connection
serve() {
	rm -f "$tmp/api.sock" "$tmp/req" "$tmp/ready"
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1); s.settimeout(10)
open(sys.argv[3], "w").close()
c, _ = s.accept(); c.settimeout(10); f = c.makefile("rb")
open(sys.argv[2], "wb").write(f.readline())
c.sendall(sys.argv[4].encode()); c.close()' "$tmp/api.sock" "$tmp/req" "$tmp/ready" "$1" &
	spid=$!
	for _ in $(seq 100); do [ -e "$tmp/ready" ] && break; sleep 0.05; done
}
# serve_fds REPLY BYTES: as serve, and writes BYTES into each descriptor that came with the
# request, their count and kinds ("2 reg reg") into $tmp/fds
serve_fds() {
	rm -f "$tmp/api.sock" "$tmp/req" "$tmp/ready" "$tmp/fds"
	python3 -c '
import array, os, socket, stat, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1); s.settimeout(10)
open(sys.argv[3], "w").close()
c, _ = s.accept(); c.settimeout(10)
data, anc, _, _ = c.recvmsg(4096, socket.CMSG_SPACE(8 * 4))
fds = array.array("i")
for level, kind, b in anc:
    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
        fds.frombytes(b[: len(b) - len(b) % 4])
kinds = ["reg" if stat.S_ISREG(os.fstat(f).st_mode) else "other" for f in fds]
for f in fds:
    os.write(f, sys.argv[5].encode())
open(sys.argv[4], "w").write(" ".join([str(len(fds))] + kinds))
open(sys.argv[2], "wb").write(data.split(b"\n")[0] + b"\n")
c.sendall(sys.argv[6].encode()); c.close()' "$tmp/api.sock" "$tmp/req" "$tmp/ready" "$tmp/fds" "$2" "$1" &
	spid=$!
	for _ in $(seq 100); do [ -e "$tmp/ready" ] && break; sleep 0.05; done
}
ctl() { timeout -k 5 30 "$vmm" ctl "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?; }
done_serving() { wait "$spid" 2>/dev/null; spid=; }
# check NAME COND...: the test passes when COND holds
check() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name (exit $rc)"; fi; }
req_is() { [ "$(cat "$tmp/req")" = "$1" ]; }
err_is() { [ "$(cat "$tmp/err")" = "$1" ]; }

echo "1..15"
# A vmm whose main() does not hand `ctl` to ctl_main fails every test: say so once.
if ! "$vmm" ctl --help 2>/dev/null | grep -q "^Usage: vmm ctl"; then
	echo "Bail out! $vmm ctl --help prints no usage: main() does not run ctl_main"
	exit 1
fi

serve '{"v":1,"ok":true,"state":"running","pid":7,"devices":[{"slot":0,"type":"block"}]}
'
ctl --api-sock "$tmp/api.sock" state
done_serving
check "state: sends the request, prints the reply as pretty JSON without v and ok" \
	eval '[ $rc = 0 ] && req_is "{\"v\":1,\"op\":\"state\"}" && [ ! -s "$tmp/err" ] &&
	python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d == {\"state\":\"running\",\"pid\":7,\"devices\":[{\"slot\":0,\"type\":\"block\"}]}, d" "$tmp/out" &&
	[ "$(wc -l <"$tmp/out")" -gt 3 ]'

serve '{"v":1,"ok":true,"version":1,"vcpu_exits":{"total":3}}
'
ctl metrics --api-sock="$tmp/api.sock"
done_serving
check "metrics: --api-sock=PATH after the command" \
	eval '[ $rc = 0 ] && req_is "{\"v\":1,\"op\":\"metrics\"}" && grep -q "\"total\": 3" "$tmp/out"'

for op in start pause resume; do
	serve '{"v":1,"ok":true}
'
	ctl --api-sock "$tmp/api.sock" $op
	done_serving
	check "$op: sends {\"op\":\"$op\"}, prints nothing" \
		eval '[ $rc = 0 ] && req_is "{\"v\":1,\"op\":\"$op\"}" && [ ! -s "$tmp/out" ] && [ ! -s "$tmp/err" ]'
done

serve '{"v":1,"ok":true}
'
ctl --api-sock "$tmp/api.sock" stop --timeout 2
done_serving
check "stop --timeout 2 sends timeout_ms 2000" \
	eval '[ $rc = 0 ] && req_is "{\"v\":1,\"op\":\"stop\",\"timeout_ms\":2000}" && [ ! -s "$tmp/out" ]'

serve '{"v":1,"ok":true}
'
ctl --api-sock "$tmp/api.sock" signal SIGTERM
done_serving
check "signal SIGTERM sends signal 15" \
	eval '[ $rc = 0 ] && req_is "{\"v\":1,\"op\":\"signal\",\"signal\":15}"'

serve '{"v":1,"ok":false,"error":"the VM is paused: resume it first"}
'
ctl --api-sock "$tmp/api.sock" signal 9
done_serving
check "an error reply: one line on stderr, exit 125" \
	eval '[ $rc = 125 ] && err_is "vmm: ctl: signal: the VM is paused: resume it first" && [ ! -s "$tmp/out" ]'

serve ''
ctl --api-sock "$tmp/api.sock" pause
done_serving
check "no reply: one line, exit 125" \
	eval '[ $rc = 125 ] && err_is "vmm: ctl: pause: the server closed the connection without a reply"'

# snapshot DIR: the two files' descriptors go with the request; what the server wrote is read
# back before the files take their names, and on any failure nothing is left in DIR
serve_fds '{"v":1,"ok":false,"error":"snapshot: the VM is running, not paused: pause it first (vmm ctl pause)"}
' x
ctl --api-sock "$tmp/api.sock" snapshot "$tmp/snap"
done_serving
check "snapshot DIR: two regular files' descriptors sent; an error reply leaves DIR empty, exit 125" \
	eval '[ $rc = 125 ] && req_is "{\"v\":1,\"op\":\"snapshot\"}" && [ "$(cat "$tmp/fds")" = "2 reg reg" ] &&
	err_is "vmm: ctl: snapshot: the VM is running, not paused: pause it first (vmm ctl pause)" && [ -d "$tmp/snap" ] && [ -z "$(ls -A "$tmp/snap")" ]'
serve_fds '{"v":1,"ok":true,"state_bytes":4,"sections":1,"memory_bytes":4,"memory_written":4,"snapshot_ms":1}
' GARB
ctl --api-sock "$tmp/api.sock" snapshot "$tmp/snap"
done_serving
check "snapshot DIR: a state file that does not read back is refused (one line), DIR left empty" \
	eval '[ $rc = 125 ] && grep -q "^vmm: ctl: snapshot: what vmm wrote does not read back: state.tmp: " "$tmp/err" && [ "$(wc -l <"$tmp/err")" = 1 ] && [ -z "$(ls -A "$tmp/snap")" ]'
ctl --api-sock "$tmp/api.sock" snapshot
check "snapshot without DIR: one line, exit 125" \
	eval '[ $rc = 125 ] && err_is "vmm: ctl: snapshot needs a directory: vmm ctl --api-sock PATH snapshot DIR"'

rm -f "$tmp/api.sock"
ctl --api-sock "$tmp/api.sock" state
check "no socket: says so, exit 125" \
	eval '[ $rc = 125 ] && grep -q "^vmm: ctl: state: no socket at $tmp/api.sock: is vmm running with --api-sock" "$tmp/err" && [ "$(wc -l <"$tmp/err")" = 1 ]'

ctl --api-sock "$tmp/api.sock" signal NOPE
check "a bad command line: one line, exit 125" \
	eval '[ $rc = 125 ] && grep -q "^vmm: ctl: signal: .NOPE. is not a signal" "$tmp/err" && [ "$(wc -l <"$tmp/err")" = 1 ]'

ctl --help
check "--help: the usage on stdout, exit 0" \
	eval '[ $rc = 0 ] && grep -q "^Usage: vmm ctl --api-sock PATH COMMAND" "$tmp/out"'

[ "$failed" = 0 ]
