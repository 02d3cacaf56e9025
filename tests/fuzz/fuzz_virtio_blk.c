/* libFuzzer target for virtio-blk: the input is a hostile driver's queue and guest RAM (rings,
 * request headers, data, discard segments), fed to a virtio-blk device over a small temporary
 * image with the synchronous engine (deterministic: every request ends inside the kick). The
 * device is reset and re-activated for each input, and the image is zeroed, so inputs do not
 * depend on each other. Any crash, sanitizer report or broken invariant is a finding: every chain
 * taken is answered (but one that fails the device), and the image never changes size.
 *
 * Input layout (little endian): struct fuzz_hdr, then bytes copied into guest RAM from gpa 0
 * ([0, 64 KiB); the queue's rings are at DESC_GPA, AVAIL_GPA and USED_GPA). */
#include "devices/virtio_blk.h"

#include <errno.h>
#include <linux/virtio_ring.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fuzz_hdr {
	uint8_t flags;	  /* FLAG_* */
	uint8_t rounds;	  /* kicks: 1 + rounds % 4 */
	uint8_t size_log; /* queue size 1 << (size_log % 9) */
	uint8_t pad;
	uint16_t kick_step; /* added to avail->idx between kicks (the driver posts again) */
} __attribute__((packed));

#define FLAG_EVENT_IDX 1u
#define FLAG_INDIRECT  2u
#define FLAG_RO	       4u /* the read-only disk */

#define RAM_SIZE  0x10000u
#define DESC_GPA  0x0000u
#define AVAIL_GPA 0x1000u
#define USED_GPA  0x1400u
#define IMG_SIZE  (64 * 1024)

static struct guest_mem mem;
static int img_fd[2] = {-1, -1};
static struct virtio_blk *blk[2]; /* read-write, read-only */

static void no_irq(void *opaque)
{
	(void)opaque;
}

/* A temporary image, already unlinked, and a device on it. */
static void make_disk(unsigned i)
{
	char path[256];
	const char *dir = getenv("TMPDIR");
	snprintf(path, sizeof(path), "%s/vmm-fuzz-blk-XXXXXX", dir && *dir ? dir : "/tmp");
	img_fd[i] = mkstemp(path);
	if (img_fd[i] < 0 || ftruncate(img_fd[i], IMG_SIZE) < 0)
		abort();
	struct virtio_blk_options o;
	struct verr e;
	if (virtio_blk_options_path(path, i == 1, &o, &e) < 0)
		abort();
	snprintf(o.serial, sizeof(o.serial), "fuzz-%u", i);
	/* no event loop: the synchronous engine */
	if (virtio_blk_create(&blk[i], &o, &mem, NULL, &e) < 0) {
		fprintf(stderr, "%s\n", e.msg);
		abort();
	}
	unlink(path);
	virtio_blk_dev(blk[i])->raise_irq = no_irq;
}

/* Synchronous requests end inside the kick: every chain taken was given back, except the one
 * that made the device fail (no status byte to answer in). */
static void check_all_answered(const struct virtio_dev *d, const struct virtq *q)
{
	uint16_t unanswered = (uint16_t)(q->last_avail - q->used_idx);
	if (unanswered > (virtio_dev_running(d) ? 0 : 1))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!mem.map) {
		const struct guest_region one = {.gpa = 0, .size = RAM_SIZE};
		if (guest_mem_init(&mem, &one, 1) < 0)
			abort();
		make_disk(0);
		make_disk(1);
	}
	struct fuzz_hdr h;
	if (size < sizeof(h))
		return -1; /* not an input: keep it out of the corpus */
	memcpy(&h, data, sizeof(h));
	data += sizeof(h);
	size -= sizeof(h);
	memset(mem.map, 0, mem.map_len);
	memcpy(mem.map, data, size < mem.map_len ? size : mem.map_len);

	unsigned which = h.flags & FLAG_RO ? 1 : 0;
	if (ftruncate(img_fd[which], 0) < 0 || ftruncate(img_fd[which], IMG_SIZE) < 0)
		abort();
	struct virtio_dev *d = virtio_blk_dev(blk[which]);
	struct virtq *q = &d->vq[0];

	/* What the transport does: features, queue registers, DRIVER_OK, activate. */
	d->acked_features = d->host_features;
	if (!(h.flags & FLAG_EVENT_IDX))
		d->acked_features &= ~(1ull << VIRTIO_RING_F_EVENT_IDX);
	if (!(h.flags & FLAG_INDIRECT))
		d->acked_features &= ~(1ull << VIRTIO_RING_F_INDIRECT_DESC);
	q->size = (uint16_t)(1u << (h.size_log % 9));
	q->desc_gpa = DESC_GPA;
	q->avail_gpa = AVAIL_GPA;
	q->used_gpa = USED_GPA;
	q->ready = true;
	if (virtq_activate(q, &mem, h.flags & FLAG_EVENT_IDX, h.flags & FLAG_INDIRECT) < 0)
		abort(); /* the layout above fits every size */
	d->status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		    VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
	if (d->ops->activate(d) < 0)
		abort();

	uint16_t *avail_idx = guest_mem_ptr(&mem, AVAIL_GPA + 2, 2);
	for (unsigned round = 0; round <= h.rounds % 4u; round++) {
		pthread_mutex_lock(&d->lock);
		d->ops->queue_notify(d, 0);
		pthread_mutex_unlock(&d->lock);
		if (!virtio_dev_running(d))
			break;
		*avail_idx = (uint16_t)(*avail_idx + h.kick_step);
	}
	check_all_answered(d, q);
	struct stat st;
	if (fstat(img_fd[which], &st) < 0 || st.st_size != IMG_SIZE)
		abort();

	/* The driver resets the device. */
	pthread_mutex_lock(&d->lock);
	d->status = 0;
	d->ops->reset(d);
	virtq_reset(q);
	pthread_mutex_unlock(&d->lock);
	atomic_store(&d->isr, 0);
	return 0;
}
