/* virtio-mmio transport, register layout version 2. See virtio_mmio.h for the rules it enforces. */
#include "devices/virtio_mmio.h"
#include "vmm/le.h"
#include "vmm/log.h"

#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <errno.h>
#include <string.h>

#define MMIO_MAGIC 0x74726976 /* "virt" */

static struct log_ratelimit bad_access_rl;

#define guest_error(...) vmm_log_ratelimited(&bad_access_rl, 5, __VA_ARGS__)

void virtio_mmio_init(struct virtio_mmio *t, struct virtio_dev *d)
{
	memset(t, 0, sizeof(*t));
	t->dev = d;
}

/* The selected queue, or NULL when QueueSel names none. */
static struct virtq *selected(struct virtio_mmio *t)
{
	return t->queue_sel < t->dev->nr_queues ? &t->dev->vq[t->queue_sel] : NULL;
}

static void reset_locked(struct virtio_mmio *t)
{
	struct virtio_dev *d = t->dev;
	if (d->ops->reset)
		d->ops->reset(d);
	for (unsigned i = 0; i < d->nr_queues; i++)
		virtq_reset(&d->vq[i]);
	d->status = 0;
	d->acked_features = 0;
	atomic_store(&d->isr, 0);
	t->dev_features_sel = t->drv_features_sel = t->queue_sel = 0;
}

void virtio_mmio_reset(struct virtio_mmio *t)
{
	pthread_mutex_lock(&t->dev->lock);
	reset_locked(t);
	pthread_mutex_unlock(&t->dev->lock);
}

static uint32_t read_reg(struct virtio_mmio *t, uint64_t off)
{
	struct virtio_dev *d = t->dev;
	struct virtq *q = selected(t);

	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION:
		return 2;
	case VIRTIO_MMIO_DEVICE_ID:
		return d->device_id;
	case VIRTIO_MMIO_VENDOR_ID:
		return VIRTIO_MMIO_VENDOR;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		if (t->dev_features_sel > 1)
			return 0;
		return (uint32_t)(d->host_features >> (32 * t->dev_features_sel));
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return q ? VIRTQ_MAX_SIZE : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		return q ? q->ready : 0;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		return atomic_load(&d->isr);
	case VIRTIO_MMIO_STATUS:
		return d->status;
	case VIRTIO_MMIO_SHM_LEN_LOW:
	case VIRTIO_MMIO_SHM_LEN_HIGH:
		return 0xffffffff; /* no shared memory regions */
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return d->config_generation;
	default:
		/* Write-only and reserved registers read as 0. */
		return 0;
	}
}

/* The status write: 0 resets; otherwise bits are only ever added, in the spec's order. */
static void write_status(struct virtio_mmio *t, uint32_t v)
{
	struct virtio_dev *d = t->dev;
	uint8_t old = d->status, add;

	if (v == 0) {
		reset_locked(t);
		return;
	}
	if (v > 0xff || (v & old) != old) {
		guest_error("%s: status 0x%x would clear bits of 0x%x without a reset; ignored",
			    d->name, v, old);
		return;
	}
	add = (uint8_t)(v & ~old);
	if (add & VIRTIO_CONFIG_S_FEATURES_OK) {
		uint64_t acked = d->acked_features;
		if (!(v & VIRTIO_CONFIG_S_DRIVER) || (acked & ~d->host_features) ||
		    !((acked >> VIRTIO_F_VERSION_1) & 1)) {
			/* Not set: the driver reads the status back and gives up cleanly. */
			guest_error("%s: driver features 0x%llx not acceptable (offered 0x%llx, "
				    "VERSION_1 required); FEATURES_OK refused",
				    d->name, (unsigned long long)acked,
				    (unsigned long long)d->host_features);
			v &= ~(uint32_t)VIRTIO_CONFIG_S_FEATURES_OK;
			add &= (uint8_t)~VIRTIO_CONFIG_S_FEATURES_OK;
		}
	}
	if (add & VIRTIO_CONFIG_S_DRIVER_OK) {
		if (!(v & VIRTIO_CONFIG_S_FEATURES_OK)) {
			guest_error("%s: DRIVER_OK before FEATURES_OK; ignored", d->name);
			return;
		}
		d->status = (uint8_t)v;
		if (d->ops->activate && d->ops->activate(d) < 0)
			virtio_dev_fail(d, "the device could not start");
		return;
	}
	d->status = (uint8_t)v;
}

