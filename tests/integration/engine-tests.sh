# Real container engines drive vmm-oci (docs/oci.md): podman 4.3 with conmon, from Debian, run
# where the KVM is (inside the nest here), with their storage on a tmpfs. Sourced by boot-tests.sh
# (its helpers expect, ok, not_ok, wait_for, $tmp, $vmm, $vmlinux). The image is the busybox
# tree, imported offline. Each podman command boots a VM: the list is kept short.
oci=$(cd "$(dirname "$vmm")/../oci" && pwd)/vmm-oci
bb=${VMM_TEST_BUSYBOX_EROFS:-}
export VMM_KERNEL=$vmlinux

engines_ready() {
	command -v podman >/dev/null && command -v conmon >/dev/null || {
		not_ok "engine tests: podman and conmon are not installed (scripts/install-deps.sh installs them)"
		return 1
	}
	[ -x "$oci" ] || { not_ok "engine tests: $oci not built"; return 1; }
	# The engines' state on tmpfs: the nest's / is the host's, read-only. podman's storage and
	# run directories under $tmp (the nest's /tmp is a tmpfs), a tmpfs over /run (conmon,
	# vmm-oci's records), a cgroup2 tree for cgroupfs.
	mountpoint -q /run || mount -t tmpfs -o mode=0755 tmpfs /run || {
		not_ok "engine tests: cannot mount a tmpfs on /run"
		return 1
	}
	mountpoint -q /sys/fs/cgroup || mount -t cgroup2 none /sys/fs/cgroup 2>/dev/null
	cat >"$tmp/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime_supports_json = ["crun", "runc", "vmm"]
events_logger = "file"
cgroup_manager = "cgroupfs"
[engine.runtimes]
vmm = ["$oci"]
EOF
	export CONTAINERS_CONF=$tmp/containers.conf TMPDIR=/tmp
	pm() {
		timeout -k 5 "${PM_TIMEOUT:-300}" podman --storage-driver vfs --root "$tmp/storage" \
			--runroot "$tmp/runroot" --tmpdir "$tmp/libpod" --runtime vmm "$@"
	}
	local tree=$tmp/bbtree
	fsck.erofs --extract="$tree" "$bb" >"$tmp/err" 2>&1 &&
		tar -C "$tree" -c . | pm import - localhost/bb >"$tmp/out" 2>>"$tmp/err" || {
		not_ok "engine tests: cannot import the busybox tree as localhost/bb"
		return 1
	}
}

if [ -z "$bb" ] || [ ! -f "$bb" ]; then
	not_ok "engine tests: no busybox rootfs image (VMM_TEST_BUSYBOX_EROFS=$bb)"
