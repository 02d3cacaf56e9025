/* virtio-rng: fills the guest's buffers from getrandom(). */
#include "devices/virtio_rng.h"

#include <errno.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <sys/random.h>

/* Fills up to `len` bytes of the chain's writable buffers; returns the bytes written, and sets
 * *failed when getrandom() failed before all were. */
static uint32_t fill(const struct virtq_chain *c, uint32_t len, bool *failed)
{
	*failed = false;
	uint32_t done = 0;
	for (unsigned i = c->nout; i < (unsigned)c->nout + c->nin && done < len; i++) {
		uint8_t *p = c->iov[i].iov_base;
		size_t want = c->iov[i].iov_len;
		if (want > len - done)
			want = len - done;
		size_t got = 0;
		while (got < want) {
			ssize_t n = getrandom(p + got, want - got, 0);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				*failed = true;
				return done + (uint32_t)got; /* cannot happen once the pool is up */
			}
			got += (size_t)n;
		}
		done += (uint32_t)got;
	}
	return done;
}

static void rng_notify(struct virtio_dev *d, unsigned qi)
{
	struct virtio_rng *r = d->priv;
	struct virtq *q = &d->vq[qi];
	bool pushed = false;

	if (qi != 0 || !virtio_dev_running(d))
		return;
	virtq_enable_kicks(q, false);
	for (;;) {
		int rc = virtq_pop(q, &r->chain);
		if (rc < 0) {
			virtio_dev_fail(d, "malformed chain on the request queue");
			break;
		}
		if (rc == 0) {
			if (!virtq_enable_kicks(q, true))
				break; /* empty, and kicks are back on */
			virtq_enable_kicks(q, false);
			continue;
		}
		uint32_t len = r->chain.in_bytes < VIRTIO_RNG_MAX_REQUEST ? r->chain.in_bytes
									  : VIRTIO_RNG_MAX_REQUEST;
		bool failed;
		uint32_t done = fill(&r->chain, len, &failed);
		virtq_push(q, &r->chain, done);
		pushed = true;
		virtio_stat_add(&d->stats.requests, 1);
		virtio_stat_add(&d->stats.bytes, done);
		if (failed)
			virtio_stat_add(&d->stats.errors, 1);
	}
	if (pushed)
		virtio_dev_notify_used(d, 0);
}

/* Snapshots: every request is answered in the kick that took it, and the device keeps nothing
 * of its own (an empty device-state section). */
static size_t rng_save(const struct virtio_dev *d, uint8_t *out)
{
	(void)d, (void)out;
	return 0;
}

static int rng_restore(struct virtio_dev *d, const uint8_t *in, size_t len, struct verr *e)
{
	(void)in;
	if (len)
		return verr_set(e, -EINVAL,
				"%s: the snapshot's device state is %zu bytes, not 0: the snapshot "
				"is damaged or from another vmm",
				d->name, len);
	return 0;
}

static const struct virtio_dev_ops rng_ops = {
    .queue_notify = rng_notify,
    .save = rng_save,
    .restore = rng_restore,
};

void virtio_rng_init(struct virtio_rng *r, const struct guest_mem *mem)
{
	virtio_dev_init(&r->dev, "virtio-rng", VIRTIO_ID_RNG, &rng_ops, r,
			(1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC),
			0, 1, mem);
}

void virtio_rng_destroy(struct virtio_rng *r)
{
	virtio_dev_destroy(&r->dev);
}
