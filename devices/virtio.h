/* A virtio 1.x device as the transport sees it: feature bits, device status, queues, the
 * interrupt status, and the callbacks each device model (blk, net, vsock, rng) fills in.
 *
 * Threads: the transport's register accesses run on vCPU threads; queue kicks (ioeventfd),
 * host I/O completions and timers run on the event loop thread. Both take d->lock, so a device
 * model's callbacks always run with it held and never race a reset. The one field touched
 * without the lock is isr (atomic): the transport reads and acknowledges it lock-free. The
 * counters in stats are atomic too: bumped under the lock, read by any thread at any time. */
#ifndef VMM_VIRTIO_H
#define VMM_VIRTIO_H

#include "devices/virtqueue.h"
#include "vmm/log.h"

#include <linux/virtio_config.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VIRTIO_MAX_QUEUES 4

/* The interrupt status bits (virtio-mmio InterruptStatus). */
#define VIRTIO_ISR_QUEUE  1u
#define VIRTIO_ISR_CONFIG 2u

struct virtio_dev;

/* What each device did since it was created (a driver reset keeps them), for the metrics object
 * (vmm/api/metrics.h). Every counter is bumped once, where its event is final, with a relaxed
 * atomic add (no lock of its own), so any thread may read them at any time; a reader sees each
 * counter whole, not the four as one snapshot. Per device model:
 *
 * - blk: requests = requests answered (any type, any status; requests dropped by a reset or a
 *   failed device are not answered); bytes = data bytes read from and written to the image by
 *   IN and OUT requests answered OK; errors = requests answered VIRTIO_BLK_S_IOERR or
 *   VIRTIO_BLK_S_UNSUPP.
 * - net: requests = frames sent (tx) and delivered to the guest (rx); bytes = their bytes without
 *   the virtio header; errors = frames dropped either way (tx_dropped + rx_dropped of
 *   struct virtio_net_stats).
 * - vsock: requests = packets both ways (tx chains taken from the guest, whatever became of
 *   them, and rx packets given to it); bytes = stream payload bytes both ways (guest data taken
 *   for the host socket, host data put in guest buffers); errors = guest packets answered with
 *   an RST because they were malformed, invalid in their connection's state, beyond the credit
 *   given, or for no connection, and guest connection REQUESTs refused (no listener at
 *   PATH_<port>, the in-process port refused it, or the connection limit); counted when the RST
 *   is decided, even if a full RST ring drops it. Not counted: the RSTs that end connections in
 *   the normal course (after SHUTDOWN, when the host side closes or fails), tx packets dropped
 *   unanswered for bad addresses, and guests refusing host connections.
 * - rng: requests = requests given back (filled, or with 0 bytes for a chain without a writable
 *   buffer); bytes = random bytes given; errors = requests given back short because getrandom()
 *   failed.
 * - every device: needs_reset = times virtio_dev_fail set NEEDS_RESET (the guest broke the
 *   device; a second failure before the driver resets is not counted again). */
struct virtio_dev_stats {
	_Atomic uint64_t requests, bytes, errors, needs_reset;
};

/* A plain copy of struct virtio_dev_stats. */
struct virtio_dev_stats_snapshot {
	uint64_t requests, bytes, errors, needs_reset;
};

