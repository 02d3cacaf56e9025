/* virtio-vsock: AF_VSOCK stream sockets between the guest and host programs, with the host side on
 * Unix sockets (the contract Firecracker uses, no vhost module):
 *
 * - vmm listens on the Unix socket PATH. A host program connects to it and writes
 *   "CONNECT <port>\n"; vmm asks the guest to connect to that vsock port from a host-side port it
 *   allocates (in [2^30, 2^31)), and when the guest accepts, writes "OK <host port>\n" back. From
 *   then on the Unix socket carries the stream. A malformed or over-long CONNECT line, or a guest
 *   that refuses (RST), closes the host connection.
 * - A guest connecting to host (CID 2) port P makes vmm connect to the Unix socket "PATH_P"
 *   (e.g. /run/v.sock_5000); the guest gets a RESPONSE if that works, else an RST.
 * - vmm's control API accepts its own connections and hands an `exec` connection over with
 *   virtio_vsock_connect_fd: it goes straight to the agent's guest port, with no CONNECT line
 *   and no "OK" line.
 *
 * Threads: everything runs on the event loop thread. The device's callbacks run under its
 * virtio_dev lock (see devices/virtio.h); the socket handler registered in the event loop takes
 * the same lock. */
#ifndef VMM_VIRTIO_VSOCK_H
#define VMM_VIRTIO_VSOCK_H

#include "devices/virtio.h"
#include "vmm/eventloop.h"
#include "vmm/log.h"
#include "vmm/memory.h"

#include <stdint.h>

/* Longest PATH: "PATH_4294967295" must still fit in a sockaddr_un (108 bytes with its NUL). */
#define VIRTIO_VSOCK_PATH_MAX (108 - 1 - 11)

/* Most connections (and accepted host sockets still waiting for their CONNECT line, of which
 * at most 64) at once; guest REQUESTs beyond it get an RST, host connections beyond it are
 * closed at once. */
#define VIRTIO_VSOCK_MAX_CONNS 1024

/* Receive buffer each connection advertises to the guest (buf_alloc): the most guest->host bytes
 * vmm holds for one connection while its Unix socket is not taking them. */
#define VIRTIO_VSOCK_CONN_BUF (256u * 1024)

/* What the user asked for with --vsock. (struct virtio_vsock_config is the device's config space
 * in <linux/virtio_vsock.h>, hence "options".) */
struct virtio_vsock_options {
	uint32_t cid;				  /* the guest's CID: 3 .. 2^32-2 */
	char uds_path[VIRTIO_VSOCK_PATH_MAX + 1]; /* the host-side Unix socket PATH */
};

/* Parses a --vsock value "cid=N,uds=PATH" (keys in any order, each exactly once; N decimal;
 * PATH cannot hold a comma). Fills *o and returns 0, or returns -EINVAL with one line in e
 * saying what is wrong and what to write instead: an empty value or item, a control character
 * (so the path cannot hold one), an unknown key, a key given twice or missing, a CID that is not
 * a decimal number, below 3 (0-2 are reserved: the hypervisor, local and host addresses) or
 * above 4294967294 (VMADDR_CID_ANY is 2^32-1), an empty path, or a path longer than
 * VIRTIO_VSOCK_PATH_MAX bytes. */
int virtio_vsock_parse(const char *spec, struct virtio_vsock_options *o, struct verr *e);

struct virtio_vsock;

/* Creates the device and its listening Unix socket at o->uds_path (non-blocking, close-on-exec;
 * none when o->uds_path is empty: then only the in-process port and virtio_vsock_connect_fd
 * below reach the guest), and registers its event handler in el. If a file already exists at the
 * path: a Unix socket nobody listens on (left over by a process that died) is replaced; a socket
 * someone listens on, or anything that is not a socket, is refused. The device offers
 * VIRTIO_RING_F_EVENT_IDX and VIRTIO_RING_F_INDIRECT_DESC (not VIRTIO_VSOCK_F_SEQPACKET) and has
 * three queues: rx (0), tx (1), event (2). mem and el must outlive the device. Returns 0 with *out
 * set, or a negative errno with one line in e naming the path, the problem and the fix. */
int virtio_vsock_create(struct virtio_vsock **out, const struct virtio_vsock_options *o,
			const struct guest_mem *mem, struct event_loop *el, struct verr *e);

/* The virtio device for the transport (ops, features, config space, queues). Valid until
 * virtio_vsock_destroy. */
struct virtio_dev *virtio_vsock_dev(struct virtio_vsock *v);

/* Hands a connected, non-blocking host stream socket to the device as a connection to guest
 * port PORT (vmm's control API, for `exec`): the guest is asked to connect to PORT from a
 * host-side port in [2^30, 2^31), and from then on fd carries the stream; no CONNECT line is
 * read from it and no "OK" line is written to it. The device owns fd from then on when it
 * returns 0 (also when the guest refuses with an RST: it closes it). Takes the device lock: call
 * from the event loop thread, not from a device callback. Returns 0, or -EBUSY (the connection
 * table is full; fd stays the caller's) with one line in e. */
int virtio_vsock_connect_fd(struct virtio_vsock *v, int fd, uint32_t port, struct verr *e);

/* Serves guest connections to host port PORT in-process: open_fd(opaque) is called on the event
 * loop thread with the device lock held and returns a connected, non-blocking stream socket
 * (typically one end of a socketpair) that carries the connection, or a negative value to
 * refuse it (the guest gets an RST). Other ports keep the PATH_<port> rule. Call before the
 * event loop runs. */
void virtio_vsock_set_host_port(struct virtio_vsock *v, uint32_t port, int (*open_fd)(void *opaque),
				void *opaque);

/* How many connection slots are in use: connections in any state, including accepted host
 * sockets waiting for their CONNECT line and closed connections whose RST the guest has not
 * been given yet. For tests and diagnostics; call it with the device lock held or from the
 * event loop thread. */
unsigned virtio_vsock_conn_count(struct virtio_vsock *v);

/* Connection counters since the device was created (a driver reset keeps them). */
struct virtio_vsock_stats {
	uint64_t opened; /* connections that reached ESTABLISHED (guest- or host-initiated) */
	uint64_t closed; /* of those, the ones that ended since (their slot was freed) */
	uint64_t active; /* connection slots in use now: virtio_vsock_conn_count */
};

/* Copies the counters into *out. Like virtio_vsock_conn_count: call it with the device lock
 * held or from the event loop thread (it takes no lock). The packet, byte and error counters
 * are the device's (virtio_dev_stats_get on virtio_vsock_dev(v), any thread). */
void virtio_vsock_get_stats(struct virtio_vsock *v, struct virtio_vsock_stats *out);

/* Closes every connection and the listening socket, removes PATH (only if it is still the
 * socket this device created), takes the handler out of the event loop and frees everything.
 * Call it after the vCPUs and the event loop have stopped using the device. NULL is allowed. */
void virtio_vsock_destroy(struct virtio_vsock *v);

#endif
