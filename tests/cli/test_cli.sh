#!/usr/bin/env bash
# Bad input on vmm's command line: each case must give exactly one clear "vmm: ..." line on
# stderr, exit status 125, and no crash. Needs no KVM: vmm checks its input before opening
# /dev/kvm. Prints TAP. Usage: test_cli.sh VMM FAKE_KERNEL_TOOL
set -u
vmm=$1 mkfake=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 failed=0

# case NAME EXPECTED_STDERR_REGEX ARGS...
case_() {
	local name=$1 want=$2
	shift 2
	n=$((n + 1))
	"$vmm" "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
	local rc=$?
	local lines
	lines=$(wc -l <"$tmp/err")
	if [ "$rc" -eq 125 ] && [ "$lines" -eq 1 ] && grep -Eq "^vmm: .*$want" "$tmp/err"; then
		echo "ok $n - $name"
	else
		failed=$((failed + 1))
		echo "not ok $n - $name (exit $rc, $lines stderr lines)"
		sed 's/^/# /' "$tmp/err"
	fi
}

"$mkfake" elf "$tmp/vmlinux" 2 || exit 1
"$mkfake" elf-big "$tmp/big-vmlinux" 200 || exit 1
"$mkfake" elf-nonote "$tmp/nonote" 2 || exit 1
"$mkfake" bzimage "$tmp/bzImage" 8 || exit 1
head -c 5000 /dev/urandom >"$tmp/garbage"
head -c 100 "$tmp/vmlinux" >"$tmp/truncated"
head -c 3000 "$tmp/bzImage" >"$tmp/truncated-bz"
head -c $((90 << 20)) /dev/zero >"$tmp/big-initrd"
echo data >"$tmp/initrd"

echo "1..55"
case_ "missing kernel file" "cannot open: No such file" --kernel "$tmp/none"
case_ "kernel is a directory" "not a regular file" --kernel "$tmp"
case_ "garbage kernel" "not a vmlinux .ELF. nor a bzImage" --kernel "$tmp/garbage"
case_ "truncated ELF kernel" "truncated" --kernel "$tmp/truncated"
case_ "truncated bzImage" "truncated" --kernel "$tmp/truncated-bz"
case_ "ELF without PVH note" "no PVH entry note" --kernel "$tmp/nonote"
case_ "kernel too large for --memory" "raise --memory" --kernel "$tmp/big-vmlinux" --memory 64
case_ "initrd does not fit" "initrd .* does not fit .* raise --memory" \
	--kernel "$tmp/vmlinux" --initrd "$tmp/big-initrd" --memory 64
case_ "missing initrd" "initrd .*cannot open" --kernel "$tmp/vmlinux" --initrd "$tmp/nope"
case_ "--cpus 0" "--cpus: '0' is out of range" --kernel "$tmp/vmlinux" --cpus 0
case_ "--memory too large" "--memory: .* out of range" --kernel "$tmp/vmlinux" --memory 99999999999
case_ "--memory not a number" "--memory: 'lots' is not a number" --kernel "$tmp/vmlinux" --memory lots
HOME=$tmp XDG_CACHE_HOME= VMM_KERNEL= case_ "no --kernel and none built" "no kernel given and none built" --memory 64
case_ "command line too long" "command line is .* bytes" \
	--kernel "$tmp/vmlinux" --cmdline "$(head -c 3000 /dev/zero | tr '\0' a)"
case_ "missing disk image" "--disk: cannot use image '/no/such.img'" \
	--kernel "$tmp/vmlinux" --disk path=/no/such.img
case_ "unknown --disk key" "unknown key 'size'" --kernel "$tmp/vmlinux" --disk path="$tmp/initrd",size=1
case_ "--disk serial too long" "more than the 20" \
	--kernel "$tmp/vmlinux" --disk path="$tmp/initrd",id=123456789012345678901
