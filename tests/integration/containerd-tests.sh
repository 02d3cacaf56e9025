# containerd 1.6 with its runc v2 shim (what Kubernetes' CRI and Docker use), `ctr run
# --runc-binary vmm-oci`, and Docker 20.10 with `runtimes.vmm`, from Debian, where the KVM is
# (inside the nest here). Sourced by boot-tests.sh; the set-up is engine-lib.sh's (podman only
# imports the busybox tree and saves it for containerd: it boots nothing here).
. "$here_parts/engine-lib.sh"

# ctr_ready: containerd on a socket under $tmp, as cr ARGS... (ctr in namespace vmmtest), with
# the busybox image from podman save in $ctr_img.
ctr_ready() {
	command -v containerd >/dev/null && command -v ctr >/dev/null || {
		not_ok "engine tests: containerd is not installed (scripts/install-deps.sh installs it)"
		return 1
	}
	local d=$tmp/ctd
	mkdir -p "$d"
	cat >"$d/config.toml" <<EOF
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$d/ctd.sock"
EOF
	containerd --config "$d/config.toml" >"$d/log" 2>&1 &
	ctd_pid=$!
	for _ in $(seq 600); do [ -S "$d/ctd.sock" ] && break; sleep 0.5; done
	cr() { timeout -k 5 "${PM_TIMEOUT:-300}" ctr -a "$tmp/ctd/ctd.sock" -n vmmtest "$@"; }
	pm save --format docker-archive -o "$tmp/bb.tar" localhost/bb >"$tmp/out" 2>"$tmp/err" &&
		cr images import --snapshotter native "$tmp/bb.tar" >"$tmp/out" 2>>"$tmp/err" || {
		not_ok "engine tests: cannot import the busybox image into containerd"
		return 1
	}
	ctr_img=$(cr images ls -q | head -n1)
}

# The sections (units of resume, boot-tests.sh), each on its own after podman_ready.
# ctr: ctr run --rm, then a detached task's exec, ps, pause and resume, kill
containerd_ctr() {
	ctr_ready || return
	cr run --rm --snapshotter native --runc-binary "$oci" "$ctr_img" vct1 sh -c 'echo hi-from-ctr; exit 5' \
		</dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "ctr run --rm --runc-binary vmm-oci: output, exit status 5, the shim's records gone" \
		eval '[ $rc -eq 5 ] && grep -qx hi-from-ctr "$tmp/out" && [ -z "$(ls /run/containerd/runc/vmmtest 2>/dev/null)" ]'

	# -t: the shim hands create a console socket and reads create's stdout and stderr to their
	# end; ctr itself wants a terminal (script's). The line is not anchored: the first nest run
	# had it start with "^@" (the guest terminal's echo of a NUL typed on the input side; where
	# it comes from is not known yet)
	under_tty "$tmp/out" ctr -a "$tmp/ctd/ctd.sock" -n vmmtest run -t --rm --snapshotter native \
		--runc-binary "$oci" "$ctr_img" vct2 sh -c 'echo "on $(tty)"; exit 6'
	expect "ctr run -t --rm: the process on a pty (the shim's console), its output, exit status 6" \
		eval '[ $rc -eq 6 ] && grep -q "on /dev/pts/[0-9]" "$tmp/out"'

	clog=$tmp/ctd/vct3.log
	cr run -d --log-uri "file://$clog" --snapshotter native --runc-binary "$oci" "$ctr_img" vct3 \
		sh -c 'trap "echo term-ctr; exit 3" TERM; echo ctr-up; while :; do sleep 1; done' \
		</dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	for _ in $(seq 300); do grep -q ctr-up "$clog" 2>/dev/null && break; sleep 1; done
	expect "ctr run -d: the task runs, its stdout in --log-uri's file" \
		eval '[ $rc -eq 0 ] && grep -qx ctr-up "$clog"'
	cr task exec --exec-id e1 vct3 sh -c 'echo exec-ctr; exit 4' </dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "ctr task exec: the exec's output and exit status 4" eval '[ $rc -eq 4 ] && grep -qx exec-ctr "$tmp/out"'
	cr task ps vct3 >"$tmp/out" 2>"$tmp/err"
	rc=$?
	vpid=$(cat $tmp/ctd/state/io.containerd.runtime.v2.task/vmmtest/vct3/init.pid 2>/dev/null)
	expect "ctr task ps: the task's process (the VM's vmm, the shim's init pid)" \
		eval '[ $rc -eq 0 ] && [ -n "$vpid" ] && grep -q "^$vpid[[:space:]]" "$tmp/out"'
	task_status() { cr task ls 2>/dev/null | awk -v id=vct3 '$1 == id {print $3}'; }
	cr task pause vct3 >"$tmp/out" 2>"$tmp/err"
	rc=$?
	st1=$(task_status)
	cr task resume vct3 >>"$tmp/out" 2>>"$tmp/err"
	rc2=$?
	st2=$(task_status)
	expect "ctr task pause and resume: PAUSED, then RUNNING" \
		eval '[ $rc -eq 0 ] && [ $rc2 -eq 0 ] && [ "$st1" = PAUSED ] && [ "$st2" = RUNNING ]'
	cr task kill -s SIGTERM vct3 >"$tmp/out" 2>"$tmp/err"
	rc=$?
	for _ in $(seq 300); do [ "$(task_status)" = STOPPED ] && break; sleep 1; done
	st=$(task_status)
	cr task delete vct3 >>"$tmp/out" 2>"$tmp/err.del"
	cat "$tmp/err.del" >>"$tmp/err"
	cr container delete vct3 >>"$tmp/out" 2>>"$tmp/err"
	expect "ctr task kill -s SIGTERM: the trap runs, the task stops with status 3 (ctr's task delete says so), nothing left" \
		eval '[ $rc -eq 0 ] && [ "$st" = STOPPED ] && grep -qx term-ctr "$clog" && grep -q "exit code 3" "$tmp/err.del" && [ -z "$(ls /run/containerd/runc/vmmtest 2>/dev/null)" ] && ! pgrep -x vmm >/dev/null'
	kill "$ctd_pid" 2>/dev/null
	wait "$ctd_pid" 2>/dev/null
}

