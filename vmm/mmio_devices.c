/* virtio-mmio slots: layout, kernel parameters, ioeventfd/irqfd wiring, device creation. */
#include "vmm/mmio_devices.h"
#include "devices/virtio_vsock.h"
#include "vmm/loader/cmdline.h"
#include "vmm/config/device_table.h"
#include "vmm/sandbox/sandbox.h"

#include <errno.h>
#include <linux/kvm.h>
#include <linux/virtio_mmio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* I/O APIC pins left free by the platform: 0 timer, 1 and 12 i8042, 2 cascade, 4 ttyS0, 3 other
 * UARTs, 8 RTC. */
static const unsigned slot_irqs[MMIO_DEVICES_MAX] = {5,	 6,  7,	 9,  10, 11, 13, 14, 15,
						     16, 17, 18, 19, 20, 21, 22, 23};

void mmio_slot_layout(unsigned i, uint64_t *base, unsigned *irq)
{
	*base = VIRTIO_MMIO_BASE + (uint64_t)i * VIRTIO_MMIO_STRIDE;
	*irq = slot_irqs[i];
}

int mmio_devices_cmdline(unsigned n, char *cmdline, size_t cap)
{
	if (n > MMIO_DEVICES_MAX)
		return -ENOSPC;
	for (unsigned i = 0; i < n; i++) {
		uint64_t base;
		unsigned irq;
		char p[64];
		mmio_slot_layout(i, &base, &irq);
		snprintf(p, sizeof(p), "virtio_mmio.device=%u@0x%llx:%u", VIRTIO_MMIO_WINDOW,
			 (unsigned long long)base, irq);
		int r = cmdline_add(cmdline, cap, p);
		if (r < 0)
			return r;
	}
	return 0;
}

/* A queue's ioeventfd fired: run the device's queue handler on the event loop thread. */
static void on_kick(void *opaque, uint32_t events)
{
	struct mmio_kick *k = opaque;
	struct virtio_dev *d = k->slot->dev;
	uint64_t n;
	(void)events;
	if (read(k->fd, &n, sizeof(n)) != sizeof(n))
		return;
	pthread_mutex_lock(&d->lock);
	if (d->ops->queue_notify && virtio_dev_running(d) && d->vq[k->queue].ready)
		d->ops->queue_notify(d, k->queue);
	pthread_mutex_unlock(&d->lock);
}

/* A QueueNotify write that exited to user space (no ioeventfd matched): hand it to the event
 * loop the same way. */
static void kick_from_vcpu(void *opaque, unsigned q)
{
	struct mmio_slot *s = opaque;
	uint64_t one = 1;
	if (q < VIRTIO_MAX_QUEUES && s->kick[q].fd >= 0 && write(s->kick[q].fd, &one, 8) < 0) {
		/* an eventfd counter does not overflow from kicks */
	}
}

static void raise_irq(void *opaque)
{
	struct mmio_slot *s = opaque;
	uint64_t one = 1;
	if (write(s->irqfd, &one, sizeof(one)) < 0) {
		static struct log_ratelimit rl;
		vmm_log_ratelimited(&rl, 1, "%s: irqfd write failed: %s", s->dev->name,
				    strerror(errno));
	}
}

