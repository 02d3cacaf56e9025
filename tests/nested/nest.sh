#!/usr/bin/env bash
# nest.sh: run one command where KVM works, on a machine that has no /dev/kvm.
#
#   tests/nested/nest.sh [--mem MIB] [--cpus N] [--timeout SECONDS] [--tries N]
#                        [--rw DIR]... [--quiet] -- COMMAND [ARGS...]
#
# Boots a throw-away QEMU guest ("L1") in TCG mode with `-cpu max`, whose
# emulated CPU has AMD SVM.  L1 runs the host's own Debian kernel from /boot,
# loads kvm-amd (so L1 has a real /dev/kvm), mounts the host's / read-only over
# 9p at /host, mounts every --rw DIR read-write at the same path under /host,
# then moves /host onto / in a mount namespace of its own (switch_root's way,
# not a bare chroot) and runs COMMAND as root in the caller's working
# directory.  So COMMAND sees the same binaries at the same paths as on the
# host, plus a working /dev/kvm.  The exit status of nest.sh is COMMAND's, or
# 125 when the nest itself failed (no QEMU, no kernel, L1 broke, timeout).
# --tries N boots L1 up to N times (default 1) while L1 stalls or crashes before the command
# reports its status, or the command finds L1 broken (it exits 125 with a line "nest-broken: WHY"
# on its stderr: a process SIGKILL cannot end, say); each boot runs the command from the start,
# and its output is streamed again. For commands that may simply be run again (the benchmarks).
#
# Environment inside: the caller's exported variables (minus PWD, OLDPWD,
# SHLVL, _), plus VMM_NESTED=1.  /tmp, /dev/shm are fresh tmpfs (so host
# paths under /tmp are hidden unless passed with --rw), /proc, /sys, /dev are
# L1's own; everything else not under --rw is read-only.  stdin is /dev/null.
#
# Output: COMMAND's stdout and stderr are redirected (inside L1) to two files
# in a per-run directory that is shared read-write over 9p; the host follows
# them with `tail -f` and copies them to nest.sh's stdout and stderr.  We do
# NOT take COMMAND's output from the serial console: a serial tty rewrites
# bytes (\n -> \r\n, tab/echo/control handling, no binary safety), merges
# stdout with stderr, and kernel messages can land in the middle of a line.
# The 9p files are byte-exact, keep stdout and stderr apart, and still stream
# live.  The exit status is likewise written to a file in that directory (a
# NEST-EXIT-STATUS=<n> line also goes to the console for humans).  The
# console itself (L1's init progress and kernel warnings/errors) is streamed to
# stderr, unless --quiet, in which case it is shown only if the nest failed.
#
# Only for tests: L1 is not a security boundary and shares the whole host /.
#
# Tunables by environment: NEST_MEM, NEST_CPUS, NEST_TIMEOUT, NEST_TRIES (defaults for the
# options), NEST_KERNEL_VERSION (pick a kernel from /lib/modules),
# NEST_MODULES (extra modules to load in L1, e.g. "tun vhost_net"), NEST_CMDLINE (more
# L1 kernel parameters, e.g. "loglevel=7"),
# NEST_TROUBLE_FILE (where to write the trouble L1's kernel reported while the command ran, when
# it still finished), NEST_FAIL_FILE (where to write why the nest failed, after "retry=1 " when
# another boot may fare better: L1 stalled or crashed, not a timeout or an init failure),
# NEST_KVM_AMD (kvm-amd's parameters in L1, e.g. "npt=0"), NEST_CPU (QEMU's -cpu for L1, max by
# default; it needs svm), NEST_TCG_THREAD (QEMU's TCG
# threading: multi or single; tests/nested/soak-fs.sh compares such settings),
# VMM_TEST_DEADLINE (a time, in seconds since the epoch, by which a test run must end: no L1
# boots after it, --timeout is cut to it, and a failed try is not repeated when less time is left
# than it took; CI sets it so that a nest in trouble costs a failed test, not the whole run),
# NEST_QEMU (QEMU binary), NEST_KEEP=1 (keep the run directory, for debugging),
# NEST_NO_WATCHDOG=1 (do not stop L1 when its kernel has reported a soft lockup or an RCU stall
# NEST_STALL_REPORTS times, 3 by default, or when its 5-second heartbeat stops for
# NEST_HEARTBEAT_S seconds, 120 by default). L1 runs without transparent huge pages: kcompactd
# was seen stalling it under TCG. The L1 initramfs is cached per kernel version in
# ${XDG_CACHE_HOME:-$HOME/.cache}/vmm/nest/.
set -Eeuo pipefail
trap 'say "internal error: \"$BASH_COMMAND\" failed (status $?) at line $LINENO"; exit 125' ERR