case_ "missing --rootfs image" "--rootfs: cannot use image" --kernel "$tmp/vmlinux" --rootfs "$tmp/nope"
case_ "--rootfs twice" "--rootfs given twice" --kernel "$tmp/vmlinux" --rootfs a --rootfs b
case_ "malformed --net MAC" "malformed MAC" --kernel "$tmp/vmlinux" --net tap=tap0,mac=zz
case_ "too many disks" "at most 8 disks" --kernel "$tmp/vmlinux" \
	$(for i in 1 2 3 4 5 6 7 8 9; do printf -- '--disk path=%s ' "$tmp/initrd"; done)
case_ "--seccomp=bogus" "--seccomp: 'bogus' is not on or off" --kernel "$tmp/vmlinux" --seccomp=bogus
# containers (vmm --rootfs IMG -- CMD) and vmm exec
case_ "--env without =" "--env: 'FOO' is not KEY=VALUE" --kernel "$tmp/vmlinux" --rootfs "$tmp/initrd" --env FOO
case_ "--workdir relative" "--workdir: 'app' is not an absolute path" \
	--kernel "$tmp/vmlinux" --rootfs "$tmp/initrd" --workdir app
case_ "--user not numeric" "--user: 'root' is not UID.:GID." --kernel "$tmp/vmlinux" --rootfs "$tmp/initrd" --user root
case_ "--user bad gid" "--user: '1:x' is not UID" --kernel "$tmp/vmlinux" --rootfs "$tmp/initrd" --user 1:x
case_ "--hostname with a space" "--hostname: 'a b' is not a host name" \
	--kernel "$tmp/vmlinux" --rootfs "$tmp/initrd" --hostname "a b"
case_ "a command with --initrd" "drop --initrd" --kernel "$tmp/vmlinux" --initrd "$tmp/initrd" -- /bin/true
case_ "a command without --rootfs" "give --rootfs IMG" --kernel "$tmp/vmlinux" -- /bin/true
case_ "--env without a container" "are for containers" --kernel "$tmp/vmlinux" --env A=b
case_ "a word that is not after --" "put the container's command after --" \
	--kernel "$tmp/vmlinux" --rootfs "$tmp/initrd" echo hi
case_ "--ip without --net" "add --net tap=NAME" --kernel "$tmp/vmlinux" --rootfs "$tmp/initrd" --ip 10.0.2.2/24
case_ "--ip without a prefix" "--ip: '10.0.2.2' is not an IPv4 address with a /prefix" \
	--kernel "$tmp/vmlinux" --rootfs "$tmp/initrd" --net tap=t0 --ip 10.0.2.2
case_ "vmm exec without --api-sock" "no --api-sock PATH" exec -- /bin/true
case_ "vmm exec without a command" "no command given" exec --api-sock "$tmp/s"
case_ "vmm exec to a socket nobody serves" "exec: no socket at .*is vmm running with --api-sock" exec --api-sock "$tmp/s" -- /bin/true
case_ "vmm exec unknown option" "vmm exec: unknown option '--rootfs'" exec --rootfs x -- true
# --config: bad files give one line naming the file and the key
printf '{"kernel":"%s","cpus":0}' "$tmp/vmlinux" >"$tmp/c1.json"
case_ "--config: a value out of range names the key" "--config .*c1.json: cpus: '0' is out of range" --config "$tmp/c1.json"
printf '{"kernel":"%s","devices":[{"type":"net","tap":"t0","speed":1}]}' "$tmp/vmlinux" >"$tmp/c2.json"
case_ "--config: an unknown device key names it" "devices\[0\].speed: unknown key for a net device" --config "$tmp/c2.json"
printf '{"kernel":' >"$tmp/c3.json"
case_ "--config: JSON that ends early" "c3.json: not valid JSON" --config "$tmp/c3.json"
case_ "--config: a missing file" "--config /no/such.json: cannot open" --config /no/such.json
case_ "--detach with nothing to reach the VM by" "--detach without --api-sock or --pid-file" --kernel "$tmp/vmlinux" --detach
case_ "--stdio-fds: not three fds" "--stdio-fds" --kernel "$tmp/vmlinux" --rootfs "$tmp/initrd" --stdio-fds 0,1
case_ "--log-format: not text or json" "--log-format: 'xml' is not text or json" --kernel "$tmp/vmlinux" --log-format xml
# --volume: the forms refused, and what vmm without CAP_SYS_ADMIN says (as nobody when run as root)
mkdir "$tmp/vol"
case_ "--volume: an unknown option" "--volume $tmp/vol:/x:rx: 'rx' is not an option" \
	--kernel "$tmp/vmlinux" --rootfs "$tmp/initrd" --volume "$tmp/vol:/x:rx"