/* Wires a created device into slot md->n, which owns the model from then on (also on failure). */
static int attach(struct mmio_devices *md, struct virtio_dev *d, void (*destroy)(void *),
		  void *model, struct bus *bus, struct verr *e)
{
	if (md->n >= MMIO_DEVICES_MAX) {
		destroy(model);
		return verr_set(e, -ENOSPC, "too many devices: vmm has %u virtio slots",
				MMIO_DEVICES_MAX);
	}
	struct mmio_slot *s = &md->slot[md->n];
	memset(s, 0, sizeof(*s));
	s->irqfd = -1;
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
		s->kick[q].fd = -1;
	mmio_slot_layout(md->n, &s->base, &s->irq);
	s->dev = d;
	s->destroy = destroy;
	s->model = model;
	md->n++; /* from here on mmio_devices_destroy cleans up the slot */

	virtio_mmio_init(&s->mmio, d);
	s->mmio.kick = kick_from_vcpu;
	s->mmio.kick_opaque = s;
	d->raise_irq = raise_irq;
	d->irq_opaque = s;

	s->irqfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->irqfd < 0)
		return verr_set(e, -errno, "%s: eventfd failed: %s", d->name, strerror(errno));
	struct kvm_irqfd irqfd = {.fd = (uint32_t)s->irqfd, .gsi = s->irq};
	if (ioctl(md->vm_fd, KVM_IRQFD, &irqfd) < 0)
		return verr_set(e, -errno, "%s: ioctl (KVM_IRQFD) for IRQ %u failed: %s", d->name,
				s->irq, strerror(errno));
	for (unsigned q = 0; q < d->nr_queues; q++) {
		struct mmio_kick *k = &s->kick[q];
		k->slot = s;
		k->queue = q;
		k->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (k->fd < 0)
			return verr_set(e, -errno, "%s: eventfd failed: %s", d->name,
					strerror(errno));
		struct kvm_ioeventfd io = {
		    .datamatch = q,
		    .addr = s->base + VIRTIO_MMIO_QUEUE_NOTIFY,
		    .len = 4,
		    .fd = k->fd,
		    .flags = KVM_IOEVENTFD_FLAG_DATAMATCH,
		};
		if (ioctl(md->vm_fd, KVM_IOEVENTFD, &io) < 0)
			return verr_set(e, -errno, "%s: ioctl (KVM_IOEVENTFD) failed: %s", d->name,
					strerror(errno));
		k->h = (struct ev_handler){k->fd, on_kick, k};
		int r = ev_add(md->el, &k->h, EPOLLIN);
		if (r < 0)
			return verr_set(e, r, "%s: epoll_ctl failed: %s", d->name, strerror(-r));
	}
	int r = bus_register(bus, s->base, VIRTIO_MMIO_WINDOW, virtio_mmio_access, &s->mmio);
	if (r < 0)
		return verr_set(e, r, "%s: cannot register MMIO 0x%llx: %s", d->name,
				(unsigned long long)s->base, strerror(-r));
	vmm_debug("%s at 0x%llx, IRQ %u", d->name, (unsigned long long)s->base, s->irq);
	return 0;
}

int mmio_devices_create(struct mmio_devices *md, const struct vm_config *c,
			const struct guest_mem *mem, int vm_fd, struct bus *mmio_bus,
			struct event_loop *el, struct verr *e)
{
	md->n = 0;
	md->fs = md->fs_dev = false;
	md->vm_fd = vm_fd;
	md->el = el;
	const struct device_env env = {mem, el};
	for (unsigned i = 0; i < c->ndevices; i++) {
		const struct vm_device_cfg *d = &c->devices[i];
		const struct device_type *t = &device_table[d->type];
		struct virtio_dev *dev;
		void *model;
		int r = t->create(d, &env, &dev, &model, e);
		if (r < 0)
			return r;
		if (d->type == VM_DEV_VSOCK)
			md->vsock = model;
		if (d->type == VM_DEV_FS) {
			md->fs = true;
			md->fs_dev = md->fs_dev || d->u.fs.dev;
		}
		r = attach(md, dev, t->destroy, model, mmio_bus, e);
		if (r < 0)
			return r;
		md->slot[md->n - 1].type = d->type;
	}
	return 0;
}

unsigned mmio_devices_fs_privileges(const struct mmio_devices *md)
{
	if (!md->fs)
		return 0;
	return SANDBOX_FS_OWNERS | (md->fs_dev ? SANDBOX_FS_MKNOD : 0);
}

int mmio_devices_start(struct mmio_devices *md, bool seccomp, struct verr *e)
{
	for (unsigned i = 0; i < md->n; i++) {
		const struct device_type *t = &device_table[md->slot[i].type];
		int r = t->start ? t->start(md->slot[i].model, seccomp, e) : 0;
		if (r < 0)
			return r;
	}
	return 0;
}

void mmio_devices_destroy(struct mmio_devices *md)
{
	for (unsigned i = 0; i < md->n; i++) {
		struct mmio_slot *s = &md->slot[i];
		virtio_mmio_reset(&s->mmio);
		for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
			if (s->kick[q].fd < 0)
				continue;
			ev_del(md->el, &s->kick[q].h);
			close(s->kick[q].fd);
			s->kick[q].fd = -1;
		}
		if (s->irqfd >= 0)
			close(s->irqfd);
		s->irqfd = -1;
		if (s->destroy)
			s->destroy(s->model);
	}
	md->n = 0;
}