elif engines_ready; then
	pm run --rm --network none localhost/bb echo hi-from-podman </dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "podman run --rm --runtime vmm: echo's output and exit status 0" \
		eval '[ $rc -eq 0 ] && [ "$(cat "$tmp/out")" = hi-from-podman ]'
	pm run --rm --network none localhost/bb sh -c 'exit 7' </dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "podman run: the container's exit status 7 is podman's" eval '[ $rc -eq 7 ]'

	pm run --rm --network none localhost/bb /no/such/command </dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "podman run of a command not in the image: podman's exit status is 127" \
		eval '[ $rc -eq 127 ]'

	pm run --rm --network none --cap-drop ALL -u 1000:1000 localhost/bb \
		sh -c 'grep -E "^(CapEff|Seccomp):" /proc/self/status; echo "ids $(id -u):$(id -g) nofile $(ulimit -n)"; ping -c 1 -W 5 127.0.0.1 >/dev/null 2>&1 && echo ping-ok || echo ping-refused' \
		</dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "podman run --cap-drop ALL -u 1000:1000: no capabilities (ping refused), podman's seccomp profile installed, the user and the nofile limit" \
		eval '[ $rc -eq 0 ] && grep -q "^CapEff:[[:space:]]*0000000000000000" "$tmp/out" && grep -q "^Seccomp:[[:space:]]*2" "$tmp/out" && grep -qx "ids 1000:1000 nofile 20000" "$tmp/out" && grep -qx ping-refused "$tmp/out"'

	pm run --rm --network none --read-only localhost/bb \
		sh -c 'echo x >/new; echo w >/tmp/w && cat /tmp/w' </dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "podman run --read-only: the root refuses writes (EROFS), podman's tmpfs /tmp takes them, the host's tree is unchanged" \
		eval '[ $rc -eq 0 ] && grep -q "/new: Read-only file system" "$tmp/err" && grep -qx w "$tmp/out" && [ -z "$(find "$tmp/storage" -path "*/new" 2>/dev/null | head -n 1)" ]'

	mkdir -p "$tmp/vol" "$tmp/volro"
	echo host-data >"$tmp/volro/in"
	echo -n abc | pm run --rm -i --network none -v "$tmp/vol:/vol" -v "$tmp/volro/in:/in.txt:ro" localhost/bb \
		sh -c 'cat >/vol/from-stdin; cat /in.txt; echo w >/vol/out; grep -c . /etc/hosts >/dev/null && hostname' \
		>"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "podman run -i -v DIR:/vol -v FILE:/in.txt:ro: stdin, a file volume, writes land on the host" \
		eval '[ $rc -eq 0 ] && grep -qx host-data "$tmp/out" && [ "$(cat "$tmp/vol/from-stdin")" = abc ] && [ "$(cat "$tmp/vol/out")" = w ]'

	# one VM for the resources, --init and a named volume
	pm volume create vnamed >"$tmp/out" 2>"$tmp/err"
	pm run --rm --network none --memory 256m --cpus 2 --init --cap-add NET_RAW -v vnamed:/data localhost/bb \
		sh -c 'echo named >/data/f; echo "cpus $(nproc)"; grep MemTotal /proc/meminfo; tr "\0" " " </proc/$PPID/cmdline; echo; ping -c 1 -W 5 127.0.0.1 >/dev/null 2>&1 && echo ping-ok' \
		</dev/null >"$tmp/out" 2>>"$tmp/err"
	rc=$?
	vdir=$(pm volume inspect -f '{{.Mountpoint}}' vnamed 2>>"$tmp/err")
	memkb=$(awk '/^MemTotal:/ {print $2}' "$tmp/out")
	echo "# podman --memory 256m: the guest's MemTotal is ${memkb:-?} kB"
	expect "podman run --memory 256m --cpus 2 --init --cap-add NET_RAW -v NAMED:/data: 2 vCPUs, a 256 MiB guest, catatonit as the parent, ping works, the write in the volume" \
		eval '[ $rc -eq 0 ] && grep -qx "cpus 2" "$tmp/out" && [ "${memkb:-0}" -gt 180000 ] && [ "${memkb:-0}" -le 262144 ] && grep -q "^/run/podman-init -- sh -c" "$tmp/out" && grep -qx ping-ok "$tmp/out" && [ "$(cat "$vdir/f" 2>/dev/null)" = named ]'

	pm run -d --name vd1 --network none localhost/bb \
		sh -c 'trap "echo term-trapped; exit 0" TERM; echo d1-up; while :; do sleep 1; done' </dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	up=false
	for _ in $(seq 300); do
		pm logs vd1 2>/dev/null | grep -q d1-up && { up=true; break; }
		sleep 1
	done
	expect "podman run -d: the container runs, podman logs shows its stdout" eval '[ $rc -eq 0 ] && $up'
	pm pause vd1 >"$tmp/out" 2>"$tmp/err"
	rc=$?
	st1=$(pm inspect -f '{{.State.Status}}' vd1 2>>"$tmp/err")
	pm unpause vd1 >>"$tmp/out" 2>>"$tmp/err"
	rc2=$?
	st2=$(pm inspect -f '{{.State.Status}}' vd1 2>>"$tmp/err")
	expect "podman pause and unpause: the VM pauses and goes on (paused, then running)" \
		eval '[ $rc -eq 0 ] && [ $rc2 -eq 0 ] && [ "$st1" = paused ] && [ "$st2" = running ]'
	pm exec vd1 sh -c 'echo exec-ok; echo made >/made-by-exec; grep -E "^(CapBnd|Seccomp):" /proc/self/status; exit 9' \
		</dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	bnd=$(awk '/^CapBnd:/ {print $2}' "$tmp/out")
	expect "podman exec: output, exit status 9, and the container's settings (no CAP_SYS_ADMIN, its seccomp profile)" \
		eval '[ $rc -eq 9 ] && grep -qx exec-ok "$tmp/out" && [ -n "$bnd" ] && [ $(((16#${bnd:-0} >> 21) & 1)) -eq 0 ] && grep -q "^Seccomp:[[:space:]]*2" "$tmp/out"'
	pm diff vd1 >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "podman diff of the running container lists the file the exec wrote" \
		eval '[ $rc -eq 0 ] && grep -q "^A /made-by-exec" "$tmp/out"'
	pm stop -t 60 vd1 >"$tmp/out" 2>"$tmp/err"
	rc=$?
	st=$(pm inspect -f '{{.State.ExitCode}}' vd1 2>>"$tmp/err")
	pm logs vd1 >"$tmp/out" 2>&1
	expect "podman stop: TERM reaches the container's trap, exit code 0" \
		eval '[ $rc -eq 0 ] && [ "$st" = 0 ] && grep -q term-trapped "$tmp/out"'
	# (podman cp into a running container joins the mount namespace of its process, vmm's,
	# whose root is the host's, not the container's: docs/oci.md)
	rm -f "$tmp/cp-out"
	pm cp vd1:/made-by-exec "$tmp/cp-out" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "podman cp from the stopped container: the file the exec wrote" \
		eval '[ $rc -eq 0 ] && [ "$(cat "$tmp/cp-out" 2>/dev/null)" = made ]'
	pm rm -f vd1 >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "podman rm: the container and vmm-oci's records are gone" \
		eval '[ $rc -eq 0 ] && [ -z "$(ls /run/vmm-oci 2>/dev/null)" ]'

	# restart of a process that ignores TERM (the KILL path), then rm -f of the running one and
	# of one only created
	pm run -d --name vd2 --network none localhost/bb \
		sh -c 'trap "" TERM; echo d2-up; while :; do sleep 1; done' </dev/null >"$tmp/out" 2>"$tmp/err"
	ups() { pm logs vd2 2>/dev/null | grep -c d2-up; }
	for _ in $(seq 300); do [ "$(ups)" -ge 1 ] && break; sleep 1; done
	pm restart -t 3 vd2 >"$tmp/out" 2>>"$tmp/err"
	rc=$?
	for _ in $(seq 300); do [ "$(ups)" -ge 2 ] && break; sleep 1; done
	st=$(pm inspect -f '{{.State.Status}}' vd2 2>>"$tmp/err")
	expect "podman restart -t 3 of a process that ignores TERM: killed, started again, running" \
		eval '[ $rc -eq 0 ] && [ "$(ups)" -ge 2 ] && [ "$st" = running ]'
	pm create --name vc1 --network none localhost/bb true >"$tmp/out" 2>>"$tmp/err"
	rc=$?
	pm rm -f vd2 >>"$tmp/out" 2>>"$tmp/err"
	rc2=$?
	pm rm -f vc1 >>"$tmp/out" 2>>"$tmp/err"
	rc3=$?
	expect "podman rm -f of a running and of a created container: both gone, no vmm left" \
		eval '[ $rc -eq 0 ] && [ $rc2 -eq 0 ] && [ $rc3 -eq 0 ] && [ -z "$(ls /run/vmm-oci 2>/dev/null)" ] && ! pgrep -x vmm >/dev/null'