readonly NEST_FORMAT=2 # bump when the initramfs layout or /init changes
readonly NEST_STATUS=125
readonly P9_OPTS='trans=virtio,version=9p2000.L,msize=262144'

prog=nest
mem=${NEST_MEM:-4096}
cpus=${NEST_CPUS:-2}
tcg_thread=${NEST_TCG_THREAD:-multi}
cpu_model=${NEST_CPU:-max}
kvm_amd_params=${NEST_KVM_AMD:-}
timeout_s=${NEST_TIMEOUT:-1800}
tries=${NEST_TRIES:-1}
quiet=0
rw_dirs=()

say() { printf '%s: %s\n' "$prog" "$*" >&2; }
fail() {
	say "$*"
	exit "$NEST_STATUS"
}

usage() {
	cat <<'EOF'
usage: nest.sh [--mem MIB] [--cpus N] [--timeout SECONDS] [--tries N] [--rw DIR]...
               [--quiet] -- COMMAND [ARGS...]
Runs COMMAND inside a QEMU (TCG, -cpu max) guest that has a working /dev/kvm,
with the host's / mounted read-only and each DIR read-write at the same paths.
Exits with COMMAND's status, or 125 if the nest itself failed.
EOF
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# ---------------------------------------------------------------- options
while (($#)); do
	case $1 in
	--mem | --cpus | --timeout | --tries | --rw)
		(($# >= 2)) || fail "$1 needs an argument"
		opt=$1 val=$2
		shift 2
		;;
	--mem=* | --cpus=* | --timeout=* | --tries=* | --rw=*)
		opt=${1%%=*} val=${1#*=}
		shift
		;;
	--quiet | -q)
		quiet=1
		shift
		continue
		;;
	-h | --help)
		usage
		exit 0
		;;
	--)
		shift
		break
		;;
	*)
		usage >&2
		fail "unexpected argument '$1' (put the command after --)"
		;;
	esac
	case $opt in
	--mem) mem=$val ;;
	--cpus) cpus=$val ;;
	--timeout) timeout_s=$val ;;
	--tries) tries=$val ;;
	--rw) rw_dirs+=("$val") ;;
	esac
