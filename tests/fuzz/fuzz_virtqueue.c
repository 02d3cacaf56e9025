/* libFuzzer target for the split virtqueue: the input is a hostile driver's whole view of a
 * queue (ring addresses, size, features, and guest RAM holding rings, descriptors, indirect
 * tables and data). The device side pops every chain, checks what it got, writes into the
 * writable buffers, pushes them back and asks about notifications, for a few rounds in which the
 * driver moves avail->idx on. Any crash, sanitizer report or broken invariant is a finding.
 *
 * Input layout (little endian): struct fuzz_hdr, then bytes copied into guest RAM from gpa 0
 * (region 0: [0, 64 KiB)), continuing at gpa 0x20000 (region 1: [128, 192 KiB)); the gap
 * between the regions is not RAM. */
#include "devices/virtio.h"
#include "devices/virtqueue.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct fuzz_hdr {
	uint8_t features;   /* bit 0: event idx, bit 1: indirect descriptors */
	uint8_t rounds;	    /* 1 + rounds % 4 */
	uint16_t size;	    /* QueueNum as the driver wrote it (not checked here) */
	uint16_t kick_step; /* added to avail->idx by the driver between rounds */
	uint16_t start_idx; /* where the device's indexes start: queues that ran a while */
	uint32_t written;   /* bytes the device claims to have written per chain */
	uint32_t desc_gpa, avail_gpa, used_gpa;
} __attribute__((packed));

#define REGION_SIZE 0x10000u
#define REGION1_GPA 0x20000u

static struct guest_mem mem;
static struct virtq_chain chain;
static uint8_t scratch[1 << 16];
static unsigned irqs;

static void count_irq(void *opaque)
{
	(void)opaque;
	irqs++;
}

static const struct virtio_dev_ops ops;

/* Everything virtq_pop returned must describe guest RAM and add up. */
static void check_chain(const struct virtq_chain *c, const struct virtq *q)
{
	uint64_t out = 0, in = 0;
	if ((unsigned)c->nout + c->nin > VIRTQ_CHAIN_MAX || c->head >= q->size)
		abort();
	for (unsigned i = 0; i < (unsigned)c->nout + c->nin; i++) {
		const uint8_t *b = c->iov[i].iov_base;
		size_t l = c->iov[i].iov_len;
		bool inside = false;
		for (unsigned r = 0; r < mem.nr_regions; r++) {
			const struct guest_region *g = &mem.region[r];
			if (b >= g->host && l <= g->size && (size_t)(b - g->host) <= g->size - l)
				inside = true;
		}
		if (!inside || l == 0)
			abort();
		if (i < c->nout)
			out += l;
		else
			in += l;
	}
	if (out != c->out_bytes || in != c->in_bytes)
		abort();
}

static void drain(struct virtio_dev *d, const struct fuzz_hdr *h)
{
	struct virtq *q = &d->vq[0];
	/* The usual device loop: kicks off, take everything, kicks on, look again. Our own
	 * writes may land in the rings (the guest can aim buffers at them), so bound it. */
	for (unsigned pass = 0; pass < 4; pass++) {
		virtq_enable_kicks(q, false);
		int r = 0;
		for (unsigned n = 0; n < 2 * VIRTQ_MAX_SIZE; n++) {
			r = virtq_pop(q, &chain);
			if (r <= 0)
				break;
			check_chain(&chain, q);
			size_t off = h->written % 5;
			size_t left = chain.out_bytes > off ? chain.out_bytes - off : 0;
			size_t got = virtq_chain_read(&chain, off, scratch, sizeof(scratch));
			if (got != (left < sizeof(scratch) ? left : sizeof(scratch)))
				abort();
			size_t want = h->written < sizeof(scratch) ? h->written : sizeof(scratch);
			size_t put = virtq_chain_write(&chain, h->written % 7, scratch, want);
			if (put > want || put > chain.in_bytes)
				abort();
			virtq_push(q, &chain, h->written);
			if (n % 3 == 0)
				virtio_dev_notify_used(d, 0);
		}
		virtio_dev_notify_used(d, 0);
		if (r < 0) {
			if (r != -EINVAL || !q->broken || virtq_pop(q, &chain) != -EINVAL)
				abort();
			virtio_dev_fail(d, "malformed chain (fuzz)");
			return;
		}
		if (!virtq_enable_kicks(q, true))
			return;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!mem.map) {
		const struct guest_region layout[] = {{.gpa = 0, .size = REGION_SIZE},
						      {.gpa = REGION1_GPA, .size = REGION_SIZE}};
		if (guest_mem_init(&mem, layout, 2) < 0)
			abort();
	}
	struct fuzz_hdr h;
	if (size < sizeof(h))
		return -1; /* not an input: keep it out of the corpus */
	memcpy(&h, data, sizeof(h));
	data += sizeof(h);
	size -= sizeof(h);
	memset(mem.map, 0, mem.map_len);
	memcpy(mem.map, data, size < mem.map_len ? size : mem.map_len);

	struct virtio_dev d;
	virtio_dev_init(&d, "virtio-fuzz", 0, &ops, NULL, 0, 0, 1, &mem);
	d.raise_irq = count_irq;
	d.status = VIRTIO_CONFIG_S_DRIVER_OK;
	struct virtq *q = &d.vq[0];
	q->size = h.size;
	q->desc_gpa = h.desc_gpa;
	q->avail_gpa = h.avail_gpa;
	q->used_gpa = h.used_gpa;
	q->ready = true;
	if (virtq_activate(q, &mem, h.features & 1, h.features & 2) == 0) {
		q->last_avail = q->used_idx = q->signalled_used = h.start_idx;
		uint16_t *avail_idx = (uint16_t *)q->avail + 1;
		for (unsigned round = 0; round <= h.rounds % 4u; round++) {
			if (d.status & VIRTIO_CONFIG_S_NEEDS_RESET)
				break;
			drain(&d, &h);
			/* The driver posts more: the same ring entries, further on. */
			*avail_idx = (uint16_t)(*avail_idx + h.kick_step);
		}
		virtq_should_notify(q);
		virtq_has_avail(q);
	} else if (q->desc || q->avail || q->used || virtq_pop(q, &chain) != -EINVAL) {
		abort();
	}
	virtq_reset(q);
	virtio_dev_destroy(&d);
	return 0;
}
