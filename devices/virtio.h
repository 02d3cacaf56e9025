/* A virtio 1.x device as the transport sees it: feature bits, device status, queues, the
 * interrupt status, and the callbacks each device model (blk, net, vsock, rng) fills in.
 *
 * Threads: the transport's register accesses run on vCPU threads; queue kicks (ioeventfd),
 * host I/O completions and timers run on the event loop thread. Both take d->lock, so a device
 * model's callbacks always run with it held and never race a reset. The one field touched
 * without the lock is isr (atomic): the transport reads and acknowledges it lock-free. */
#ifndef VMM_VIRTIO_H
#define VMM_VIRTIO_H

#include "devices/virtqueue.h"

#include <linux/virtio_config.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define VIRTIO_MAX_QUEUES 4

/* The interrupt status bits (virtio-mmio InterruptStatus). */
#define VIRTIO_ISR_QUEUE  1u
#define VIRTIO_ISR_CONFIG 2u

struct virtio_dev;

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
};

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
};

void virtio_dev_init(struct virtio_dev *d, const char *name, uint32_t device_id,
		     const struct virtio_dev_ops *ops, void *priv, uint64_t features,
		     uint32_t config_len, unsigned nr_queues, const struct guest_mem *mem);
void virtio_dev_destroy(struct virtio_dev *d);

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
 * configuration interrupt so the driver notices. Lock held. */
void virtio_dev_fail(struct virtio_dev *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Whether the driver has set DRIVER_OK and the device has not failed since. */
bool virtio_dev_running(const struct virtio_dev *d);

#endif