done
(($#)) || {
	usage >&2
	fail "no command given"
}
if ! is_uint "$mem" || ((mem < 256)); then fail "--mem wants MiB >= 256, got '$mem'"; fi
if ! is_uint "$cpus" || ((cpus < 1)); then fail "--cpus wants a positive number, got '$cpus'"; fi
if ! is_uint "$tries" || ((tries < 1)); then fail "--tries wants a positive number, got '$tries'"; fi
if ! is_uint "$timeout_s" || ((timeout_s < 1)); then
	fail "--timeout wants seconds >= 1, got '$timeout_s'"
fi
timeout_why=
if [[ -n ${VMM_TEST_DEADLINE:-} ]] && ! is_uint "$VMM_TEST_DEADLINE"; then
	fail "VMM_TEST_DEADLINE wants a time in seconds since the epoch (date +%s), got '$VMM_TEST_DEADLINE'"
fi

# ---------------------------------------------------------------- host tools
qemu=${NEST_QEMU:-qemu-system-x86_64}
command -v "$qemu" >/dev/null || fail "$qemu not found: apt-get install qemu-system-x86"
for tool in cpio tail timeout sha256sum; do
	command -v "$tool" >/dev/null || fail "$tool not found"
done
busybox=$(command -v busybox || true)
[[ -n $busybox ]] || fail "busybox not found: apt-get install busybox-static"
# (ldd's output is captured first: `ldd | grep -q` can die of SIGPIPE under pipefail)
ldd_out=$(LC_ALL=C ldd "$busybox" 2>&1 || true)
if [[ $ldd_out != *'not a dynamic executable'* ]]; then
	fail "$busybox is dynamically linked, L1 needs a static one: apt-get install busybox-static"
fi

# ---------------------------------------------------------------- kernel
# The newest /boot/vmlinuz-<ver> whose /lib/modules/<ver> has kvm-amd.
find_kvm_amd() { # ver -> path of kvm-amd.ko[.xz|.zst|.gz] or nothing
	local f
	for f in "/lib/modules/$1/kernel/arch/x86/kvm/kvm-amd.ko"{,.xz,.zst,.gz}; do
		if [[ -f $f ]]; then
			printf '%s\n' "$f"
			return 0
		fi
	done
	return 1
}
kver=
if [[ -n ${NEST_KERNEL_VERSION:-} ]]; then
	kver=$NEST_KERNEL_VERSION
	if [[ ! -r /boot/vmlinuz-$kver ]] || ! find_kvm_amd "$kver" >/dev/null; then
		fail "NEST_KERNEL_VERSION=$kver: no readable /boot/vmlinuz-$kver with kvm-amd in /lib/modules/$kver"
	fi
else
	while IFS= read -r vmlinuz; do
		v=${vmlinuz#/boot/vmlinuz-}
		if [[ -r $vmlinuz ]] && find_kvm_amd "$v" >/dev/null; then
			kver=$v
			break
		fi
	done < <(compgen -G '/boot/vmlinuz-*' | sort -rV)
fi
[[ -n $kver ]] || fail "no Debian kernel with kvm-amd found: apt-get install linux-image-amd64"
kernel=/boot/vmlinuz-$kver
moddir=/lib/modules/$kver
[[ -r $moddir/modules.dep ]] || fail "$moddir/modules.dep missing: run depmod $kver"

# ---------------------------------------------------------------- modules
# Dependency order from modules.dep: a depth-first walk that emits a module
# after everything it depends on.  Names compare with '-' and '_' equal.
declare -A mod_path=() mod_deps=()
modname() { # path -> canonical module name, in $REPLY (no subshell: runs per line)
	REPLY=${1##*/}
	REPLY=${REPLY%%.ko*}
	REPLY=${REPLY//-/_}
}
while IFS= read -r line; do
	path=${line%%:*}
	modname "$path"
	[[ $path == /* ]] || path=$moddir/$path
	mod_path[$REPLY]=$path
	mod_deps[$REPLY]=${line#*:}
done <"$moddir/modules.dep"

mod_order=()
declare -A mod_seen=()
add_module() { # name
	local name=${1//-/_} d
	[[ -z ${mod_seen[$name]:-} ]] || return 0
	mod_seen[$name]=1
	[[ -n ${mod_path[$name]:-} ]] || fail "module $1 not found in $moddir/modules.dep (built in, or missing?)"
	for d in ${mod_deps[$name]}; do
		modname "$d"
		add_module "$REPLY"
	done
	mod_order+=("${mod_path[$name]}")
}
# virtio_pci + 9pnet_virtio + 9p: the 9p shares; kvm_amd: /dev/kvm.
# shellcheck disable=SC2086 # NEST_MODULES is a word list on purpose
for m in virtio_pci 9pnet_virtio 9p kvm_amd ${NEST_MODULES:-}; do
	add_module "$m"
done

# ---------------------------------------------------------------- temp dir
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nest.XXXXXXXX")
qpid=
tail_pids=()
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
	local rc=$?
	trap - ERR
	if [[ -n $qpid ]] && kill -0 "$qpid" 2>/dev/null; then
		kill -TERM "$qpid" 2>/dev/null || true
		wait "$qpid" 2>/dev/null || true
	fi
	for p in "${tail_pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	if [[ -n ${NEST_KEEP:-} ]]; then
		say "NEST_KEEP: run files left in $tmp"
	else
		rm -rf -- "$tmp"
	fi
	return "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---------------------------------------------------------------- L1 /init
# Static: everything that changes per run comes from /nestio (the run dir).
read -r -d '' init_script <<'INIT' || true
#!/bin/sh
# /init of the nest.sh L1 guest (generated; see tests/nested/nest.sh).
PATH=/bin
export PATH
P9='@P9_OPTS@'
say() { echo "nest-l1: $*"; }
die() {
	say "FAILED: $*"
	dmesg 2>/dev/null | tail -n 15
	echo "NEST-INIT-FAILED"
	poweroff -f
	sleep 10
	exit 1 # PID 1 exits -> panic -> panic=-1 reboot -> QEMU -no-reboot exits
}
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r m args; do
	# shellcheck disable=SC2086 # the module's parameters, a word list
	insmod "/modules/$m" $args || die "insmod $m $args"
done </modules.order
[ -c /dev/kvm ] || die "no /dev/kvm after insmod kvm-amd (no SVM in the emulated CPU?)"

mount -t 9p -o "$P9,cache=mmap" nestio /nestio || die "mount of the run directory"
mount -t 9p -o "$P9,ro" hostroot /host || die "mount of the host root"
mount -t proc proc /host/proc || die "mount /host/proc"
mount -t sysfs sysfs /host/sys || die "mount /host/sys"
mount -t devtmpfs devtmpfs /host/dev || die "mount /host/dev"
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /host/dev/pts || die "mount /host/dev/pts"
mount -t tmpfs -o mode=1777 tmpfs /host/dev/shm || die "mount /host/dev/shm"
mount -t tmpfs -o mode=1777 tmpfs /host/tmp || die "mount /host/tmp"
[ -e /host/dev/fd ] || ln -s /proc/self/fd /host/dev/fd
[ -e /host/dev/stdin ] || ln -s /proc/self/fd/0 /host/dev/stdin
[ -e /host/dev/stdout ] || ln -s /proc/self/fd/1 /host/dev/stdout
[ -e /host/dev/stderr ] || ln -s /proc/self/fd/2 /host/dev/stderr
ip link set lo up 2>/dev/null

# config.sh calls nest_rw TAG DIR for each --rw DIR, parents first.
nest_rw() {
	mkdir -p "/host$2" 2>/dev/null
	mount -t 9p -o "$P9,cache=mmap" "$1" "/host$2" || die "mount --rw $2"
}
NEST_BASH=/bin/bash
. /nestio/config.sh

say "up in $(cut -d' ' -f1 /proc/uptime)s, /dev/kvm ready, running the command"
# Heartbeat for the host's watchdog: a hung L1 (a CPU stuck with interrupts off
# reports no soft lockup) stops touching this file.
(while :; do cut -d' ' -f1 /proc/uptime >/nestio/heartbeat; sleep 5; done) &
# The command script comes in on fd 3 (closed again by the script itself),
# so it need not be visible inside the new root.  env -i: the script sets the
# environment.  The command runs in a mount namespace of its own where the
# host's root is moved onto / (as switch_root does), not merely chrooted
# into: then the namespace's root is the host's, as on a real machine, and
# a process that joins a container's mount namespace (podman cp: setns)
# lands on the root the container pivoted into, not on this initramfs.
env -i unshare -m sh -c 'cd /host && mount --move . / && exec chroot . "$0" /proc/self/fd/3' \
	"$NEST_BASH" 3</nestio/cmd.sh </dev/null >>/nestio/stdout 2>>/nestio/stderr
rc=$?
echo "$rc" >/nestio/status.tmp && mv /nestio/status.tmp /nestio/status
echo "NEST-EXIT-STATUS=$rc"
sync
poweroff -f
sleep 10
exit 1
INIT
init_script=${init_script//@P9_OPTS@/$P9_OPTS}

# ---------------------------------------------------------------- initramfs
# A newc cpio entry made by hand, so /dev/console exists from the first
# instruction of /init without needing root (mknod) on the host.
newc_entry() { # ino mode rdevmajor rdevminor name
	local ns=$((${#5} + 1))
	printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%s\0' \
		"$1" "$2" 0 0 1 0 0 0 0 "$3" "$4" "$ns" 0 "$5"
	head -c $(((4 - (110 + ns) % 4) % 4)) /dev/zero
}
make_initramfs() { # out
	local out=$1 root=$tmp/initramfs applet m base
	mkdir -p "$root"/{bin,dev,proc,sys,host,nestio,modules}
	cp "$busybox" "$root/bin/busybox"
	for applet in $("$busybox" --list); do
		[[ $applet == busybox ]] || ln -s busybox "$root/bin/$applet"
	done
	: >"$root/modules.order"
	for m in "${mod_order[@]}"; do
		base=${m##*/}
		base=${base%%.ko*}.ko
		case $m in
		*.ko.xz) xz -dc -- "$m" >"$root/modules/$base" ;;
		*.ko.zst) zstd -dcq -- "$m" >"$root/modules/$base" ;;
		*.ko.gz) gzip -dc -- "$m" >"$root/modules/$base" ;;
		*) cp -- "$m" "$root/modules/$base" ;;
		esac
		args=
		[[ $base == kvm-amd.ko ]] && args=$kvm_amd_params
		printf '%s %s\n' "$base" "$args" >>"$root/modules.order"
	done
	printf '%s\n' "$init_script" >"$root/init"
	chmod 0755 "$root/init"
	{
		newc_entry 1 $((0040755)) 0 0 dev
		newc_entry 2 $((0020600)) 5 1 dev/console
		newc_entry 0 0 0 0 'TRAILER!!!'
		(cd "$root" && find . -mindepth 1 -printf '%P\0' | LC_ALL=C sort -z |
			cpio --null -o -H newc --quiet -R 0:0)
	} >"$out.tmp.$$"
	mv -f -- "$out.tmp.$$" "$out"
	rm -rf -- "$root"
}