# docker: Docker 20.10 (dockerd starts its own containerd and drives the runtime through the same
# shim)
containerd_docker() {
	if [ ! -x /usr/sbin/dockerd ] || [ ! -x /usr/bin/docker ]; then
		not_ok "engine tests: Docker is not installed (/usr/sbin/dockerd, /usr/bin/docker: scripts/install-deps.sh installs docker.io)"
		return
	fi
	dd_dir=$tmp/docker
	mkdir -p "$dd_dir"
	# dockerd writes /etc/docker/key.json: a tmpfs there where /etc is read-only (the nest)
	if ! { touch /etc/docker/.vmm-w && rm -f /etc/docker/.vmm-w; } 2>/dev/null; then
		mkdir -p /etc/docker 2>/dev/null
		mount -t tmpfs -o mode=0755 tmpfs /etc/docker
	fi
	cat >"$dd_dir/daemon.json" <<EOF
{"data-root": "$dd_dir/data", "exec-root": "$dd_dir/exec", "pidfile": "$dd_dir/pid",
 "hosts": ["unix://$dd_dir/docker.sock"], "iptables": false, "bridge": "none",
 "storage-driver": "vfs", "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 20000, "Soft": 20000}},
 "runtimes": {"vmm": {"path": "$oci"}}}
EOF
	/usr/sbin/dockerd --config-file "$dd_dir/daemon.json" >"$dd_dir/log" 2>&1 &
	dd_pid=$!
	for _ in $(seq 600); do [ -S "$dd_dir/docker.sock" ] && break; sleep 0.5; done
	dk() { timeout -k 5 "${PM_TIMEOUT:-300}" /usr/bin/docker -H "unix://$dd_dir/docker.sock" "$@"; }
	tar -C "$tmp/bbtree" -c . | dk import - vmmbb >"$tmp/out" 2>"$tmp/err"
	dk run --rm --runtime vmm --network none vmmbb /bin/echo hi-from-docker </dev/null >"$tmp/out" 2>>"$tmp/err"
	rc=$?
	[ $rc -eq 0 ] || tail -n 5 "$dd_dir/log" >>"$tmp/err"
	expect "docker run --rm --runtime vmm: echo's output, exit status 0" \
		eval '[ $rc -eq 0 ] && grep -qx hi-from-docker "$tmp/out"'
	kill "$dd_pid" 2>/dev/null
	wait "$dd_pid" 2>/dev/null
}

if podman_ready; then
	section ctr containerd_ctr
	section docker containerd_docker
fi
