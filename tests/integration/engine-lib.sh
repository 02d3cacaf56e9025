# The container engines' set-up, shared by the engine parts (engine-tests.sh: podman;
# containerd-tests.sh: containerd and Docker). Sourced by them from boot-tests.sh (its helpers
# not_ok, $tmp, $vmm, $vmlinux). The engines run where the KVM is (inside the nest here), with
# their storage on a tmpfs. The image is the busybox tree, imported offline.
oci=$(cd "$(dirname "$vmm")/../oci" && pwd)/vmm-oci
bb=${VMM_TEST_BUSYBOX_EROFS:-}
export VMM_KERNEL=$vmlinux

# podman_ready: podman and conmon with --runtime vmm as pm ARGS..., and the busybox tree
# imported as localhost/bb (also left in $tmp/bbtree); pm_cmd is the command pm runs. A failure
# is one not_ok, status 1.
podman_ready() {
	# ready already (both engine parts in one nest: VMM_TEST_ONLY="engine containerd")
	type pm >/dev/null 2>&1 && pm image exists localhost/bb 2>/dev/null && return 0
	if [ -z "$bb" ] || [ ! -f "$bb" ]; then
		not_ok "engine tests: no busybox rootfs image (VMM_TEST_BUSYBOX_EROFS=$bb)"
		return 1
	fi
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
	# podman's CNI network keeps its cache and addresses in /var/lib/cni: where /var/lib is
	# read-only (the nest), an overlay on it whose writes go to $tmp
	if ! { touch /var/lib/.vmm-w && rm -f /var/lib/.vmm-w; } 2>/dev/null; then
		mkdir -p "$tmp/varlib/up" "$tmp/varlib/work"
		mount -t overlay overlay -o "lowerdir=/var/lib,upperdir=$tmp/varlib/up,workdir=$tmp/varlib/work" /var/lib || {
			not_ok "engine tests: cannot make /var/lib writable (an overlay on it) for podman's network"
			return 1
		}
	fi
	cat >"$tmp/containers.conf" <<EOC
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime_supports_json = ["crun", "runc", "vmm"]
events_logger = "file"
cgroup_manager = "cgroupfs"
[engine.runtimes]
vmm = ["$oci"]
EOC
	export CONTAINERS_CONF=$tmp/containers.conf TMPDIR=/tmp
	pm_cmd=(podman --storage-driver vfs --root "$tmp/storage" --runroot "$tmp/runroot"
		--tmpdir "$tmp/libpod" --runtime vmm)
	pm() { timeout -k 5 "${PM_TIMEOUT:-300}" "${pm_cmd[@]}" "$@"; }
	local tree=$tmp/bbtree
	fsck.erofs --extract="$tree" "$bb" >"$tmp/err" 2>&1 &&
		tar -C "$tree" -c . | pm import - localhost/bb >"$tmp/out" 2>>"$tmp/err" || {
		not_ok "engine tests: cannot import the busybox tree as localhost/bb"
		return 1
	}
}

# wait_log NAME PATTERN [COUNT]: until `pm logs NAME` has COUNT (default 1) lines with PATTERN (0),
# or 300 s have passed (1)
wait_log() {
	local i
	for i in $(seq 300); do
		[ "$(pm logs "$1" 2>/dev/null | grep -c -- "$2")" -ge "${3:-1}" ] && return 0
		[ "$i" -lt 300 ] && sleep 1
	done
	return 1
}

# under_tty OUT COMMAND...: COMMAND with a terminal as its stdin, stdout and stderr (script's
# pty, as a user's shell has: podman -it, ctr -t need one); what it wrote in OUT without \r.
# Sets rc to COMMAND's exit status.
under_tty() {
	local out=$1
	shift
	SHELL=/bin/bash timeout -k 5 "${PM_TIMEOUT:-300}" script -qfec "$(printf '%q ' "$@")" "$out.raw" </dev/null >/dev/null 2>&1
	rc=$?
	tr -d '\r' <"$out.raw" >"$out"
}

# The container side of tty-resize.sh, as `sh -c "$tty_probe"`: waits (up to 300 s each) for
# its terminal to be 33x111, says "start 33 111", waits for another size and says it with the
# terminal's name.
tty_probe='i=0; until [ "$(stty size)" = "33 111" ] || [ $i -ge 3000 ]; do sleep 0.1; i=$((i+1)); done; echo "start $(stty size)"; until [ "$(stty size)" != "33 111" ] || [ $i -ge 6000 ]; do sleep 0.1; i=$((i+1)); done; echo "resized $(stty size) on $(tty)"'