/* Queue set-up registers: only while the queue is not ready and the driver is not running. */
static struct virtq *queue_for_setup(struct virtio_mmio *t, uint64_t off)
{
	struct virtq *q = selected(t);
	if (!q) {
		guest_error(
		    "%s: write to queue register 0x%llx with QueueSel %u (the device has %u "
		    "queues); ignored",
		    t->dev->name, (unsigned long long)off, t->queue_sel, t->dev->nr_queues);
		return NULL;
	}
	if (q->ready || (t->dev->status & VIRTIO_CONFIG_S_DRIVER_OK) ||
	    !(t->dev->status & VIRTIO_CONFIG_S_FEATURES_OK)) {
		guest_error("%s: queue %u register 0x%llx written while the queue is ready or "
			    "outside set-up (status 0x%x); ignored",
			    t->dev->name, t->queue_sel, (unsigned long long)off, t->dev->status);
		return NULL;
	}
	return q;
}

static void set_half(uint64_t *r, uint32_t v, bool high)
{
	if (high)
		*r = (*r & 0xffffffffULL) | ((uint64_t)v << 32);
	else
		*r = (*r & ~0xffffffffULL) | v;
}

static void write_queue_ready(struct virtio_mmio *t, uint32_t v)
{
	struct virtio_dev *d = t->dev;
	struct virtq *q = selected(t);

	if (!q) {
		guest_error("%s: QueueReady with QueueSel %u out of range; ignored", d->name,
			    t->queue_sel);
		return;
	}
	if (v == 0) {
		/* Un-readying one queue of a running device is a per-queue reset (RING_RESET),
		 * which is not offered; before DRIVER_OK it just drops the set-up. */
		if (q->ready && !(d->status & VIRTIO_CONFIG_S_DRIVER_OK))
			virtq_reset(q);
		return;
	}
	if (!queue_for_setup(t, VIRTIO_MMIO_QUEUE_READY))
		return;
	if (virtq_activate(q, d->mem, virtio_has_feature(d, VIRTIO_RING_F_EVENT_IDX),
			   virtio_has_feature(d, VIRTIO_RING_F_INDIRECT_DESC)) < 0) {
		virtio_dev_fail(d,
				"queue %u set up with a bad size (%u) or ring addresses "
				"(desc 0x%llx avail 0x%llx used 0x%llx)",
				t->queue_sel, q->size, (unsigned long long)q->desc_gpa,
				(unsigned long long)q->avail_gpa, (unsigned long long)q->used_gpa);
		return;
	}
	q->ready = true;
}

