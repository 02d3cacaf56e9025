# The VM lifecycle and the control API (docs/api.md), sourced by boot-tests.sh (its helpers vm,
# expect, wait_for, ok, not_ok, $tmp, $vmm, $vmlinux) after container-tests.sh ($bb). Four VMs:
# a paused container driven through every request, one forced off, one detached, one on an OCI
# console socket. Waits are on events (a line, a state) with the nest's deadlines; the only
# fixed waits are the ones that prove nothing happens while paused.
here=$(dirname "$0")
ctl() { timeout -k 5 300 "$vmm" ctl --api-sock "$@"; }
# jget EXPR: a Python expression on the JSON object j read from stdin
jget() { python3 -c 'import json,sys; j=json.load(sys.stdin); print('"$1"')'; }
size() { stat -c %s "$1" 2>/dev/null || echo 0; }

if [ -z "$bb" ] || [ ! -f "$bb" ]; then
	not_ok "lifecycle tests: no busybox rootfs image (VMM_TEST_BUSYBOX_EROFS=$bb)"
else
	api=$tmp/life.sock
	rc=0
	# A container that ticks every 100 ms with the guest's uptime, traps USR1 and TERM; its
	# description comes from a --config file (docs/config.md), the control flags from the command
	# line.
	python3 - "$bb" >"$tmp/life.json" <<-'PY'
		import json, sys
		script = ('trap "echo got-usr1" USR1; trap "echo got-term; exit 3" TERM; i=0; '
		          'while :; do echo "tick $i $(cut -d" " -f1 /proc/uptime)"; i=$((i+1)); sleep 0.1; done')
		print(json.dumps({"rootfs": sys.argv[1], "hostname": "life",
		                  "process": {"args": ["sh", "-c", script], "env": ["LIFE=1"]}}))
	PY
	timeout -k 5 900 "$vmm" --config "$tmp/life.json" --paused --api-sock "$api" --metrics "$tmp/metrics.json" \
		</dev/null >"$tmp/life-out" 2>"$tmp/life-err" &
	lpid=$!
	for _ in $(seq 1 600); do [ -S "$api" ] && break; sleep 0.1; done
	st=$(ctl "$api" state 2>&1)
	exits=$(ctl "$api" metrics 2>/dev/null | jget 'j["vcpu_exits"]["total"]')
	expect "--paused: state is created, the guest has not run (0 vCPU exits) and printed nothing" \
		eval '[ "$(jget "j[\"state\"]" <<<"$st")" = created ] && [ "$exits" = 0 ] && [ ! -s "$tmp/life-out" ]'
	cfgline=$(jget '" ".join([j["config"]["hostname"], j["config"]["process"]["args"][0]] + j["config"]["process"]["env"])' <<<"$st")
	expect "--config: the state's description is the file's (hostname, process, env)" \
		eval '[ "$cfgline" = "life sh LIFE=1" ]'

	ctl "$api" resume >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "resume of a VM that is not paused: one error line, exit 125" \
		eval '[ $rc -eq 125 ] && grep -q "resume: the VM is created, not paused" "$tmp/err"'

	ctl "$api" start
	wait_for "^tick 5 " "$tmp/life-out" "$lpid"
	st=$(ctl "$api" state 2>&1)
	expect "start: the container runs (state running, ticks)" \
		eval '[ "$(jget "j[\"state\"]" <<<"$st")" = running ] && grep -q "^tick 5 " "$tmp/life-out"'

	ctl "$api" resume >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "resume while running: refused with one line, vmm keeps running" \
		eval '[ $rc -eq 125 ] && grep -q "resume: the VM is running, not paused" "$tmp/err" && kill -0 $lpid'

	# pause: no output and no vCPU exit while paused; the ticks go on after resume, and the
	# guest's clock does not count the paused time
	ctl "$api" pause
	sleep 1 # output already on its way to vmm's stdout lands
	s1=$(size "$tmp/life-out")
	m1=$(ctl "$api" metrics)
	e1=$(jget 'j["vcpu_exits"]["total"]' <<<"$m1")
	# every device's queue indexes, which stand still while paused
	queue_indexes() { jget '[(d["name"], q["index"], q["offered"], q["taken"], q["returned"]) for d in j["devices"] for q in d["queues"]]'; }
	q1=$(queue_indexes <<<"$m1")
	last=$(tail -n 1 "$tmp/life-out")
	sleep 4
	s2=$(size "$tmp/life-out")
	m2=$(ctl "$api" metrics)
	e2=$(jget 'j["vcpu_exits"]["total"]' <<<"$m2")
	q2=$(queue_indexes <<<"$m2")
	st=$(ctl "$api" state | jget 'j["state"]')
	# a snapshot of it is refused (vsock's connections cannot be saved yet), leaving nothing
	ctl "$api" snapshot "$tmp/life-snap" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "snapshot of a paused container: refused with one line naming virtio-vsock, nothing left" \
		eval '[ $rc -eq 125 ] && grep -q "^vmm: ctl: snapshot: virtio-vsock.* keeps state this vmm cannot save yet" "$tmp/err" && [ "$(wc -l <"$tmp/err")" -eq 1 ] && [ -z "$(ls -A "$tmp/life-snap")" ]'
	ctl "$api" resume
	n1=$(awk '{print $2}' <<<"$last")
	wait_for "^tick $((n1 + 3)) " "$tmp/life-out" "$lpid"
	after=$(grep "^tick $((n1 + 1)) " "$tmp/life-out")
	gap=$(awk -v a="$(awk '{print $3}' <<<"$last")" -v b="$(awk '{print $3}' <<<"$after")" 'BEGIN { print b - a }')
	echo "# pause: the guest's uptime moved ${gap}s across a pause of about 4 s"
	expect "pause: no output, no vCPU exit and no queue moving while paused, ticks go on after resume" \
		eval '[ "$st" = paused ] && [ "$s1" = "$s2" ] && [ "$e1" = "$e2" ] && [ -n "$after" ] && [[ $q1 == *virtio-vsock* ]] && [ "$q1" = "$q2" ]'
	expect "pause: the guest clock does not jump by the paused time (kvmclock held)" \
		eval 'awk -v g="$gap" "BEGIN { exit !(g < 2.5) }"'

	# metrics move with guest I/O: more exits, the vsock device carried the ticks
	m=$(ctl "$api" metrics)
	expect "metrics: vCPU exits, vsock requests and bytes move with guest I/O" \
		eval '[ "$(jget "j[\"vcpu_exits\"][\"total\"] > $e2" <<<"$m")" = True ] && [ "$(jget "[d for d in j[\"devices\"] if d[\"type\"] == \"vsock\"][0][\"bytes\"] > 0" <<<"$m")" = True ] && [ "$(jget "j[\"vsock\"][\"opened\"] >= 1" <<<"$m")" = True ]'

	ctl "$api" signal 10
	wait_for "^got-usr1" "$tmp/life-out" "$lpid"
	expect "signal 10: it reaches the container process's trap" grep -q "^got-usr1" "$tmp/life-out"

	# exec through the API while a second client uses the API
	mkfifo "$tmp/exec-in"
	timeout -k 5 300 "$vmm" exec --api-sock "$api" -- sh -c 'echo exec-started; cat; exit 4' \
		<"$tmp/exec-in" >"$tmp/exec-out" 2>"$tmp/exec-err" &
	epid=$!
	exec 7>"$tmp/exec-in"
	wait_for "^exec-started" "$tmp/exec-out" "$epid"
	st=$(ctl "$api" state | jget 'j["state"]')
	echo exec-input >&7
	exec 7>&-
	wait "$epid"
	rc=$?
	expect "exec through the API: stdio both ways, exit status 4; a second client meanwhile is served" \
		eval '[ $rc -eq 4 ] && [ "$(cat "$tmp/exec-out")" = "$(printf "exec-started\nexec-input")" ] && [ "$st" = running ]'

	# 64 KiB of garbage: an error reply, the connection closed, vmm unharmed
	python3 - "$api" >"$tmp/out" 2>&1 <<-'PY'
		import os, socket, sys
		s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
		try:
		    s.sendall(os.urandom(65536).replace(b"\n", b"x"))
		except OSError:
		    pass
		data = b""
		while True:
		    b = s.recv(4096)
		    if not b:
		        break
		    data += b
		print(data.decode(errors="replace").strip())
	PY
	st=$(ctl "$api" state | jget 'j["state"]')
	cp "$tmp/life-err" "$tmp/err" # vmm's own lines, should it have gone
	expect "64 KiB of garbage on the API socket: one error reply, then closed; vmm still running" \
		eval 'grep -q "\"ok\":false" "$tmp/out" && [ "$(wc -l <"$tmp/out")" -eq 1 ] && [ "$st" = running ]'

	# stop: SIGTERM through the agent, the trap exits 3, which is vmm's status and the reply's
	rep=$(ctl "$api" stop 2>&1)
	wait "$lpid"
	rc=$?
	cp "$tmp/life-err" "$tmp/err"
	expect "stop: the container ends with its process's status (3), the reply says so" \
		eval '[ $rc -eq 3 ] && grep -q "^got-term" "$tmp/life-out" && [ ! -e "$api" ]'
	expect "--metrics FILE: written at exit, valid JSON with the exits and devices" \
		eval '[ "$(jget "j[\"vcpu_exits\"][\"total\"] > 0 and len(j[\"devices\"]) >= 2" <"$tmp/metrics.json")" = True ]'

	# a process that ignores SIGTERM is forced off after the timeout: 137
	timeout -k 5 600 "$vmm" --rootfs "$bb" --api-sock "$api" -- sh -c 'trap "" TERM; echo ready; while :; do sleep 1; done' \
		</dev/null >"$tmp/out" 2>"$tmp/err" &
	lpid=$!
	wait_for "^ready" "$tmp/out" "$lpid"
	ctl "$api" stop --timeout 3 >/dev/null
	wait "$lpid"
	rc=$?
	expect "stop: a process that ignores SIGTERM is forced off after the timeout (137)" \
		eval '[ $rc -eq 137 ] && grep -q "forced off" "$tmp/err"'

	# --detach --pid-file: create returns, the pid file names the VM's process, which ends with
	# the container's status
	python3 "$here/oci-helper.py" subreaper "$tmp/vmm.pid" -- \
		timeout -k 5 300 "$vmm" --detach --pid-file "$tmp/vmm.pid" --rootfs "$bb" -- sh -c 'echo detached-out; exit 7' \
		</dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "--detach --pid-file: the pid named is vmm's, and its exit status is the container's (7)" \
		eval '[ $rc -eq 7 ] && grep -q "^pid [0-9]* exe .*/vmm$" "$tmp/out" && grep -q "^detached-out" "$tmp/out"'

	# --console-socket: the pty master arrives, has the process's terminal, follows the size
	python3 "$here/oci-helper.py" console "$tmp/console.sock" 40 100 -- \
		timeout -k 5 300 "$vmm" --console-socket "$tmp/console.sock" --rootfs "$bb" -- \
		sh -c 'tty; stty size; echo pty-ok' </dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	tr -d '\r' <"$tmp/out" >"$tmp/out.txt"
	expect "--console-socket: a working pty master (the process's tty, its size, its output)" \
		eval '[ $rc -eq 0 ] && grep -q "^/dev/pts/[0-9]" "$tmp/out.txt" && grep -qx "40 100" "$tmp/out.txt" && grep -q "^pty-ok" "$tmp/out.txt"'
