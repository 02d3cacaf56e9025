/* Virtio devices on the virtio-mmio transport: the "device manager". Slot i gets a 512-byte
 * register window at VIRTIO_MMIO_BASE + i * 4 KiB and an I/O APIC pin of its own, the kernel
 * learns of it from a `virtio_mmio.device=512@ADDR:IRQ` parameter (there is no firmware or
 * device tree to describe it), queue kicks reach the event loop through one ioeventfd per queue
 * (KVM completes those MMIO writes without a user-space exit) and interrupts go in through an
 * irqfd. Device models know none of this: they only fill a struct virtio_dev. */
#ifndef VMM_MMIO_DEVICES_H
#define VMM_MMIO_DEVICES_H

#include "devices/virtio_mmio.h"
#include "devices/virtio_vsock.h"
#include "vmm/bus.h"
#include "vmm/eventloop.h"
#include "vmm/log.h"
#include "vmm/memory.h"
#include "vmm/config/config.h"

#include <stddef.h>

/* In the x86 MMIO hole (boot_x86_64.h), far below the I/O APIC at 0xfec00000. */
#define VIRTIO_MMIO_BASE   0xd0000000ULL
#define VIRTIO_MMIO_STRIDE 0x1000ULL
#define MMIO_DEVICES_MAX   VM_DEVICES_MAX /* 17: one per free I/O APIC pin */

struct mmio_slot;

struct mmio_kick {
	struct mmio_slot *slot;
	unsigned queue;
	int fd;
	struct ev_handler h;
};

struct mmio_slot {
	struct virtio_mmio mmio;
	struct virtio_dev *dev;
	uint64_t base;
	unsigned irq;
	int irqfd;
	struct mmio_kick kick[VIRTIO_MAX_QUEUES];
	void (*destroy)(void *model); /* frees the device model */
	void *model;
	enum vm_device_type type;
};

struct mmio_devices {
	struct mmio_slot slot[MMIO_DEVICES_MAX];
	unsigned n;
	int vm_fd;
	struct event_loop *el;
	struct virtio_vsock *vsock; /* the vsock device, if any: the agent's channel */
	bool fs, fs_dev;	    /* a virtio-fs device; one that allows device nodes */
};

/* Slot i's register window and interrupt pin (i < MMIO_DEVICES_MAX). */
void mmio_slot_layout(unsigned i, uint64_t *base, unsigned *irq);

/* Adds the `virtio_mmio.device=` parameters of slots 0..n-1 (before init's arguments): attach
 * gives the devices those slots in order, so n is md->n once they are attached (or, before, the
 * number of devices that will be). Returns 0, -E2BIG (command line full) or -ENOSPC (n too
 * large). */
int mmio_devices_cmdline(unsigned n, char *cmdline, size_t cap);

/* Creates the devices of c->devices, in order, through the device table
 * (vmm/config/device_table.h), and attaches each to its slot: bus range, ioeventfds, irqfd, kick
 * handlers on the event loop. Returns 0 or a negative errno with e saying which device and step
 * failed. */
int mmio_devices_create(struct mmio_devices *md, const struct vm_config *c,
			const struct guest_mem *mem, int vm_fd, struct bus *mmio_bus,
			struct event_loop *el, struct verr *e);

/* The capabilities the devices' own threads ask to keep (sandbox_drop_privileges's fs argument):
 * SANDBOX_FS_OWNERS when there is a virtio-fs device, with SANDBOX_FS_MKNOD when one allows
 * device nodes; 0 otherwise. */
unsigned mmio_devices_fs_privileges(const struct mmio_devices *md);

/* Starts the devices' own threads (the device table's start hook: virtio-fs's workers), each
 * taking the capabilities kept for it and installing its own seccomp list when seccomp is set.
 * Call after the privileges are dropped and before any other thread is created (vm_run), then
 * sandbox_drop_fs_caps. Returns 0 or the first failure's negative errno with e set. */
int mmio_devices_start(struct mmio_devices *md, bool seccomp, struct verr *e);

/* Resets every device (no more guest I/O) and frees the device models and their fds. Call after
 * the vCPUs have stopped, before guest memory goes. Safe on a partly created set. */
void mmio_devices_destroy(struct mmio_devices *md);

#endif
