/* The virtio-mmio transport (virtio 1.x, section 4.2; register layout version 2 only: no legacy
 * devices). It turns the guest's register accesses in a 512-byte window into feature
 * negotiation, the device status state machine and queue set-up for one struct virtio_dev, and
 * never knows which device it carries.
 *
 * The state machine is enforced, not trusted: driver features are taken only between DRIVER and
 * FEATURES_OK; FEATURES_OK sticks only for a subset of the offered features that includes
 * VERSION_1; queue registers are writable only while that queue is not ready and the device is
 * not yet DRIVER_OK; QueueSel is range-checked; the status only grows until a reset (0). A write
 * that breaks a rule is ignored and logged (rate-limited). */
#ifndef VMM_VIRTIO_MMIO_H
#define VMM_VIRTIO_MMIO_H

#include "devices/virtio.h"
#include "vmm/log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VIRTIO_MMIO_WINDOW 0x200      /* registers 0x000-0x0ff, configuration space 0x100-0x1ff */
#define VIRTIO_MMIO_VENDOR 0x00564d4d /* "MMV\0": not a PCI vendor, any value is allowed */

struct virtio_mmio {
	struct virtio_dev *dev;
	uint32_t dev_features_sel, drv_features_sel, queue_sel;
	/* Kicks: what a QueueNotify write that reached the handler does. vmm registers an
	 * ioeventfd per queue so these writes normally never exit to user space; when one does
	 * (or in tests) kick(kick_opaque, q) is called, or, if kick is NULL, the device's
	 * queue_notify right away. */
	void (*kick)(void *opaque, unsigned q);
	void *kick_opaque;
};

void virtio_mmio_init(struct virtio_mmio *t, struct virtio_dev *d);

/* Bus handler (vmm/bus.h) for the window: registers take 32-bit accesses only, the
 * configuration space 1, 2 or 4 bytes wide. Runs on vCPU threads; takes the device's lock,
 * except for InterruptStatus reads and InterruptACK writes (d->isr is atomic), so the guest's
 * interrupt handler never waits for the event loop thread. */
void virtio_mmio_access(void *opaque, uint64_t offset, uint8_t *data, unsigned size, bool is_write);

/* Resets the device as a status write of 0 would (vmm stopping). */
void virtio_mmio_reset(struct virtio_mmio *t);

/* The transport's state as a snapshot's device-transport section (docs/snapshot.md): the device
 * id and queue count, offered and acked features, status, interrupt status, configuration
 * generation, the three selectors, and each queue's size, readiness, ring addresses and indexes
 * (last_avail, used_idx, the last signalled used index). Little-endian, fixed size. */
#define VIRTIO_MMIO_STATE_LEN (48u + VIRTIO_MAX_QUEUES * 40u)
void virtio_mmio_save(struct virtio_mmio *t, uint8_t out[VIRTIO_MMIO_STATE_LEN]);

/* Loads a saved transport state into t, whose device is new (status 0) and made with the same
 * options as the saved one. The bytes come from a snapshot file and are checked as a guest's
 * register writes are: the same device id, queue count and offered features; acked features
 * offered and, past FEATURES_OK, with VERSION_1; a status the state machine can reach; each
 * ready queue's size and rings accepted by virtq_activate; flags 0 or 1, padding zero. With
 * DRIVER_OK (and not NEEDS_RESET) the device is activated as that status write would; its
 * queues are not kicked (the caller does once the VM's event loop runs). 0, or -EINVAL (-EBUSY
 * for a device already in use) with one line in e naming what is wrong. */
int virtio_mmio_restore(struct virtio_mmio *t, const uint8_t *in, size_t len, struct verr *e);

#endif
