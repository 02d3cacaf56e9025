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

#include <stdbool.h>
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

#endif