static void write_reg(struct virtio_mmio *t, uint64_t off, uint32_t v, bool *kick, unsigned *kq)
{
	struct virtio_dev *d = t->dev;
	struct virtq *q;

	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		t->dev_features_sel = v;
		return;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		t->drv_features_sel = v;
		return;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		if (!(d->status & VIRTIO_CONFIG_S_DRIVER) ||
		    (d->status & VIRTIO_CONFIG_S_FEATURES_OK)) {
			guest_error("%s: driver features written in status 0x%x; ignored", d->name,
				    d->status);
			return;
		}
		if (t->drv_features_sel > 1) {
			if (v)
				guest_error("%s: driver features word %u is not offered; ignored",
					    d->name, t->drv_features_sel);
			return;
		}
		if (t->drv_features_sel == 0)
			d->acked_features = (d->acked_features & ~0xffffffffULL) | v;
		else
			d->acked_features =
			    (d->acked_features & 0xffffffffULL) | ((uint64_t)v << 32);
		return;
	case VIRTIO_MMIO_QUEUE_SEL:
		t->queue_sel = v;
		return;
	case VIRTIO_MMIO_QUEUE_NUM:
		if ((q = queue_for_setup(t, off)))
			q->size = v > 0xffff ? 0 : (uint16_t)v; /* checked at QueueReady */
		return;
	case VIRTIO_MMIO_QUEUE_READY:
		write_queue_ready(t, v);
		return;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		if (v >= d->nr_queues || !d->vq[v].ready) {
			guest_error("%s: notify for queue %u, which is not set up; ignored",
				    d->name, v);
			return;
		}
		*kick = true;
		*kq = v;
		return;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		atomic_fetch_and(&d->isr, ~v);
		return;
	case VIRTIO_MMIO_STATUS:
		write_status(t, v);
		return;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		if ((q = queue_for_setup(t, off)))
			set_half(&q->desc_gpa, v, off == VIRTIO_MMIO_QUEUE_DESC_HIGH);
		return;
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
		if ((q = queue_for_setup(t, off)))
			set_half(&q->avail_gpa, v, off == VIRTIO_MMIO_QUEUE_AVAIL_HIGH);
		return;
	case VIRTIO_MMIO_QUEUE_USED_LOW:
	case VIRTIO_MMIO_QUEUE_USED_HIGH:
		if ((q = queue_for_setup(t, off)))
			set_half(&q->used_gpa, v, off == VIRTIO_MMIO_QUEUE_USED_HIGH);
		return;
	case VIRTIO_MMIO_SHM_SEL:
		return; /* no regions: the lengths read as "none" whatever is selected */
	default:
		guest_error("%s: write of 0x%x to read-only or unknown register 0x%llx; ignored",
			    d->name, v, (unsigned long long)off);
		return;
	}
}

static void config_access(struct virtio_mmio *t, uint32_t off, uint8_t *data, unsigned size,
			  bool is_write)
{
	struct virtio_dev *d = t->dev;
	bool ok = (size == 1 || size == 2 || size == 4) && off <= d->config_len &&
		  size <= d->config_len - off;

	if (!ok) {
		guest_error("%s: %u-byte config %s at offset %u is outside its %u bytes; ignored",
			    d->name, size, is_write ? "write" : "read", off, d->config_len);
		if (!is_write)
			memset(data, 0, size);
		return;
	}
	if (is_write) {
		if (d->ops->config_write)
			d->ops->config_write(d, off, data, size);
	} else if (d->ops->config_read) {
		d->ops->config_read(d, off, data, size);
	} else {
		memset(data, 0, size);
	}
}

void virtio_mmio_access(void *opaque, uint64_t offset, uint8_t *data, unsigned size, bool is_write)
{
	struct virtio_mmio *t = opaque;
	struct virtio_dev *d = t->dev;
	bool kick = false;
	unsigned kq = 0;

	/* The guest's interrupt handler reads InterruptStatus and writes InterruptACK on every
	 * interrupt. The status is atomic, so these two take no lock: the vCPU does not wait for
	 * the event loop thread, which raises the interrupt while it still holds the device lock
	 * (and may keep it for a while, reading or writing a TAP or a disk). */
	if (size == 4 && offset == VIRTIO_MMIO_INTERRUPT_STATUS && !is_write) {
		uint32_t v = atomic_load(&d->isr);
		memcpy(data, &v, 4);
		return;
	}
	if (size == 4 && offset == VIRTIO_MMIO_INTERRUPT_ACK && is_write) {
		uint32_t v;
		memcpy(&v, data, 4);
		atomic_fetch_and(&d->isr, ~v);
		return;
	}

	pthread_mutex_lock(&d->lock);
	if (offset >= VIRTIO_MMIO_CONFIG) {
		config_access(t, (uint32_t)(offset - VIRTIO_MMIO_CONFIG), data, size, is_write);
	} else if (size != 4 || (offset & 3)) {
		guest_error("%s: %u-byte access to register 0x%llx (registers are 32-bit); ignored",
			    d->name, size, (unsigned long long)offset);
		if (!is_write)
			memset(data, 0, size);
	} else if (is_write) {
		uint32_t v;
		memcpy(&v, data, 4); /* x86 and the spec are little-endian */
		write_reg(t, offset, v, &kick, &kq);
	} else {
		uint32_t v = read_reg(t, offset);
		memcpy(data, &v, 4);
	}
	if (kick && !t->kick && d->ops->queue_notify)
		d->ops->queue_notify(d, kq);
	pthread_mutex_unlock(&d->lock);
	if (kick && t->kick)
		t->kick(t->kick_opaque, kq);
}

