/* What every virtio device shares, whatever its model and transport: features, the interrupt
 * status, used-buffer and configuration interrupts, and the NEEDS_RESET path for a guest that
 * broke the protocol. */
#include "devices/virtio.h"

#include "vmm/log.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void virtio_dev_init(struct virtio_dev *d, const char *name, uint32_t device_id,
		     const struct virtio_dev_ops *ops, void *priv, uint64_t features,
		     uint32_t config_len, unsigned nr_queues, const struct guest_mem *mem)
{
	assert(nr_queues <= VIRTIO_MAX_QUEUES);
	memset(d, 0, sizeof(*d));
	d->name = name;
	d->device_id = device_id;
	d->ops = ops;
	d->priv = priv;
	d->host_features = features | (1ull << VIRTIO_F_VERSION_1);
	d->config_len = config_len;
	d->nr_queues = nr_queues;
	d->mem = mem;
	pthread_mutex_init(&d->lock, NULL);
	atomic_init(&d->isr, 0);
	atomic_init(&d->stats.requests, 0);
	atomic_init(&d->stats.bytes, 0);
	atomic_init(&d->stats.errors, 0);
	atomic_init(&d->stats.needs_reset, 0);
}

void virtio_dev_destroy(struct virtio_dev *d)
{
	pthread_mutex_destroy(&d->lock);
}

static void interrupt(struct virtio_dev *d, unsigned bit)
{
	atomic_fetch_or(&d->isr, bit);
	if (d->raise_irq)
		d->raise_irq(d->irq_opaque);
}

void virtio_dev_notify_used(struct virtio_dev *d, unsigned q)
{
	if (q >= d->nr_queues || !virtq_should_notify(&d->vq[q]))
		return;
	interrupt(d, VIRTIO_ISR_QUEUE);
}

void virtio_dev_config_changed(struct virtio_dev *d)
{
	d->config_generation++;
	interrupt(d, VIRTIO_ISR_CONFIG);
}

void virtio_dev_fail(struct virtio_dev *d, const char *fmt, ...)
{
	/* One report per failure: the driver resets the device (clearing the bit) or gives up. */
	if (d->status & VIRTIO_CONFIG_S_NEEDS_RESET)
		return;
	/* Shared by every device, whose locks differ: the limiter has its own. */
	static struct log_ratelimit rl;
	static pthread_mutex_t rl_lock = PTHREAD_MUTEX_INITIALIZER;
	char what[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&rl_lock);
	vmm_log_ratelimited(&rl, 5, "%s: %s; the device needs a reset", d->name, what);
	pthread_mutex_unlock(&rl_lock);
	d->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
	virtio_stat_add(&d->stats.needs_reset, 1);
	interrupt(d, VIRTIO_ISR_CONFIG);
}

void virtio_dev_stats_get(const struct virtio_dev *d, struct virtio_dev_stats_snapshot *out)
{
	const struct virtio_dev_stats *s = &d->stats;
	out->requests = atomic_load_explicit(&s->requests, memory_order_relaxed);
	out->bytes = atomic_load_explicit(&s->bytes, memory_order_relaxed);
	out->errors = atomic_load_explicit(&s->errors, memory_order_relaxed);
	out->needs_reset = atomic_load_explicit(&s->needs_reset, memory_order_relaxed);
}

unsigned virtio_dev_queues_get(struct virtio_dev *d, struct virtq_state out[VIRTIO_MAX_QUEUES],
			       unsigned *isr)
{
	pthread_mutex_lock(&d->lock);
	unsigned n = d->nr_queues < VIRTIO_MAX_QUEUES ? d->nr_queues : VIRTIO_MAX_QUEUES;
	for (unsigned i = 0; i < n; i++)
		virtq_state_get(&d->vq[i], &out[i]);
	*isr = atomic_load(&d->isr);
	pthread_mutex_unlock(&d->lock);
	return n;
}

bool virtio_dev_running(const struct virtio_dev *d)
{
	return (d->status & VIRTIO_CONFIG_S_DRIVER_OK) &&
	       !(d->status & (VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED));
}
