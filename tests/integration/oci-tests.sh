# vmm-oci, driven the way conmon and containerd's shim drive an OCI runtime (shared/engines):
# sourced by boot-tests.sh (its helpers expect, ok, not_ok, wait_for, $tmp, $vmm, $vmlinux). The
# engine is stood in for by oci-helper.py subreaper (a child subreaper that waits for the process
# the pid file names, as conmon does). Two boots: one container that runs to its exit status, one
# that is started, inspected, paused, resumed, exec'd into, signalled and deleted.
oci=$(dirname "$vmm")/../oci/vmm-oci
here=$(dirname "${BASH_SOURCE[0]}")
bb=${VMM_TEST_BUSYBOX_EROFS:-}
export VMM_KERNEL=$vmlinux

# state_of ID: the status field of `vmm-oci state ID`
state_of() { "$oci" --root "$ocir" state "$1" 2>/dev/null | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p'; }
# wait_state ID STATUS [SECONDS]: polls until the container is in STATUS (generous deadline)
wait_state() {
	local deadline=$((SECONDS + ${3:-300}))
	while ((SECONDS < deadline)); do
		[ "$(state_of "$1")" = "$2" ] && return 0
		sleep 0.2
	done
	return 1
}
# bundle DIR ARGS-JSON [MOUNTS]: a bundle whose config.json runs ARGS in the root $ocifs, with the
# mounts podman writes (proc, /dev tmpfs, sysfs, devpts, mqueue, cgroup) left to the agent, and
# MOUNTS (",{...}" entries) after them
bundle() {
	mkdir -p "$1"
	cat >"$1/config.json" <<EOF
{"ociVersion":"1.0.2","root":{"path":"$ocifs"},"hostname":"ocitest",
 "process":{"args":$2,"env":["PATH=/usr/bin:/bin","OCI_VAR=set"],"cwd":"/","user":{"uid":0,"gid":0},"terminal":false},
 "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
  {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","mode=755"]},
  {"destination":"/sys","type":"sysfs","source":"sysfs","options":["ro"]},
  {"destination":"/dev/pts","type":"devpts","source":"devpts"},
  {"destination":"/dev/mqueue","type":"mqueue","source":"mqueue"},
  {"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup"}${3:-}],
 "linux":{"resources":{"memory":{"limit":201326592}},"namespaces":[{"type":"pid"},{"type":"mount"}]},
 "annotations":{"io.vmm.cpus":"1"}}
EOF
}

ocir=$tmp/oci-root
ocifs=$tmp/ocifs
if [ ! -x "$oci" ]; then
	not_ok "vmm-oci tests: $oci not built"
elif [ -z "$bb" ] || ! fsck.erofs --extract="$ocifs" "$bb" >"$tmp/err" 2>&1; then
	not_ok "vmm-oci tests: no busybox rootfs directory (VMM_TEST_BUSYBOX_EROFS=$bb)"
else
	# 1. create (paused VM, pid file = vmm, re-parented to the subreaper), start, exit status
	bundle "$tmp/b1" '["/bin/sh","-c","echo oci-out $OCI_VAR $(hostname) $(cat /proc/meminfo | grep MemTotal | tr -s \" \" | cut -d\" \" -f2); exit 7"]'
	timeout -k 5 600 python3 "$here/oci-helper.py" subreaper "$tmp/c1.pid" -- \
		"$oci" --root "$ocir" create --bundle "$tmp/b1" --pid-file "$tmp/c1.pid" c1 \
		</dev/null >"$tmp/c1.out" 2>"$tmp/c1.err" &
	sub=$!
	wait_state c1 created 300
	st_created=$(state_of c1)
	"$oci" --root "$ocir" start c1 >"$tmp/out" 2>"$tmp/err"
	start_rc=$?
	wait "$sub"
	rc=$?
	cp "$tmp/c1.out" "$tmp/out"
	cat "$tmp/c1.err" >>"$tmp/err"
	expect "vmm-oci: create leaves the container created; start runs it; the pid file's process exits with its status (7)" \
		eval '[ "$st_created" = created ] && [ $start_rc -eq 0 ] && [ $rc -eq 7 ] && grep -q "^pid [0-9]* exe .*/vmm$" "$tmp/out"'
	expect "vmm-oci: the process has the spec's env and hostname, stdout is create's; memory.limit is the guest's RAM" \
		eval 'mem=$(sed -n "s/^oci-out set ocitest \([0-9]*\)$/\1/p" "$tmp/out"); [ -n "$mem" ] && [ "$mem" -gt 150000 ] && [ "$mem" -le 196608 ]'
	st=$("$oci" --root "$ocir" state c1 2>&1)
	expect "vmm-oci: state of an exited container: stopped, pid 0, the bundle" \
		eval 'grep -q "\"status\": \"stopped\"" <<<"$st" && grep -q "\"pid\": 0" <<<"$st" && grep -q "\"bundle\": \"$tmp/b1\"" <<<"$st"'
	"$oci" --root "$ocir" start c1 >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "vmm-oci: start twice is refused (exit 1, says so)" \
		eval '[ $rc -eq 1 ] && grep -q "is stopped, not created" "$tmp/err"'
	"$oci" --root "$ocir" delete c1 >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "vmm-oci: delete of a stopped container removes its records" \
		eval '[ $rc -eq 0 ] && [ ! -e "$ocir/c1" ]'

	# 2. a long-running container: state, pause/resume, exec (its status), vmm's mount namespace,
	# kill, delete --force
	mkdir -p "$tmp/ocivol"
	echo in-vol >"$tmp/ocivol/v"
	bundle "$tmp/b2" '["/bin/sh","-c","trap \"echo got-term; exit 3\" TERM; echo oci2-up; while :; do sleep 1; done"]' \
		",{\"destination\":\"/vol\",\"type\":\"bind\",\"source\":\"$tmp/ocivol\",\"options\":[\"rbind\",\"rw\"]}"
	timeout -k 5 600 python3 "$here/oci-helper.py" subreaper "$tmp/c2.pid" -- \
		"$oci" --root "$ocir" --log "$tmp/c2.log.json" --log-format json create --bundle "$tmp/b2" --pid-file "$tmp/c2.pid" c2 \
		</dev/null >"$tmp/c2.out" 2>"$tmp/c2.err" &
	sub=$!
	wait_state c2 created 300
	"$oci" --root "$ocir" start c2 >/dev/null 2>"$tmp/err"
	wait_for "oci2-up" "$tmp/c2.out" "$sub" 300
	s_run=$(state_of c2)
	ps=$("$oci" --root "$ocir" ps --format json c2 2>&1)
	"$oci" --root "$ocir" pause c2 2>>"$tmp/err"
	s_pause=$(state_of c2)
	"$oci" --root "$ocir" resume c2 2>>"$tmp/err"
	s_resume=$(state_of c2)
	expect "vmm-oci: running, ps --format json lists vmm's pid, pause -> paused, resume -> running" \
		eval '[ "$s_run" = running ] && [ "$ps" = "[$(cat "$tmp/c2.pid")]" ] && [ "$s_pause" = paused ] && [ "$s_resume" = running ]'
	cat >"$tmp/proc.json" <<'EOF'
{"args":["/bin/sh","-c","echo exec-out $PWD $EXEC_VAR; exit 9"],"env":["EXEC_VAR=e1"],"cwd":"/tmp","user":{"uid":0,"gid":0},"terminal":false}
EOF
	timeout -k 5 300 "$oci" --root "$ocir" exec --process "$tmp/proc.json" c2 >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "vmm-oci: exec --process runs in the container with its env and cwd, exits with its status (9)" \
		eval '[ $rc -eq 9 ] && grep -q "^exec-out /tmp e1" "$tmp/out"'
	timeout -k 5 300 python3 "$here/oci-helper.py" subreaper "$tmp/e.pid" -- \
		"$oci" --root "$ocir" exec --detach --pid-file "$tmp/e.pid" --process "$tmp/proc.json" c2 \
		</dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "vmm-oci: exec --detach --pid-file: the named process lives as long as the exec'd one and exits 9" \
		eval '[ $rc -eq 9 ] && grep -q "^exec-out /tmp e1" "$tmp/out"'
	# podman cp of a running container joins the mount namespace of the pid file's process:
	# there the root is the container's, with its volume, and nothing of the host's
	nsenter -m -t "$(cat "$tmp/c2.pid")" /bin/sh -c "cat /vol/v && echo copied-in >/cp-in && echo via-ns >/vol/from-ns && { [ -e '$tmp' ] || echo no-host-path; }" \
		>"$tmp/out" 2>"$tmp/err"
	rc=$?
	cat >"$tmp/proc.json" <<'EOF'
{"args":["/bin/sh","-c","cat /cp-in /vol/from-ns"],"env":[],"cwd":"/","user":{"uid":0,"gid":0},"terminal":false}
EOF
	timeout -k 5 300 "$oci" --root "$ocir" exec --process "$tmp/proc.json" c2 >>"$tmp/out" 2>>"$tmp/err"
	rc2=$?
	grep -h -e enter-rootfs "$tmp/c2.log.json" >>"$tmp/err" 2>/dev/null # vmm's warnings, if any
	expect "vmm-oci: vmm's mount namespace is rooted at the container's root, its volume in place, no host path; what is written there the container reads" \
		eval '[ $rc -eq 0 ] && [ $rc2 -eq 0 ] && [ "$(cat "$tmp/out")" = "$(printf "in-vol\nno-host-path\ncopied-in\nvia-ns")" ] && [ "$(cat "$ocifs/cp-in")" = copied-in ] && [ "$(cat "$tmp/ocivol/from-ns")" = via-ns ]'
	"$oci" --root "$ocir" kill c2 15 2>"$tmp/err"
	krc=$?
	wait "$sub"
	rc=$?
	cp "$tmp/c2.out" "$tmp/out"
	expect "vmm-oci: kill ID 15 reaches the process's TERM trap; the pid file's process exits 3" \
		eval '[ $krc -eq 0 ] && [ $rc -eq 3 ] && grep -q "^got-term" "$tmp/out"'
	"$oci" --root "$ocir" delete --force c2 2>"$tmp/err"
	rc=$?
	"$oci" --root "$ocir" delete --force c2 2>>"$tmp/err"
	rc2=$?
	"$oci" --root "$ocir" kill c2 9 >"$tmp/out" 2>"$tmp/err"
	rc3=$?
	expect "vmm-oci: delete --force removes it, again exits 0; kill of a missing container says 'does not exist'" \
		eval '[ $rc -eq 0 ] && [ $rc2 -eq 0 ] && [ ! -e "$ocir/c2" ] && [ $rc3 -eq 1 ] && grep -q "does not exist" "$tmp/err"'

	# 3. the network namespace the engine made: a veth pair (eth0 inside, 10.77.0.2/24 and
	# fd77::2/64, the gateways 10.77.0.1 and fd77::1 outside, MTU 1450) as podman's bridge would
	# leave it, and more routes (one on the link, as Calico's to its gateway, one through the
	# gateway, and one IPv6 one); the VM takes eth0 over
	unshare --net sleep 900 &
	nsp=$!
	nse() { nsenter --net="/proc/$nsp/ns/net" "$@"; }
	# unshare(1) has made its namespace once the process's differs from ours
	for _ in $(seq 100); do
		[ "$(readlink "/proc/$nsp/ns/net")" != "$(readlink /proc/self/ns/net)" ] && break
		sleep 0.1
	done
	if ip link add vmmveth0 type veth peer name eth0 netns "$nsp" && ip addr add 10.77.0.1/24 dev vmmveth0 &&
		ip link set vmmveth0 mtu 1450 up && nse ip addr add 10.77.0.2/24 dev eth0 &&
		nse ip link set eth0 mtu 1450 up &&
		nse ip link set lo up && nse ip route add default via 10.77.0.1 &&
		nse ip route add 192.168.50.1 dev eth0 && nse ip route add 10.99.0.0/16 via 10.77.0.1 &&
		ip addr add fd77::1/64 dev vmmveth0 nodad && nse ip addr add fd77::2/64 dev eth0 nodad &&
		nse ip -6 route add default via fd77::1 && nse ip -6 route add fd99::/16 via fd77::1; then
		mac=$(nse cat /sys/class/net/eth0/address)
		bundle "$tmp/b4" '["/bin/sh","-c","ip addr show eth0; ip route; ip -6 route; echo net-ready; echo hello-net | nc -l -p 8080; echo carrier $(cat /sys/class/net/eth0/carrier); ip -6 neigh"]'
		python3 - "$tmp/b4/config.json" "/proc/$nsp/ns/net" <<'EOF2'
import json, sys
c = json.load(open(sys.argv[1]))
c["linux"]["namespaces"].append({"type": "network", "path": sys.argv[2]})
json.dump(c, open(sys.argv[1], "w"))
EOF2
		timeout -k 5 600 python3 "$here/oci-helper.py" subreaper "$tmp/c4.pid" -- \
			"$oci" --root "$ocir" create --bundle "$tmp/b4" --pid-file "$tmp/c4.pid" c4 \
			</dev/null >"$tmp/c4.out" 2>"$tmp/c4.err" &
		sub=$!
		wait_state c4 created 300
		tc_in=$(nse tc filter show dev eth0 ingress 2>&1)
		"$oci" --root "$ocir" start c4 2>"$tmp/err"
		wait_for "net-ready" "$tmp/c4.out" "$sub" 300
		# IPv6: an echo request from outside to the guest's fd77::2 (neighbour discovery
		# through the redirects, the guest kernel answers)
		# (an unresolved neighbour comes back as an error on the socket: tried again)
		pong=$(python3 -c '
import socket, struct, time
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.settimeout(2)
err = "no answer"
for i in range(30):
    try:
        s.sendto(struct.pack("!BBHHH", 128, 0, 0, 0x77, i) + b"vmm", ("fd77::2", 0))
        while True:
            d, a = s.recvfrom(256)
            if d[0] == 129 and a[0] == "fd77::2":
                raise SystemExit(print("pong"))
    except socket.timeout:
        pass
    except OSError as e:
        err = str(e)
        time.sleep(1)
print(err)' 2>&1)
		got=$(python3 -c '
import socket, sys, time
for _ in range(60):
    try:
        s = socket.create_connection(("10.77.0.2", 8080), timeout=5)
        print(s.recv(100).decode().strip()); break
    except OSError:
        time.sleep(1)' 2>&1)
		wait "$sub"
		rc=$?
		cp "$tmp/c4.out" "$tmp/out"
		{ echo "echo request: $pong"; ip -6 neigh show dev vmmveth0; tail -5 "$tmp/c4.err"; } >>"$tmp/out"
		expect "vmm-oci: the spec's network namespace: eth0's MAC, MTU, address and routes (default, on the link, through a gateway) in the guest, tc redirects, a TCP connection from outside" \
			eval '[ "$got" = hello-net ] && grep -q "link/ether $mac" "$tmp/out" && grep -q "eth0: .* mtu 1450 " "$tmp/out" && grep -q "inet 10.77.0.2/24" "$tmp/out" && grep -q "default via 10.77.0.1" "$tmp/out" && grep -q "^192.168.50.1 dev eth0" "$tmp/out" && grep -q "^10.99.0.0/16 via 10.77.0.1 dev eth0" "$tmp/out" && grep -q "mirred" <<<"$tc_in"'
		expect "vmm-oci: eth0's IPv6 address and routes (default, through a gateway) in the guest, an echo request from outside answered" \
			eval '[ "$pong" = pong ] && grep -q "inet6 fd77::2/64 scope global" "$tmp/out" && grep -q "^default via fd77::1 dev eth0" "$tmp/out" && grep -q "^fd99::/16 via fd77::1 dev eth0" "$tmp/out"'
		"$oci" --root "$ocir" delete --force c4 2>/dev/null
	else
		not_ok "vmm-oci network: cannot make the veth pair and namespace (veth module?)"
	fi
	kill "$nsp" 2>/dev/null
	ip link del vmmveth0 2>/dev/null

	# 4. bad input: nothing is left in --root, one line in the log
	bundle "$tmp/b3" '["/bin/true"]'
	sed -i "s|\"path\":\"$ocifs\"|\"path\":\"$tmp/no-such-root\"|" "$tmp/b3/config.json"
	"$oci" --root "$ocir" --log "$tmp/b3.log" --log-format json create --bundle "$tmp/b3" c3 </dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "vmm-oci: a rootfs that does not exist: exit 1, one JSON log line naming root.path, nothing in --root" \
		eval '[ $rc -eq 1 ] && [ "$(wc -l <"$tmp/b3.log")" -eq 1 ] && grep -q "\"level\":\"error\",\"msg\":\"config.json: root.path: $tmp/no-such-root" "$tmp/b3.log" && [ ! -e "$ocir/c3" ]'
fi