/* ---- snapshot state (layout: VIRTIO_MMIO_STATE_LEN in virtio_mmio.h, docs/snapshot.md) ---- */

#define QSTATE(i) (48u + (i)*40u)

void virtio_mmio_save(struct virtio_mmio *t, uint8_t out[VIRTIO_MMIO_STATE_LEN])
{
	struct virtio_dev *d = t->dev;
	memset(out, 0, VIRTIO_MMIO_STATE_LEN);
	pthread_mutex_lock(&d->lock);
	le_put32(out, d->device_id);
	le_put32(out + 4, d->nr_queues);
	le_put64(out + 8, d->host_features);
	le_put64(out + 16, d->acked_features);
	le_put32(out + 24, d->status);
	le_put32(out + 28, atomic_load(&d->isr));
	le_put32(out + 32, d->config_generation);
	le_put32(out + 36, t->dev_features_sel);
	le_put32(out + 40, t->drv_features_sel);
	le_put32(out + 44, t->queue_sel);
	for (unsigned i = 0; i < d->nr_queues; i++) {
		const struct virtq *q = &d->vq[i];
		uint8_t *p = out + QSTATE(i);
		le_put16(p, q->size);
		p[2] = q->ready;
		p[3] = q->broken;
		p[4] = q->signalled_valid;
		le_put64(p + 8, q->desc_gpa);
		le_put64(p + 16, q->avail_gpa);
		le_put64(p + 24, q->used_gpa);
		le_put16(p + 32, q->last_avail);
		le_put16(p + 34, q->used_idx);
		le_put16(p + 36, q->signalled_used);
	}
	pthread_mutex_unlock(&d->lock);
}

static bool zero(const uint8_t *p, size_t n)
{
	while (n--)
		if (*p++)
			return false;
	return true;
}

