#!/bin/sh
# Guest side of the virtio-net integration test (host side: net-host.py, listening on 10.0.2.1
# in the TAP's namespace; vmm started with --net tap=TAP,mac=52:54:00:12:34:56). Needs only
# busybox. Brings eth0 up as 10.0.2.2/24, checks the MAC, pings (small, and 8000 bytes: IP
# fragments over mergeable rx buffers), echoes a line over TCP, then moves 8 MiB each way (TSO
# and checksum offload out, GSO frames in) and compares sha256 sums. The host compares its
# "sink:" line with the "want" line printed here. Prints NET-OK and exits 0 when all passed.
set -e
bb=busybox
want_mac=${1:-52:54:00:12:34:56}
$bb ip link set lo up
$bb ip link set eth0 up
$bb ip addr add 10.0.2.2/24 dev eth0
mac=$($bb cat /sys/class/net/eth0/address)
[ "$mac" = "$want_mac" ] || { echo "net: eth0 has MAC $mac, not $want_mac"; exit 1; }
$bb ping -c 3 -W 5 10.0.2.1
$bb ping -c 2 -W 5 -s 8000 10.0.2.1
echo=$(echo hello-vmm-net | $bb nc 10.0.2.1 7777)
[ "$echo" = hello-vmm-net ] || { echo "net: TCP echo gave '$echo'"; exit 1; }
want=$($bb yes vmm-net-test | $bb head -c 8388608 | $bb sha256sum)
echo "want $want"
$bb yes vmm-net-test | $bb head -c 8388608 | $bb nc 10.0.2.1 7778
# nc stops when the host closes; its stdin (the console) must not reach EOF first
got=$($bb nc 10.0.2.1 7779 | $bb sha256sum)
[ "$got" = "$want" ] || { echo "net: received sha256 $got"; exit 1; }
echo NET-OK
