# Device tests, sourced by boot-tests.sh (its helpers vm, expect, has, ok, not_ok and $tmp,
# $vmm, $vmlinux, $initramfs): each boots a real guest that uses a virtio device and checks what
# the guest printed and what the host sees. Needs root for the network test (a TAP in a network
# namespace of its own); the nest runs as root.
# shellcheck shell=bash
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=/usr/bin/python3
[ -x "$py" ] || py=python3

# virtio-blk: a known pattern written and flushed by the guest is in the host's image; the
# serial is what --disk id= said.
truncate -s 8M "$tmp/disk.img"
seq 1 12000 >"$tmp/pattern"
plen=$(wc -c <"$tmp/pattern")
vm 180 --kernel "$vmlinux" --initrd "$initramfs" --disk "path=$tmp/disk.img,id=vmm-test-1" \
	--cmdline "-- /bin/sh -c \"cat /sys/block/vda/serial; echo; seq 1 12000 | dd of=/dev/vda bs=4096 conv=fsync 2>/dev/null && echo WROTE\""
expect "virtio-blk: the guest writes and flushes a pattern, the host image holds it" \
	eval '[ $rc -eq 0 ] && has "^WROTE" && cmp -s -n "$plen" "$tmp/pattern" "$tmp/disk.img"'
expect "virtio-blk: GET_ID gives the serial from --disk id=" has "^vmm-test-1"

# the guest reads back what the host put in the image (4 KiB random block at 1 MiB)
head -c 4096 /dev/urandom >"$tmp/block"
dd if="$tmp/block" of="$tmp/disk.img" bs=4096 seek=256 conv=notrunc 2>/dev/null
want=$(sha256sum <"$tmp/block" | cut -c1-64)
vm 180 --kernel "$vmlinux" --initrd "$initramfs" --disk "path=$tmp/disk.img" \
	--cmdline '-- /bin/sh -c "dd if=/dev/vda bs=4096 skip=256 count=1 2>/dev/null | sha256sum"'
expect "virtio-blk: the guest reads the bytes the host wrote" eval '[ $rc -eq 0 ] && has "$want"'

# a read-only disk: the guest sees it read-only, a write fails, the image is unchanged
before=$(sha256sum <"$tmp/disk.img")
vm 180 --kernel "$vmlinux" --initrd "$initramfs" --disk "path=$tmp/disk.img,ro" \
	--cmdline '-- /bin/sh -c "cat /sys/block/vda/ro; if dd if=/dev/zero of=/dev/vda bs=4096 count=1 conv=fsync 2>/dev/null; then echo WRITE-OK; else echo WRITE-REFUSED; fi"'
expect "virtio-blk: a ro disk refuses writes and stays unchanged" \
	eval '[ $rc -eq 0 ] && has "^1$" && has "^WRITE-REFUSED" && [ "$(sha256sum <"$tmp/disk.img")" = "$before" ]'

# ext4 (--rootfs, /dev/vda) and erofs (--disk, /dev/vdb) images built here mount in the guest
mkdir -p "$tmp/tree/etc"
echo "hello from ext4 and erofs" >"$tmp/tree/etc/greeting"
if mke2fs -q -F -t ext4 -d "$tmp/tree" "$tmp/root.ext4" 16M >"$tmp/err" 2>&1 &&
	mkfs.erofs "$tmp/root.erofs" "$tmp/tree" >"$tmp/err" 2>&1; then
	vm 180 --kernel "$vmlinux" --initrd "$initramfs" --rootfs "$tmp/root.ext4" \
		--disk "path=$tmp/root.erofs,ro" \
		--cmdline '-- /bin/sh -c "mkdir -p /tmp/a /tmp/b && mount -t ext4 /dev/vda /tmp/a && mount -t erofs -o ro /dev/vdb /tmp/b && cat /tmp/a/etc/greeting /tmp/b/etc/greeting && echo more >/tmp/a/etc/more && umount /tmp/a && echo UMOUNTED"'
	expect "virtio-blk: ext4 --rootfs and erofs --disk mount, ext4 takes a write" \
		eval '[ $rc -eq 0 ] && [ "$(grep -c "^hello from ext4 and erofs" "$tmp/out")" -eq 2 ] && has "^UMOUNTED"'
	# the write reached the image: e2fsck finds it clean and debugfs sees the file
	expect "virtio-blk: the guest's ext4 write is in the image and the fs is clean" \
		eval 'e2fsck -fn "$tmp/root.ext4" >/dev/null 2>&1 && debugfs -R "cat /etc/more" "$tmp/root.ext4" 2>/dev/null | grep -q "^more"'
else
	rc=1
	not_ok "virtio-blk: cannot build the ext4/erofs images (mke2fs -d, mkfs.erofs)"
	not_ok "virtio-blk: the guest's ext4 write is in the image and the fs is clean"
fi

# data the guest flushed survives a kill -9 of vmm
truncate -s 4M "$tmp/kill.img"
# (watch_start/watch_end: a vmm that SIGKILL cannot end, the nest's KVM wedged, ends the group
# for run.sh to run again instead of holding it until the nest's timeout)
watch_start "$tmp/kill.sock" "$tmp/raw" "$tmp/err" --kernel "$vmlinux" --initrd "$initramfs" --disk "path=$tmp/kill.img" \
	--cmdline '-- /bin/sh -c "echo survives-kill-9 | dd of=/dev/vda conv=fsync 2>/dev/null && echo FLUSHED && sleep 600"'