key=$(
	{
		printf '%s\n' "$NEST_FORMAT" "$kver" "$init_script" "$busybox" "$kvm_amd_params"
		stat -L -c '%s %Y' "$busybox"
		for m in "${mod_order[@]}"; do stat -c '%n %s %Y' -- "$m"; done
	} | sha256sum
)
key=${key:0:16}
cache_dir=${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/vmm/nest/$kver
initrd=$cache_dir/initramfs-$key.cpio
if [[ ! -s $initrd ]]; then
	if mkdir -p "$cache_dir" 2>/dev/null && [[ -w $cache_dir ]]; then
		make_initramfs "$initrd"
	else
		initrd=$tmp/initramfs.cpio
		make_initramfs "$initrd"
	fi
fi

# ---------------------------------------------------------------- run dir
io=$tmp/io
mkdir -p "$io"
: >"$io/stdout"
: >"$io/stderr"
: >"$io/console"

sq() { # quote for POSIX sh (busybox ash reads config.sh)
	local s=$1
	printf "'%s'" "${s//\'/\'\\\'\'}"
}

# --rw dirs: canonical paths, parents before children, no duplicates.
declare -A rw_seen=()
rw_canon=()
for d in "${rw_dirs[@]}"; do
	[[ -d $d ]] || fail "--rw $d: not a directory"
	c=$(realpath -e -- "$d")
	[[ $c == / ]] && fail "--rw /: not supported (the root is shared read-only)"
	[[ -z ${rw_seen[$c]:-} ]] || continue
	rw_seen[$c]=1
	rw_canon+=("$c")
done
if ((${#rw_canon[@]})); then
	mapfile -d '' -t rw_canon < <(
		for c in "${rw_canon[@]}"; do
			s=${c//[!\/]/}
			printf '%06d %s\0' "${#s}" "$c"
		done | LC_ALL=C sort -z | while IFS= read -r -d '' l; do printf '%s\0' "${l#* }"; done
	)
fi

virtfs_path() { printf '%s' "${1//,/,,}"; } # QEMU option syntax: ',' doubles
# shellcheck disable=SC2054 # the commas are QEMU's
qemu_args=(
	-accel "tcg,thread=$tcg_thread" -cpu "$cpu_model" -smp "$cpus" -m "$mem"
	-nodefaults -no-user-config -nographic -no-reboot
	-chardev "file,id=con,path=$(virtfs_path "$io/console")" -serial chardev:con
	-kernel "$kernel" -initrd "$initrd"
	-append "console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off transparent_hugepage=never ${NEST_CMDLINE:-}"
	-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
	-virtfs "local,path=$(virtfs_path "$io"),mount_tag=nestio,security_model=none,multidevs=remap"
)
{
	printf 'NEST_BASH=%s\n' "$(sq "$BASH")"
	i=0
	for c in "${rw_canon[@]}"; do
		printf 'nest_rw rw%d %s\n' "$i" "$(sq "$c")"
		qemu_args+=(-virtfs "local,path=$(virtfs_path "$c"),mount_tag=rw$i,security_model=none,multidevs=remap")
		i=$((i + 1))
	done
} >"$io/config.sh"

# The command script, run by the host's bash in the host's root.
{
	printf 'exec 3<&-\n'
	while IFS= read -r name; do
		case $name in
		PWD | OLDPWD | SHLVL | _ | VMM_NESTED) continue ;;
		esac
		printf 'export %s=%q\n' "$name" "${!name}"
	done < <(compgen -e)
	printf 'export VMM_NESTED=1\n'
	printf 'cd -- %q 2>/dev/null || cd -- %q 2>/dev/null || cd /\n' "$PWD" "$(pwd -P)"
	printf 'exec'
	printf ' %q' "$@"
	printf '\n'
} >"$io/cmd.sh"

# ---------------------------------------------------------------- run L1
console_filter() {
	# Drop CRs, terminal escapes (SeaBIOS resets and clears the screen), the
	# firmware banner, the marker line and the power-off message.
	sed -u -e 's/\r//g' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1b[c78]//g' \
		-e 's/^SeaBIOS (version [^)]*)//' -e 's/^Booting from ROM\.*//' -e '/^NEST-EXIT-STATUS=/d' \
		-e '/^\[ *[0-9.]*\] reboot: Power down$/d' -e '/^$/d'
}
# Stall watchdog: under TCG an overloaded host (or an emulation bug) can leave an L1 CPU stuck;
# the L1 kernel then reports a soft lockup or an RCU stall and may never finish. Such a nest is
# not to be trusted: stop it (with a marker) instead of waiting for --timeout.
readonly STALL_RE='soft lockup - CPU|self-detected stall|detected stalls on CPUs|blocked for more than [0-9]+ seconds'
# What else in L1's console means its kernel was in trouble (at loglevel=3 only reports of level
# CRIT and above reach it): oopses, BUGs, panics, stalls, hung tasks.
readonly TROUBLE_RE="^\[ *[0-9.]+\] .*(BUG:|Oops|general protection|Kernel panic|stack guard page|WARNING:|INFO: task|$STALL_RE)"
# L1 also touches $io/heartbeat every 5 s while the command runs; a heartbeat older than
# NEST_HEARTBEAT_S (default 120) seconds means L1 hung without a word (seen: a CPU stuck with
# interrupts off in L1's KVM, which no soft-lockup detector reports).
heartbeat_s=${NEST_HEARTBEAT_S:-120}
# One stall report alone is not enough: under TCG a CPU can be held off for the 20 s the soft
# lockup detector waits (seen on an idle host, kworker and kcompactd) and then go on. The
# detectors report again while the stall lasts, so the third report (about a minute stuck) stops
# L1.
stall_reports=${NEST_STALL_REPORTS:-3}
watch_stalls() {
	local age done_at=
	while kill -0 "$qpid" 2>/dev/null; do
		# The command's status is in, but L1 has not powered off 30 s later (a process stuck in
		# its kernel can hold up the sync before the power-off): the result stands, QEMU goes.
		if [[ -e $io/status ]]; then
			done_at=${done_at:-$SECONDS}
			if ((SECONDS - done_at > 30)); then
				kill -TERM "$qpid" 2>/dev/null
				return
			fi
		fi
		if (($(grep -cE "$STALL_RE" "$io/console" 2>/dev/null || true) >= stall_reports)); then
			grep -E "$STALL_RE" "$io/console" | tail -n 1 | tr -d '\r' >"$io/stalled"
			kill -TERM "$qpid" 2>/dev/null
			return
		fi
		if [[ -e $io/heartbeat && ! -e $io/status ]]; then
			age=$(($(date +%s) - $(stat -c %Y "$io/heartbeat")))
			if ((age > heartbeat_s)); then
				echo "no heartbeat from L1 for ${age} s (hung)" >"$io/stalled"
				kill -TERM "$qpid" 2>/dev/null
				return
			fi
		fi
		sleep 1
	done
}
show_console() {
	if ((quiet)) && [[ -s $io/console ]]; then
		say "L1 console:"
		console_filter <"$io/console" >&2
	fi
}

# boot_l1: one boot of L1 that runs the command. Returns 0 when the command reported its status
# (in $io/status); otherwise 1 with the reason in $why and $retry=1 when another boot may fare
# better (L1 stalled or crashed; not a timeout, which may be the command's own hang, nor an init
# failure, which would fail again).
boot_l1() {
	local start=$SECONDS qrc=0 elapsed p b
	why= retry=0
	: >"$io/stdout"
	: >"$io/stderr"
	: >"$io/console"
	rm -f -- "$io/status" "$io/stalled" "$io/heartbeat"
	timeout --kill-after=10 "$timeout_s" "$qemu" "${qemu_args[@]}" </dev/null &
	qpid=$!

	# Follow the three files until QEMU is gone (tail --pid does a last read
	# after the process dies, so nothing at the end is lost).
	follow() { tail -c +1 -s 0.2 --pid="$qpid" -f -- "$1"; }
	follow "$io/stdout" &
	tail_pids+=($!)
	follow "$io/stderr" >&2 &
	tail_pids+=($!)
	if ((!quiet)); then
		follow "$io/console" | console_filter >&2 &
		tail_pids+=($!)
	fi
	if ((!${NEST_NO_WATCHDOG:-0})); then
		watch_stalls &
		tail_pids+=($!)
	fi

	wait "$qpid" || qrc=$?
	qpid=
	for p in "${tail_pids[@]}"; do
		wait "$p" || true
	done
	tail_pids=()
	elapsed=$((SECONDS - start))

	if [[ -s $io/status ]]; then
		# the command found L1 broken (a process that SIGKILL cannot end): status 125 and a
		# "nest-broken: WHY" line on its stderr ask for another boot
		[[ $(<"$io/status") == "$NEST_STATUS" ]] && b=$(grep -m1 '^nest-broken: ' "$io/stderr") || return 0
		show_console
		why="the command found L1 broken after ${elapsed}s: ${b#nest-broken: }"
		retry=1
		return 1
	fi
	show_console
	if [[ -s $io/stalled ]]; then
		why="L1 stalled after ${elapsed}s and was stopped by the watchdog: $(sed 's/^\[[ 0-9.]*\] //' "$io/stalled") (an overloaded host or a TCG or L1 KVM problem, not the command; NEST_NO_WATCHDOG=1 lets it run on)"
		retry=1
	elif ((qrc == 124 || qrc == 137)); then
		why="timed out after ${timeout_s}s${timeout_why}, QEMU killed (--timeout)"
	elif grep -q NEST-INIT-FAILED "$io/console"; then
		why="L1 init failed after ${elapsed}s (see the console above)"
	else
		why="L1 ended after ${elapsed}s without reporting the command's exit status (QEMU status $qrc)"
		retry=1
	fi
	return 1
}

# give_up RETRY WHY: the nest failed; NEST_FAIL_FILE (for a caller that retries by itself) says
# whether another boot may fare better.
give_up() {
	[[ -z ${NEST_FAIL_FILE:-} ]] || printf 'retry=%s %s\n' "$1" "$2" >"$NEST_FAIL_FILE"
	fail "$2"
}
# time_left: seconds to VMM_TEST_DEADLINE (a large number when it is not set).
time_left() {
	if [[ -z ${VMM_TEST_DEADLINE:-} ]]; then
		echo 1000000
	else
		echo $((VMM_TEST_DEADLINE - $(date +%s)))
	fi
}
for ((try = 1; ; try++)); do
	left=$(time_left)
	if ((left < 30)); then
		if ((left < 0)); then
			why="the test run's deadline (VMM_TEST_DEADLINE) passed $((-left))s ago: L1 not booted"
		else
			why="the test run's deadline (VMM_TEST_DEADLINE) is only ${left}s away: L1 not booted"
		fi
		give_up 0 "$why"
	fi
	((timeout_s <= left)) || timeout_s=$left timeout_why=" (cut to VMM_TEST_DEADLINE)"
	try_start=$SECONDS
	boot_l1 && break
	# another try that needs as long as this one did would end past the deadline
	if ((retry && try < tries && $(time_left) <= SECONDS - try_start)); then
		retry=0 why="$why; no other try: less time than this one took is left before VMM_TEST_DEADLINE"
	fi
	((retry && try < tries)) || give_up "$retry" "$why"
	say "$why; booting L1 again for the command (try $((try + 1)) of $tries)"
done
rc=$(<"$io/status")
is_uint "$rc" || fail "L1 wrote a bad exit status '$rc'"
# L1 finished, but its kernel may have reported trouble meanwhile (a soft lockup that passed, an
# oops on the thread that ran a vCPU of the command's VM): the command's results may then be the
# outer guest's fault. Said on stderr, and written to NEST_TROUBLE_FILE when it is set (the
# integration suite runs such a group again when one of its tests failed).
trouble=$(console_filter <"$io/console" | grep -E "$TROUBLE_RE" | head -n 3 || true)
if [[ -n $trouble ]]; then
	say "L1's kernel reported trouble while the command ran (a TCG or L1 KVM problem): $(head -n 1 <<<"$trouble")"
	[[ -z ${NEST_TROUBLE_FILE:-} ]] || printf '%s\n' "$trouble" >"$NEST_TROUBLE_FILE"
fi
exit "$rc"
