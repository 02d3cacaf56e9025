/* virtio-mmio slots: layout, kernel parameters, ioeventfd/irqfd wiring, device creation. */
#include "vmm/mmio_devices.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_net.h"
#include "devices/virtio_rng.h"
#include "devices/virtio_vsock.h"
#include "vmm/cmdline.h"

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

unsigned mmio_devices_count(const struct vmm_options *o)
{
	return (o->rootfs ? 1u : 0u) + o->ndisks + o->nnets + (o->vsock || o->container ? 1u : 0u) +
	       (o->rng ? 1u : 0u);
}

void mmio_slot_layout(unsigned i, uint64_t *base, unsigned *irq)
{
	*base = VIRTIO_MMIO_BASE + (uint64_t)i * VIRTIO_MMIO_STRIDE;
	*irq = slot_irqs[i];
}

int mmio_devices_cmdline(char *cmdline, size_t cap, unsigned n)
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
		return verr_set(e, -ENOSPC, "too many devices: vmm has %d virtio slots",
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

static void blk_free(void *model)
{
	virtio_blk_destroy(model);
}

static void net_free(void *model)
{
	virtio_net_destroy(model);
}

static void vsock_free(void *model)
{
	virtio_vsock_destroy(model);
}

static void rng_free(void *model)
{
	virtio_rng_destroy(model);
	free(model);
}

int mmio_devices_create(struct mmio_devices *md, const struct vmm_options *o,
			const struct guest_mem *mem, int vm_fd, struct bus *mmio_bus,
			struct event_loop *el, struct verr *e)
{
	md->n = 0;
	md->vm_fd = vm_fd;
	md->el = el;
	int r;
	for (unsigned i = 0; i < (o->rootfs ? 1u : 0u) + o->ndisks; i++) {
		struct virtio_blk_options bo;
		struct virtio_blk *b;
		r = o->rootfs && i == 0
			? virtio_blk_options_path(o->rootfs, o->container && !o->rootfs_rw, &bo, e)
			: virtio_blk_parse(o->disks[i - (o->rootfs ? 1 : 0)], &bo, e);
		if (r == 0)
			r = virtio_blk_create(&b, &bo, mem, el, e);
		if (r < 0)
			return r;
		r = attach(md, virtio_blk_dev(b), blk_free, b, mmio_bus, e);
		if (r < 0)
			return r;
	}
	for (unsigned i = 0; i < o->nnets; i++) {
		struct virtio_net_opts no;
		struct virtio_net *n;
		r = virtio_net_parse(o->nets[i], &no, e);
		if (r == 0)
			r = virtio_net_create(&n, &no, mem, el, e);
		if (r < 0)
			return r;
		r = attach(md, virtio_net_dev(n), net_free, n, mmio_bus, e);
		if (r < 0)
			return r;
	}
	if (o->vsock || o->container) {
		/* A container without --vsock still needs the agent's channel: CID 3, no socket. */
		struct virtio_vsock_options vo = {.cid = 3};
		struct virtio_vsock *v;
		r = o->vsock ? virtio_vsock_parse(o->vsock, &vo, e) : 0;
		if (r == 0)
			r = virtio_vsock_create(&v, &vo, mem, el, e);
		if (r < 0)
			return r;
		md->vsock = v;
		r = attach(md, virtio_vsock_dev(v), vsock_free, v, mmio_bus, e);
		if (r < 0)
			return r;
	}
	if (o->rng) {
		struct virtio_rng *rng = calloc(1, sizeof(*rng));
		if (!rng)
			return verr_set(e, -ENOMEM, "virtio-rng: out of memory");
		virtio_rng_init(rng, mem);
		r = attach(md, &rng->dev, rng_free, rng, mmio_bus, e);
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