case_ "--volume: a relative guest path" "--volume $tmp/vol:x: the guest path 'x' is not an absolute path" \
	--kernel "$tmp/vmlinux" --rootfs "$tmp/initrd" --volume "$tmp/vol:x"
case_ "--volume: a missing host path" "--volume /no/such:/x: the host path '/no/such' cannot be used" \
	--kernel "$tmp/vmlinux" --rootfs "$tmp/initrd" --volume /no/such:/x
case_ "--volume: not a container" "--volume and --tmpfs are for containers" \
	--kernel "$tmp/vmlinux" --volume "$tmp/vol:/x"
case_ "--tmpfs: an unknown option" "--tmpfs /x:noexec: 'noexec' is not an option: the options are ro, rw, mode=OCTAL and size=MIB" \
	--kernel "$tmp/vmlinux" --rootfs "$tmp/initrd" --tmpfs /x:noexec
case_ "--tmpfs: a mode that is not octal" "--tmpfs /x:mode=999: mode '999' is not an octal mode from 0 to 7777" \
	--kernel "$tmp/vmlinux" --rootfs "$tmp/initrd" --tmpfs /x:mode=999
chmod 711 "$tmp"
chmod 755 "$tmp/vol"
chmod 644 "$tmp/vmlinux" "$tmp/initrd"
if [ "$(id -u)" -eq 0 ]; then
	printf '#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all "%s" "$@"\n' \
		"$vmm" >"$tmp/vmm-nobody"
	chmod 755 "$tmp/vmm-nobody"
	vmm_as_root=$vmm
	vmm=$tmp/vmm-nobody
fi
case_ "--volume without CAP_SYS_ADMIN: what to do instead" \
	"--volume: bind-mounting volumes needs CAP_SYS_ADMIN .*: run vmm as root, or share a directory with --share" \
	--kernel "$tmp/vmlinux" --rootfs "$tmp/initrd" --volume "$tmp/vol:/x" -- /bin/true
case_ "--tmpfs alone without CAP_SYS_ADMIN: it says so" \
	"--tmpfs: the list of tmpfs mounts goes to the guest in a staging tmpfs that needs CAP_SYS_ADMIN .*: run vmm as root" \
	--kernel "$tmp/vmlinux" --rootfs "$tmp/initrd" --tmpfs /run -- /bin/true
vmm=${vmm_as_root:-$vmm}
# --restore DIR: the state file is read and checked before anything else
mkdir -p "$tmp/snap"
case_ "--restore of a directory without a snapshot names DIR/state" \
	"$tmp/snap/state: cannot open it: No such file" --restore "$tmp/snap"
cp "$tmp/garbage" "$tmp/snap/state"
case_ "--restore of a state file that is not one says so" \
	"$tmp/snap/state: not a vmm snapshot state file" --restore "$tmp/snap"
# --log FILE --log-format json: the error is one JSON line in the file, nothing on stderr
n=$((n + 1))
"$vmm" --kernel "$tmp/none" --log "$tmp/log.json" --log-format json </dev/null >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" -eq 125 ] && [ ! -s "$tmp/err" ] && [ "$(wc -l <"$tmp/log.json")" -eq 1 ] &&
	python3 -c 'import json,sys; j=json.loads(open(sys.argv[1]).read()); sys.exit(not (j["level"] == "error" and "cannot open" in j["msg"] and j["time"].endswith("Z")))' "$tmp/log.json"; then
	echo "ok $n - --log FILE --log-format json: the error is one JSON line there"
else
	failed=$((failed + 1))
	echo "not ok $n - --log FILE --log-format json (exit $rc)"
	sed 's/^/# /' "$tmp/err" "$tmp/log.json"
fi
echo "# $((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