/* The checks of virtio_mmio_restore, nothing loaded yet. */
static int check_state(const struct virtio_dev *d, const uint8_t *in, size_t len, struct verr *e)
{
	if (len != VIRTIO_MMIO_STATE_LEN)
		return verr_set(e, -EINVAL, "%s: the saved transport is %zu bytes, not %u", d->name,
				len, VIRTIO_MMIO_STATE_LEN);
	uint32_t id = le_get32(in), nq = le_get32(in + 4);
	uint64_t host = le_get64(in + 8), acked = le_get64(in + 16);
	uint32_t st = le_get32(in + 24);
	if (id != d->device_id || nq != d->nr_queues)
		return verr_set(
		    e, -EINVAL,
		    "%s: the snapshot has virtio device %u with %u queues in this "
		    "slot, this VM device %u with %u: give the devices the snapshot had",
		    d->name, id, nq, d->device_id, d->nr_queues);
	if (host != d->host_features)
		return verr_set(e, -EINVAL,
				"%s: offered features 0x%llx in the snapshot, 0x%llx now: give the "
				"device the options it had",
				d->name, (unsigned long long)host,
				(unsigned long long)d->host_features);
	const uint32_t known = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			       VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK |
			       VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED;
	bool fok = st & VIRTIO_CONFIG_S_FEATURES_OK;
	if ((st & ~known) || (acked & ~host) || (fok && !(st & VIRTIO_CONFIG_S_DRIVER)) ||
	    (fok && !((acked >> VIRTIO_F_VERSION_1) & 1)) ||
	    ((st & VIRTIO_CONFIG_S_DRIVER_OK) && !fok) || le_get32(in + 28) > 3)
		return verr_set(e, -EINVAL,
				"%s: status 0x%x, features 0x%llx and interrupt status 0x%x are "
				"not a state the transport can reach",
				d->name, st, (unsigned long long)acked, le_get32(in + 28));
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		const uint8_t *p = in + QSTATE(i);
		if (i >= nq ? !zero(p, 40)
			    : (p[2] > 1 || p[3] > 1 || p[4] > 1 || !zero(p + 5, 3) ||
			       !zero(p + 38, 2) || ((p[2] || p[3]) && !fok) || (p[3] && !p[2])))
			return verr_set(e, -EINVAL,
					"%s: the saved queue %u has flags or padding no transport "
					"writes",
					d->name, i);
	}
	return 0;
}

int virtio_mmio_restore(struct virtio_mmio *t, const uint8_t *in, size_t len, struct verr *e)
{
	struct virtio_dev *d = t->dev;
	int r = check_state(d, in, len, e);
	if (r < 0)
		return r;
	pthread_mutex_lock(&d->lock);
	if (d->status) {
		pthread_mutex_unlock(&d->lock);
		return verr_set(e, -EBUSY, "%s: restored onto a device already in use", d->name);
	}
	d->acked_features = le_get64(in + 16);
	d->config_generation = le_get32(in + 32);
	t->dev_features_sel = le_get32(in + 36);
	t->drv_features_sel = le_get32(in + 40);
	t->queue_sel = le_get32(in + 44);
	for (unsigned i = 0; i < d->nr_queues && r == 0; i++) {
		const uint8_t *p = in + QSTATE(i);
		struct virtq *q = &d->vq[i];
		q->size = le_get16(p);
		q->desc_gpa = le_get64(p + 8);
		q->avail_gpa = le_get64(p + 16);
		q->used_gpa = le_get64(p + 24);
		if (!p[2])
			continue;
		if (virtq_activate(q, d->mem, virtio_has_feature(d, VIRTIO_RING_F_EVENT_IDX),
				   virtio_has_feature(d, VIRTIO_RING_F_INDIRECT_DESC)) < 0) {
			r = verr_set(
			    e, -EINVAL,
			    "%s: the saved queue %u has a bad size (%u) or ring addresses "
			    "(desc 0x%llx avail 0x%llx used 0x%llx) for this guest's memory",
			    d->name, i, q->size, (unsigned long long)q->desc_gpa,
			    (unsigned long long)q->avail_gpa, (unsigned long long)q->used_gpa);
			break;
		}
		q->ready = true;
		q->broken = p[3];
		q->signalled_valid = p[4];
		q->last_avail = le_get16(p + 32);
		q->used_idx = le_get16(p + 34);
		q->signalled_used = le_get16(p + 36);
	}
	if (r < 0) {
		reset_locked(t);
		pthread_mutex_unlock(&d->lock);
		return r;
	}
	d->status = (uint8_t)le_get32(in + 24);
	atomic_store(&d->isr, le_get32(in + 28));
	if ((d->status & VIRTIO_CONFIG_S_DRIVER_OK) && !(d->status & VIRTIO_CONFIG_S_NEEDS_RESET) &&
	    d->ops->activate && d->ops->activate(d) < 0)
		virtio_dev_fail(d, "the device could not start after the restore");
	pthread_mutex_unlock(&d->lock);
	return 0;
}