/* Adds n to one counter of struct virtio_dev_stats (relaxed: counters order nothing). */
static inline void virtio_stat_add(_Atomic uint64_t *counter, uint64_t n)
{
	atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

struct virtio_dev_ops {
	/* Reads or writes `len` bytes of the device-specific configuration space at `off`. The
	 * transport has checked off + len <= config_len. */
	void (*config_read)(struct virtio_dev *d, uint32_t off, void *buf, uint32_t len);
	void (*config_write)(struct virtio_dev *d, uint32_t off, const void *buf, uint32_t len);
	/* The driver set DRIVER_OK; every ready queue is activated. Returns 0, or a negative errno
	 * after which the device is marked NEEDS_RESET. */
	int (*activate)(struct virtio_dev *d);
	/* The driver reset the device (status 0), or vmm is stopping: stop I/O, drop state. The
	 * queues are reset by the transport afterwards. */
	void (*reset)(struct virtio_dev *d);
	/* Queue q was kicked (event loop thread). */
	void (*queue_notify)(struct virtio_dev *d, unsigned q);

	/* Snapshots (docs/snapshot.md); each may be NULL. Lock held, vCPUs paused.
	 * quiesce: finish every request the device has taken, each pushed to its used ring and the
	 * driver interrupted as usual, so that guest memory and the transport's state are the whole
	 * of the I/O; the device takes nothing new until the caller kicks its queues (once the VM
	 * runs again, as after a restore). 0, or a negative errno with one line in e (the snapshot
	 * is then refused). NULL: the device answers what it takes before its callback returns.
	 * save: the device model's own state beyond the transport's (at most VIRTIO_DEV_STATE_MAX
	 * bytes into out); returns its length. NULL: none.
	 * restore: checks a saved state against this device, new and made from the snapshot's
	 * description, before the transport's state is loaded: 0, or -EINVAL with one line in e
	 * saying what differs and what to restore with. */
	int (*quiesce)(struct virtio_dev *d, struct verr *e);
	size_t (*save)(const struct virtio_dev *d, uint8_t *out);
	int (*restore)(struct virtio_dev *d, const uint8_t *in, size_t len, struct verr *e);
};
#define VIRTIO_DEV_STATE_MAX 256u

struct virtio_dev {
	const char *name;   /* for log lines: "virtio-blk vdb" ... */
	uint32_t device_id; /* VIRTIO_ID_* */
	const struct virtio_dev_ops *ops;
	void *priv; /* the device model's own state */

	uint64_t host_features; /* offered; VIRTIO_F_VERSION_1 is added by virtio_dev_init */
	uint64_t acked_features;
	uint32_t config_len;
	uint32_t config_generation;

	uint8_t status; /* VIRTIO_CONFIG_S_* */
	unsigned nr_queues;
	struct virtq vq[VIRTIO_MAX_QUEUES];
	const struct guest_mem *mem;

	pthread_mutex_t lock;
	atomic_uint isr;
	/* Raises the device's interrupt line (an irqfd write in vmm, a counter in tests). */
	void (*raise_irq)(void *opaque);
	void *irq_opaque;
	struct virtio_dev_stats stats; /* zeroed by virtio_dev_init, kept across resets */
};

void virtio_dev_init(struct virtio_dev *d, const char *name, uint32_t device_id,
		     const struct virtio_dev_ops *ops, void *priv, uint64_t features,
		     uint32_t config_len, unsigned nr_queues, const struct guest_mem *mem);
void virtio_dev_destroy(struct virtio_dev *d);

/* Copies d's counters into *out; any thread, no lock (see struct virtio_dev_stats). */
void virtio_dev_stats_get(const struct virtio_dev *d, struct virtio_dev_stats_snapshot *out);

/* The state of d's queues, for the metrics: takes d's lock. Fills out[0..nr_queues) and returns
 * nr_queues (at most VIRTIO_MAX_QUEUES); *isr gets the interrupt status the driver has not
 * acknowledged. */
unsigned virtio_dev_queues_get(struct virtio_dev *d, struct virtq_state out[VIRTIO_MAX_QUEUES],
			       unsigned *isr);

/* Whether feature bit `bit` was negotiated. */
static inline bool virtio_has_feature(const struct virtio_dev *d, unsigned bit)
{
	return (d->acked_features >> bit) & 1;
}

/* After pushing to queue q: interrupts the driver if it asked for it (lock held). */
void virtio_dev_notify_used(struct virtio_dev *d, unsigned q);

/* The device's configuration changed: new generation and a configuration interrupt. */
void virtio_dev_config_changed(struct virtio_dev *d);

/* The guest broke the device (a malformed chain, a bad request it cannot answer): logs one
 * line "NAME: WHAT; the device needs a reset" (rate-limited), sets NEEDS_RESET and sends a
 * configuration interrupt so the driver notices; counts stats.needs_reset. Lock held. */
void virtio_dev_fail(struct virtio_dev *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Whether the driver has set DRIVER_OK and the device has not failed since. */
bool virtio_dev_running(const struct virtio_dev *d);

#endif
