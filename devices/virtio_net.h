/* virtio-net on a host TAP device: one rx and one tx queue, the 12-byte virtio 1.x header passed
 * through to the TAP (IFF_VNET_HDR) so checksum and segmentation offloads cross untouched, and
 * mergeable receive buffers. The TAP fd lives in the event loop; the device reads it only while
 * the guest has receive buffers, so frames wait in the TAP's queue, never in vmm's memory. */
#ifndef VMM_VIRTIO_NET_H
#define VMM_VIRTIO_NET_H

#include "devices/virtio.h"
#include "vmm/eventloop.h"
#include "vmm/log.h"
#include "vmm/memory.h"

#include <linux/if_ether.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

/* The queues, in the order the driver numbers them. */
#define VIRTIO_NET_RXQ 0
#define VIRTIO_NET_TXQ 1

/* Largest frame (without the virtio header) either way: a 64 KiB GSO packet plus an Ethernet
 * header with a VLAN tag. Bigger tx frames are dropped. */
#define VIRTIO_NET_MAX_FRAME (65536 + ETH_HLEN + 4)

/* Most frames (or tx chains) one event handles before it lets the event loop run others. */
#define VIRTIO_NET_BUDGET 256

/* The smallest mtu= (Linux's driver ignores VIRTIO_NET_F_MTU below it: IPv4's minimum). */
#define VIRTIO_NET_MIN_MTU 68

/* What `--net` asked for. (struct virtio_net_config is the device's configuration space in
 * <linux/virtio_net.h>, hence the other name.) */
struct virtio_net_opts {
	char tap[IFNAMSIZ]; /* the TAP's name, 1 to 15 characters */
	uint8_t mac[ETH_ALEN];
	bool mac_given; /* mac= was given; otherwise mac holds the one derived from the name */
	uint16_t mtu;	/* mtu=: offered to the driver (VIRTIO_NET_F_MTU); 0: not offered */
};

/* Counters, for tests and for a line at exit. Frames count without the virtio header. The
 * device's lock-free counters (dev->stats, devices/virtio.h) move with these: requests =
 * tx_frames + rx_frames, bytes = tx_bytes + rx_bytes, errors = tx_dropped + rx_dropped. */
struct virtio_net_stats {
	uint64_t tx_frames, tx_bytes, tx_dropped;
	uint64_t rx_frames, rx_bytes, rx_dropped;
};

struct virtio_net;

/* Parses the value of `--net`: "tap=NAME[,mac=XX:XX:XX:XX:XX:XX][,mtu=N]", keys in any order,
 * each at most once. NAME must be a valid interface name (1-15 characters, no '/', ':', '%' or
 * white space, not "." or ".."); MAC six hex bytes, unicast and not all zero. Without mac=, the MAC
 * is derived from the TAP's name: 06:00 (locally administered, unicast) then the 32-bit FNV-1a hash
 * of the name, so the same TAP gets the same MAC on every run. mtu= (VIRTIO_NET_MIN_MTU to
 * 65535, what Linux's driver takes) is offered with VIRTIO_NET_F_MTU: the guest's interface
 * starts with it (the TAP's own MTU should match it). Returns 0, or -EINVAL with one
 * line in e naming the bad part. */
int virtio_net_parse(const char *spec, struct virtio_net_opts *o, struct verr *e);

/* Opens /dev/net/tun and attaches to the TAP named in o (TUNSETIFF with IFF_TAP | IFF_NO_PI |
 * IFF_VNET_HDR: an existing TAP, or a new one when vmm has CAP_NET_ADMIN), sets the 12-byte
 * vnet header, and builds the device. The fd is non-blocking; it joins the event loop `el` once
 * the driver sets DRIVER_OK. Returns 0 with *out set, or a negative errno with a line in e that
 * names the TAP and what to do. The caller sets dev->raise_irq before the guest runs. */
int virtio_net_create(struct virtio_net **out, const struct virtio_net_opts *o,
		      const struct guest_mem *mem, struct event_loop *el, struct verr *e);

/* Like virtio_net_create on an fd the caller opened (it is taken over and closed by destroy):
 * a TAP already set up, or, with is_tap false, a socket that carries one frame per message with
 * the 12-byte header in front, such as a SOCK_SEQPACKET socketpair in the tests and the fuzz
 * target. The TUN ioctls are made only when is_tap. The fd is made non-blocking. */
int virtio_net_create_fd(struct virtio_net **out, const struct virtio_net_opts *o, int fd,
			 bool is_tap, const struct guest_mem *mem, struct event_loop *el,
			 struct verr *e);

/* The device the transport drives (name, features, queues, config space). */
struct virtio_dev *virtio_net_dev(struct virtio_net *n);

/* A copy of the counters (takes the device lock). */
void virtio_net_get_stats(struct virtio_net *n, struct virtio_net_stats *s);

/* Leaves the event loop, closes the fd (a TAP vmm created goes away with it) and frees n. Call
 * it once the transport has stopped using the device and the event loop is not dispatching
 * (at shutdown). NULL is a no-op. */
void virtio_net_destroy(struct virtio_net *n);

#endif