fi

# containerd 1.6 and its runc v2 shim (what Kubernetes' CRI and Docker use): `ctr run
# --runc-binary vmm-oci`, with the image from podman save.
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
if [ -n "$bb" ] && [ -f "$bb" ] && type pm >/dev/null 2>&1 && ctr_ready; then
	cr run --rm --snapshotter native --runc-binary "$oci" "$ctr_img" vct1 sh -c 'echo hi-from-ctr; exit 5' \
		</dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "ctr run --rm --runc-binary vmm-oci: output, exit status 5, the shim's records gone" \
		eval '[ $rc -eq 5 ] && grep -qx hi-from-ctr "$tmp/out" && [ -z "$(ls /run/containerd/runc/vmmtest 2>/dev/null)" ]'
	kill "$ctd_pid" 2>/dev/null
	wait "$ctd_pid" 2>/dev/null
fi

# Docker 20.10 (dockerd starts its own containerd and drives the runtime through the same shim)
if [ -n "$bb" ] && [ -f "$bb" ] && { [ ! -x /usr/sbin/dockerd ] || [ ! -x /usr/bin/docker ]; }; then
	not_ok "engine tests: Docker is not installed (/usr/sbin/dockerd, /usr/bin/docker: scripts/install-deps.sh installs docker.io)"
elif [ -n "$bb" ] && [ -f "$bb" ]; then
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
fi