wait_for FLUSHED "$tmp/raw" "$pid" 300
kill -KILL "$pid"
watch_end 30
tr -d '\r' <"$tmp/raw" >"$tmp/out"
expect "virtio-blk: flushed data survives kill -9 of vmm (137)" \
	eval '[ $rc -eq 137 ] && has "^FLUSHED" && [ "$(head -c 16 "$tmp/kill.img")" = "survives-kill-9" ]'

# virtio-net: in a network namespace of its own, a TAP at 10.0.2.1; the guest (10.0.2.2) pings
# it, then serves a TCP echo (busybox nc -e cat) that the host sends 1 MiB through. The host waits
# on network events, not on the serial port (~30 bytes/s in the nest): the echo client retries
# its connection until the guest listens, or vmm has exited, or 600 s have passed. The guest's
# PING-OK line is read once vmm has exited and its console is complete.
net_test() {
	rc=1
	ip tuntap add dev vmmtap0 mode tap || return 1
	ip addr add 10.0.2.1/24 dev vmmtap0 || return 1
	ip link set vmmtap0 up || return 1
	timeout -k 5 900 "$vmm" --kernel "$vmlinux" --initrd "$initramfs" --net tap=vmmtap0 \
		--cmdline '-- /bin/sh -c "ip addr add 10.0.2.2/24 dev eth0 && ip link set eth0 up && ping -q -c 2 -W 10 10.0.2.1 >/dev/null && echo PING-OK; nc -l -p 5000 -e /bin/cat; nc -l -p 5001 -e /bin/true; echo NC-DONE"' \
		</dev/null >"$tmp/raw" 2>"$tmp/err" &
	local pid=$!
	"$py" "$here/tcp-echo-client.py" --wait 600 --pid "$pid" 10.0.2.2 5000 1048576 >"$tmp/tcp" 2>&1
	# The guest must not power off while its echo is still in its TCP send queue: it waits for
	# this second connection, made once everything came back.
	"$py" "$here/tcp-echo-client.py" --wait 600 --pid "$pid" 10.0.2.2 5001 0 >>"$tmp/tcp" 2>&1
	wait "$pid"
	rc=$?
	tr -d '\r' <"$tmp/raw" >"$tmp/out"
	cat "$tmp/tcp" >>"$tmp/out"
}
if command -v ip >/dev/null && [ -c /dev/net/tun ]; then
	tmp=$tmp vmm=$vmm vmlinux=$vmlinux initramfs=$initramfs here=$here py=$py \
		unshare --net bash -c "$(declare -f net_test); net_test; echo \$rc >\"$tmp/net-rc\""
	rc=$(cat "$tmp/net-rc" 2>/dev/null || echo 1)
	expect "virtio-net: the guest pings the host's TAP" has "^PING-OK"
	expect "virtio-net: 1 MiB of TCP echo crosses the TAP intact" \
		eval '[ $rc -eq 0 ] && has "^tcp-echo: 1048576 bytes echoed intact"'
else
	rc=1
	not_ok "virtio-net: no ip(8) or /dev/net/tun here (iproute2, the tun module)"
	not_ok "virtio-net: 1 MiB of TCP echo crosses the TAP intact"
fi

# virtio-vsock, host side on Unix sockets (Firecracker's contract). Guest -> host: the guest
# connects to CID 2 port 5000, vmm connects to UDS_5000, where a host echo server listens.
"$py" "$here/vsock-host.py" serve "$tmp/v.sock_5000" >"$tmp/host" 2>&1 &
hpid=$!
for _ in $(seq 1 100); do [ -S "$tmp/v.sock_5000" ] && break; sleep 0.1; done
vm 300 --kernel "$vmlinux" --initrd "$initramfs" --vsock "cid=3,uds=$tmp/v.sock" \
	--cmdline '-- /bin/vsock-test connect 2 5000 1048576'
kill "$hpid" 2>/dev/null
wait "$hpid" 2>/dev/null
cat "$tmp/host" >>"$tmp/out"
expect "virtio-vsock: guest -> host connection echoes 1 MiB intact" \
	eval '[ $rc -eq 0 ] && has "^vsock-test: echoed 1048576 bytes intact"'

# Host -> guest: the guest listens on port 5001.
vsock_echo "$tmp/w.sock" timeout -k 5 300 "$vmm" --kernel "$vmlinux" --initrd "$initramfs" \
	--vsock "cid=3,uds=$tmp/w.sock" --cmdline '-- /bin/vsock-test listen 5001'
expect "virtio-vsock: host -> guest connection (CONNECT) echoes 1 MiB intact" \
	eval '[ $rc -eq 0 ] && has "^vsock-host: echoed 1048576 bytes intact" && has "^vsock-test: echoed 1048576 bytes back"'
expect "virtio-vsock: vmm removes its socket at exit" eval '[ ! -e "$tmp/w.sock" ]'