fi

# Snapshot of a paused VM (docs/snapshot.md) with virtio-blk and virtio-rng, both used: the
# state file reads back (vmm ctl checks every section), the memory file is all of guest RAM and
# holds what the guest wrote to its tmpfs, and the guest goes on after resume. Then --restore
# DIR: a new vmm goes on from the pause, the guest's loop printing on without a boot.
truncate -s 8M "$tmp/snap.img"
rm -rf "$tmp/snap"
# shellcheck disable=SC2016 # expanded in the guest
watch_start "$tmp/snap.sock" "$tmp/snap-out" "$tmp/snap-err" --kernel "$vmlinux" --initrd "$initramfs" \
	--memory 128 --rng --disk "path=$tmp/snap.img" --cmdline '-- /bin/sh -c "printf SNAP%sMARK 42 >/tmp/m; head -c 4096 /dev/hwrng | wc -c; echo x | dd of=/dev/vda conv=fsync 2>/dev/null; echo snap-ready; while :; do echo t $(cat /tmp/m); sleep 2; done"'
wait_for "^snap-ready" "$tmp/snap-out" "$pid" 300
ctl "$tmp/snap.sock" pause
ctl "$tmp/snap.sock" snapshot "$tmp/snap" >"$tmp/out" 2>"$tmp/err"
snap_rc=$?
cat "$tmp/out" | sed 's/^/# /'
ticks() { grep -c '^t SNAP42MARK.\?$' "${1:-$tmp/snap-out}"; }
t1=$(ticks)
ctl "$tmp/snap.sock" resume
for _ in $(seq 1 600); do (($(ticks) > t1 + 1)) && break; sleep 0.5; done
t2=$(ticks)
kill -TERM "$pid"
watch_end 60
marks=$(grep -a -c SNAP42MARK "$tmp/snap/memory" 2>/dev/null)
expect "snapshot DIR of a paused VM (virtio-blk, virtio-rng): DIR/state reads back, DIR/memory is the 128 MiB of RAM" \
	eval '[ $snap_rc -eq 0 ] && grep -q "^snapshot: $tmp/snap/state ([0-9]* sections, [0-9]* bytes) and $tmp/snap/memory (128 MiB of guest RAM, [0-9]* MiB not zero)" "$tmp/out" && [ "$(ls "$tmp/snap" | tr "\n" " ")" = "memory state " ] && [ "$(stat -c %s "$tmp/snap/memory")" = 134217728 ]'
expect "snapshot: the memory file holds what the guest wrote (its tmpfs file's bytes)" \
	eval '[ "${marks:-0}" -ge 1 ]'
expect "snapshot: the guest goes on after resume, SIGTERM ends it (143)" \
	eval '((t2 > t1 + 1)) && [ $rc -eq 143 ]'

watch_start "$tmp/rs.sock" "$tmp/rs-out" "$tmp/rs-err" --restore "$tmp/snap"
for _ in $(seq 1 600); do (($(ticks "$tmp/rs-out") > 1)) && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
t3=$(ticks "$tmp/rs-out")
kill -TERM "$pid"
watch_end 60
cp "$tmp/rs-err" "$tmp/err"
expect "--restore DIR: the snapshot's guest goes on in a new vmm (its loop prints on, no boot), SIGTERM ends it (143)" \
	eval '((t3 > 1)) && ! grep -q "vmm-init: booted" "$tmp/rs-out" && [ $rc -eq 143 ]'
rm -rf "$tmp/snap" "$tmp/snap.img"
