/* virtio-blk tests: a mock driver writes request chains into synthetic guest memory, kicks the
 * device and reads the used ring back, with the image a temporary file. Every request test runs
 * on both engines: io_uring (completions collected by running the event loop) and the
 * synchronous one (VMM_BLK_SYNC=1). Hostile requests included; the option parser and the image
 * checks of virtio_blk_create are tested on their own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "devices/virtio_blk.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_ring.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB	  (1ull << 20)
#define DESC_GPA  0x1000ull /* up to 256 descriptors */
#define AVAIL_GPA 0x3000ull
#define USED_GPA  0x4000ull
#define HEAP_GPA  0x10000ull /* headers, data, status bytes, indirect tables */
#define IMG_SIZE  (256 * 1024)

enum engine { ENGINE_URING, ENGINE_SYNC };
static enum engine uring_engine = ENGINE_URING, sync_engine = ENGINE_SYNC;

/* One test's world: guest RAM, an event loop, the image and the device, and the mock driver's
 * own view of its queue. */
struct t {
	enum engine engine;
	struct guest_mem mem;
	struct event_loop el;
	char path[256];
	int fd; /* the host's view of the image */
	struct virtio_blk *b;
	struct virtio_dev *d;
	uint16_t qsize;
	uint16_t avail_idx, last_used, next_desc;
	uint64_t heap;
	unsigned irqs;
};

struct buf {
	uint64_t gpa;
	uint32_t len;
	bool writable;
};

static void count_irq(void *opaque)
{
	((struct t *)opaque)->irqs++;
}

static void *gp(struct t *t, uint64_t gpa, uint64_t len)
{
	void *p = guest_mem_ptr(&t->mem, gpa, len);
	assert_non_null(p);
	return p;
}

/* Guest memory for a buffer, 16-byte aligned, filled with 0xee to see what the device wrote. */
static uint64_t galloc(struct t *t, uint32_t len)
{
	uint64_t gpa = t->heap;
	t->heap = (t->heap + len + 15) & ~15ull;
	assert_true(t->heap <= MIB);
	memset(gp(t, gpa, len), 0xee, len);
	return gpa;
}

/* Whether io_uring can run restricted rings here (Linux 5.10+ and io_uring not disabled). */
static bool io_uring_works(void)
{
	struct io_uring r;
	if (io_uring_queue_init(4, &r, IORING_SETUP_R_DISABLED) < 0)
		return false;
	io_uring_queue_exit(&r);
	return true;
}

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	t->engine = *(enum engine *)*state;
	t->fd = -1;
	const struct guest_region one = {.gpa = 0, .size = MIB};
	assert_int_equal(guest_mem_init(&t->mem, &one, 1), 0);
	assert_int_equal(ev_init(&t->el), 0);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;
	virtio_blk_destroy(t->b);
	if (t->fd >= 0)
		close(t->fd);
	if (t->path[0])
		unlink(t->path);
	ev_close(&t->el);
	guest_mem_free(&t->mem);
	free(t);
	return 0;
}

/* A temporary image of `size` bytes holding a known pattern; returns its fd. */
static int make_image(char *path, size_t pathlen, size_t size)
{
	const char *dir = getenv("TMPDIR");
	snprintf(path, pathlen, "%s/vmm-blk-XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	uint8_t *p = malloc(size ? size : 1);
	assert_non_null(p);
	for (size_t i = 0; i < size; i++)
		p[i] = (uint8_t)(i * 7 + (i >> 9));
	assert_int_equal(pwrite(fd, p, size, 0), (ssize_t)size);
	free(p);
	return fd;
}

/* Creates the device over a fresh image (the option string after "path=IMG"), as the engine of
 * the test asks, and drives it to DRIVER_OK the way the transport does. */
static void start_opts(struct t *t, size_t size, const char *extra, uint16_t qsize,
		       uint64_t drop_features)
{
	t->fd = make_image(t->path, sizeof(t->path), size);
	char spec[512];
	snprintf(spec, sizeof(spec), "path=%s%s", t->path, extra);
	struct virtio_blk_options o;
	struct verr e = {0};
	assert_int_equal(virtio_blk_parse(spec, &o, &e), 0);
	if (t->engine == ENGINE_SYNC)
		setenv("VMM_BLK_SYNC", "1", 1);
	else
		unsetenv("VMM_BLK_SYNC");
	int r = virtio_blk_create(&t->b, &o, &t->mem, &t->el, &e);
	unsetenv("VMM_BLK_SYNC");
	if (r < 0)
		fail_msg("%s", e.msg);
	if (t->engine == ENGINE_URING && !io_uring_works())
		skip(); /* io_uring is off on this host: only the synchronous engine can run */
	assert_int_equal(virtio_blk_uses_io_uring(t->b), t->engine == ENGINE_URING);

	t->d = virtio_blk_dev(t->b);
	t->d->raise_irq = count_irq;
	t->d->irq_opaque = t;
	t->d->acked_features = t->d->host_features & ~drop_features;
	t->qsize = qsize;
	t->heap = HEAP_GPA;
	struct virtq *q = &t->d->vq[0];
	q->size = qsize;
	q->desc_gpa = DESC_GPA;
	q->avail_gpa = AVAIL_GPA;
	q->used_gpa = USED_GPA;
	q->ready = true;
	assert_int_equal(virtq_activate(q, &t->mem,
					virtio_has_feature(t->d, VIRTIO_RING_F_EVENT_IDX),
					virtio_has_feature(t->d, VIRTIO_RING_F_INDIRECT_DESC)),
			 0);
	t->d->status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		       VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
	assert_int_equal(t->d->ops->activate(t->d), 0);
}

static void start(struct t *t, const char *extra)
{
	start_opts(t, IMG_SIZE, extra, 64, 0);
}

/* The driver's reset: status 0, device reset, queue reset; then set up again from scratch. */
static void driver_reset_and_restart(struct t *t)
{
	pthread_mutex_lock(&t->d->lock);
	t->d->status = 0;
	t->d->ops->reset(t->d);
	virtq_reset(&t->d->vq[0]);
	pthread_mutex_unlock(&t->d->lock);
	memset(gp(t, DESC_GPA, 0x4000), 0, 0x4000);
	t->avail_idx = t->last_used = t->next_desc = 0;
	struct virtq *q = &t->d->vq[0];
	q->size = t->qsize;
	q->desc_gpa = DESC_GPA;
	q->avail_gpa = AVAIL_GPA;
	q->used_gpa = USED_GPA;
	q->ready = true;
	assert_int_equal(virtq_activate(q, &t->mem, true, true), 0);
	t->d->status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		       VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
	assert_int_equal(t->d->ops->activate(t->d), 0);
}

static void set_desc(struct t *t, uint64_t table, unsigned i, const struct buf *b, bool more,
		     uint16_t next)
{
	struct vring_desc *e = gp(t, table + 16ull * i, 16);
	e->addr = htole64(b->gpa);
	e->len = htole32(b->len);
	e->flags = htole16((more ? VRING_DESC_F_NEXT : 0) | (b->writable ? VRING_DESC_F_WRITE : 0));
	e->next = htole16(next);
}

/* Writes bufs as a chain of descriptors (or as one indirect table) and makes it available.
 * Returns its head. */
static uint16_t post(struct t *t, const struct buf *bufs, unsigned n, bool indirect)
{
	uint16_t head = t->next_desc % t->qsize;
	if (indirect) {
		uint64_t table = galloc(t, 16 * n);
		for (unsigned i = 0; i < n; i++)
			set_desc(t, table, i, &bufs[i], i + 1 < n, (uint16_t)(i + 1));
		struct vring_desc *e = gp(t, DESC_GPA + 16ull * head, 16);
		e->addr = htole64(table);
		e->len = htole32(16 * n);
		e->flags = htole16(VRING_DESC_F_INDIRECT);
		t->next_desc++;
	} else {
		for (unsigned i = 0; i < n; i++) {
			uint16_t idx = (uint16_t)((t->next_desc + i) % t->qsize);
			set_desc(t, DESC_GPA, idx, &bufs[i], i + 1 < n,
				 (uint16_t)((idx + 1) % t->qsize));
		}
		t->next_desc = (uint16_t)(t->next_desc + n);
	}
	uint16_t *ring = gp(t, AVAIL_GPA + 4, 2ull * t->qsize);
	ring[t->avail_idx % t->qsize] = htole16(head);
	t->avail_idx++;
	__atomic_store_n((uint16_t *)gp(t, AVAIL_GPA + 2, 2), htole16(t->avail_idx),
			 __ATOMIC_RELEASE);
	return head;
}

static void kick(struct t *t)
{
	pthread_mutex_lock(&t->d->lock);
	t->d->ops->queue_notify(t->d, 0);
	pthread_mutex_unlock(&t->d->lock);
}

static uint16_t used_idx(struct t *t)
{
	return le16toh(__atomic_load_n((uint16_t *)gp(t, USED_GPA + 2, 2), __ATOMIC_ACQUIRE));
}

/* Waits for the next used entry (running the event loop for io_uring completions) and returns
 * it. */
static struct vring_used_elem next_used(struct t *t)
{
	while (used_idx(t) == t->last_used) {
		assert_true(virtio_blk_uses_io_uring(t->b)); /* sync requests end in the kick */
		assert_true(ev_run_once(&t->el, -1) >= 0);
	}
	struct vring_used_elem *e =
	    gp(t, USED_GPA + 4 + 8ull * (t->last_used % t->qsize), sizeof(*e));
	t->last_used++;
	return (struct vring_used_elem){le32toh(e->id), le32toh(e->len)};
}

/* A header buffer for (type, sector). */
static struct buf hdr(struct t *t, uint32_t type, uint64_t sector)
{
	struct buf b = {galloc(t, 16), 16, false};
	struct virtio_blk_outhdr *h = gp(t, b.gpa, 16);
	h->type = htole32(type);
	h->ioprio = 0;
	h->sector = htole64(sector);
	return b;
}

static struct buf status_buf(struct t *t)
{
	return (struct buf){galloc(t, 1), 1, true};
}

/* One request: header, data buffers split in `pieces`, status. Returns the status byte and the
 * used length; *data is the data's guest address. */
static uint8_t request(struct t *t, uint32_t type, uint64_t sector, uint32_t len, bool writable,
		       unsigned pieces, uint64_t *data, uint32_t *used_len)
{
	struct buf bufs[8];
	unsigned n = 0;
	bufs[n++] = hdr(t, type, sector);
	uint64_t gpa = galloc(t, len ? len : 1);
	if (data)
		*data = gpa;
	for (unsigned i = 0; i < pieces && len; i++) {
		uint32_t a = len * i / pieces, z = len * (i + 1) / pieces;
		bufs[n++] = (struct buf){gpa + a, z - a, writable};
	}
	struct buf st = status_buf(t);
	bufs[n++] = st;
	uint16_t head = post(t, bufs, n, false);
	kick(t);
	struct vring_used_elem u = next_used(t);
	assert_int_equal(u.id, head);
	if (used_len)
		*used_len = u.len;
	return *(uint8_t *)gp(t, st.gpa, 1);
}

/* The device's counters (devices/virtio.h) are these. */
static void expect_stats(struct t *t, uint64_t requests, uint64_t bytes, uint64_t errors,
			 uint64_t needs_reset)
{
	struct virtio_dev_stats_snapshot st;
	virtio_dev_stats_get(t->d, &st);
	assert_int_equal(st.requests, requests);
	assert_int_equal(st.bytes, bytes);
	assert_int_equal(st.errors, errors);
	assert_int_equal(st.needs_reset, needs_reset);
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 13 + (i >> 8));
}

/* ---- requests ---- */

static void write_then_read(void **state)
{
	struct t *t = *state;
	start(t, "");
	uint8_t want[8192];
	fill(want, sizeof(want), 1);
	uint64_t gpa;
	uint32_t len;
	/* OUT of 16 sectors at sector 3, the data in two buffers */
	uint64_t src = galloc(t, sizeof(want));
	memcpy(gp(t, src, sizeof(want)), want, sizeof(want));
	struct buf bufs[] = {hdr(t, VIRTIO_BLK_T_OUT, 3),
			     {src, 1000, false},
			     {src + 1000, 8192 - 1000, false},
			     status_buf(t)};
	uint16_t head = post(t, bufs, 4, false);
	kick(t);
	struct vring_used_elem u = next_used(t);
	assert_int_equal(u.id, head);
	assert_int_equal(u.len, 1);
	assert_int_equal(*(uint8_t *)gp(t, bufs[3].gpa, 1), VIRTIO_BLK_S_OK);
	expect_stats(t, 1, 8192, 0, 0);

	/* the host file holds the bytes, around them the old pattern */
	uint8_t file[8192 + 1024];
	assert_int_equal(pread(t->fd, file, sizeof(file), 2 * 512), (ssize_t)sizeof(file));
	assert_memory_equal(file + 512, want, sizeof(want));
	assert_int_equal(file[0], (uint8_t)(1024 * 7 + 2));
	assert_int_equal(file[512 + 8192], (uint8_t)((1024 + 512 + 8192) * 7 + 19));

	/* IN of the same sectors into three writable buffers */
	assert_int_equal(request(t, VIRTIO_BLK_T_IN, 3, 8192, true, 3, &gpa, &len),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(len, 8192 + 1);
	assert_memory_equal(gp(t, gpa, 8192), want, sizeof(want));
	assert_true(t->irqs > 0);
	expect_stats(t, 2, 2 * 8192, 0, 0); /* bytes written and read */
}

/* Any layout: the header shares a buffer with the data, or is split in two; data and status
 * share the last writable buffer; an indirect table carries a request. */
static void any_layout(void **state)
{
	struct t *t = *state;
	start(t, "");
	uint8_t want[1024];
	fill(want, sizeof(want), 9);

	/* header + data in one readable buffer */
	uint64_t one = galloc(t, 16 + 1024);
	struct virtio_blk_outhdr h = {htole32(VIRTIO_BLK_T_OUT), 0, htole64(10)};
	memcpy(gp(t, one, 16), &h, 16);
	memcpy(gp(t, one + 16, 1024), want, 1024);
	struct buf a[] = {{one, 16 + 1024, false}, status_buf(t)};
	post(t, a, 2, false);
	kick(t);
	assert_int_equal(next_used(t).len, 1);
	assert_int_equal(*(uint8_t *)gp(t, a[1].gpa, 1), VIRTIO_BLK_S_OK);

	/* header split 5 + 11, data and status in one writable buffer of 1025 bytes */
	uint64_t hg = galloc(t, 16);
	h.type = htole32(VIRTIO_BLK_T_IN);
	memcpy(gp(t, hg, 16), &h, 16);
	uint64_t ds = galloc(t, 1025);
	struct buf b[] = {{hg, 5, false}, {hg + 5, 11, false}, {ds, 1025, true}};
	post(t, b, 3, false);
	kick(t);
	assert_int_equal(next_used(t).len, 1025);
	assert_memory_equal(gp(t, ds, 1024), want, 1024);
	assert_int_equal(*(uint8_t *)gp(t, ds + 1024, 1), VIRTIO_BLK_S_OK);

	/* the same read through an indirect table */
	uint64_t d2 = galloc(t, 1024);
	struct buf c[] = {
	    hdr(t, VIRTIO_BLK_T_IN, 10), {d2, 512, true}, {d2 + 512, 512, true}, status_buf(t)};
	post(t, c, 4, true);
	kick(t);
	assert_int_equal(next_used(t).len, 1025);
	assert_memory_equal(gp(t, d2, 1024), want, 1024);
	assert_int_equal(*(uint8_t *)gp(t, c[3].gpa, 1), VIRTIO_BLK_S_OK);
}

static void flush_and_get_id(void **state)
{
	struct t *t = *state;
	start(t, ",id=vmm-disk-1");
	uint32_t len;
	assert_int_equal(request(t, VIRTIO_BLK_T_FLUSH, 0, 0, false, 0, NULL, &len),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(len, 1);

	uint64_t gpa;
	assert_int_equal(
	    request(t, VIRTIO_BLK_T_GET_ID, 0, VIRTIO_BLK_ID_BYTES, true, 1, &gpa, &len),
	    VIRTIO_BLK_S_OK);
	assert_int_equal(len, VIRTIO_BLK_ID_BYTES + 1);
	char want[VIRTIO_BLK_ID_BYTES] = "vmm-disk-1"; /* zero-padded */
	assert_memory_equal(gp(t, gpa, VIRTIO_BLK_ID_BYTES), want, VIRTIO_BLK_ID_BYTES);

	/* a smaller buffer gets what fits; a flush with data is refused */
	assert_int_equal(request(t, VIRTIO_BLK_T_GET_ID, 0, 4, true, 1, &gpa, &len),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(len, 5);
	assert_memory_equal(gp(t, gpa, 4), "vmm-", 4);
	assert_int_equal(request(t, VIRTIO_BLK_T_FLUSH, 0, 512, false, 1, NULL, NULL),
			 VIRTIO_BLK_S_IOERR);
	/* four answered, one an error; GET_ID's serial is no image data */
	expect_stats(t, 4, 0, 1, 0);
}

static void full_length_serial(void **state)
{
	struct t *t = *state;
	start(t, ",id=ABCDEFGHIJKLMNOPQRST");
	uint64_t gpa;
	uint32_t len;
	assert_int_equal(request(t, VIRTIO_BLK_T_GET_ID, 0, 32, true, 1, &gpa, &len),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(len, VIRTIO_BLK_ID_BYTES + 1);
	assert_memory_equal(gp(t, gpa, VIRTIO_BLK_ID_BYTES), "ABCDEFGHIJKLMNOPQRST", 20);
	assert_int_equal(*(uint8_t *)gp(t, gpa + 20, 1), 0xee); /* no NUL added */
}

static void config_space(void **state)
{
	struct t *t = *state;
	start(t, "");
	struct virtio_blk_config c;
	assert_int_equal(t->d->config_len, sizeof(c));
	assert_int_equal(t->d->device_id, 2);
	t->d->ops->config_read(t->d, 0, &c, sizeof(c));
	assert_int_equal(le64toh(c.capacity), IMG_SIZE / 512);
	assert_int_equal(virtio_blk_capacity(t->b), IMG_SIZE / 512);
	assert_int_equal(le32toh(c.blk_size), 512);
	assert_true(le32toh(c.seg_max) >= 1);
	uint32_t cap_lo;
	t->d->ops->config_read(t->d, 0, &cap_lo, 4); /* a narrow read at an offset */
	assert_int_equal(le32toh(cap_lo), IMG_SIZE / 512);
	uint64_t f = t->d->host_features;
	assert_true(f & (1ull << VIRTIO_F_VERSION_1));
	assert_true(f & (1ull << VIRTIO_BLK_F_FLUSH));
	assert_true(f & (1ull << VIRTIO_BLK_F_BLK_SIZE));
	assert_true(f & (1ull << VIRTIO_BLK_F_SEG_MAX));
	assert_true(f & (1ull << VIRTIO_RING_F_INDIRECT_DESC));
	assert_true(f & (1ull << VIRTIO_RING_F_EVENT_IDX));
	assert_false(f & (1ull << VIRTIO_BLK_F_RO));
	/* config writes change nothing */
	uint8_t junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	t->d->ops->config_write(t->d, 0, junk, 8);
	t->d->ops->config_read(t->d, 0, &c, sizeof(c));
	assert_int_equal(le64toh(c.capacity), IMG_SIZE / 512);
}

static void read_only_disk(void **state)
{
	struct t *t = *state;
	start(t, ",ro");
	uint64_t f = t->d->host_features;
	assert_true(f & (1ull << VIRTIO_BLK_F_RO));
	assert_false(f & (1ull << VIRTIO_BLK_F_DISCARD));
	assert_false(f & (1ull << VIRTIO_BLK_F_WRITE_ZEROES));
	uint8_t before[1024], after[1024];
	assert_int_equal(pread(t->fd, before, sizeof(before), 0), 1024);
	uint32_t len;
	assert_int_equal(request(t, VIRTIO_BLK_T_OUT, 0, 1024, false, 1, NULL, &len),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(len, 1);
	assert_int_equal(pread(t->fd, after, sizeof(after), 0), 1024);
	assert_memory_equal(before, after, sizeof(before));
	/* reads and flushes work */
	uint64_t gpa;
	assert_int_equal(request(t, VIRTIO_BLK_T_IN, 0, 1024, true, 2, &gpa, NULL),
			 VIRTIO_BLK_S_OK);
	assert_memory_equal(gp(t, gpa, 1024), before, 1024);
	assert_int_equal(request(t, VIRTIO_BLK_T_FLUSH, 0, 0, false, 0, NULL, NULL),
			 VIRTIO_BLK_S_OK);
	/* discard and write-zeroes are not offered, and refused */
	struct buf seg = {galloc(t, 16), 16, false};
	memset(gp(t, seg.gpa, 16), 0, 16);
	((uint32_t *)gp(t, seg.gpa, 16))[2] = htole32(1);
	struct buf bufs[] = {hdr(t, VIRTIO_BLK_T_WRITE_ZEROES, 0), seg, status_buf(t)};
	post(t, bufs, 3, false);
	kick(t);
	next_used(t);
	assert_int_not_equal(*(uint8_t *)gp(t, bufs[2].gpa, 1), VIRTIO_BLK_S_OK);
	expect_stats(t, 4, 1024, 2, 0); /* the refused write and write-zeroes are errors */
}

static void out_of_range(void **state)
{
	struct t *t = *state;
	start(t, "");
	const uint64_t cap = IMG_SIZE / 512;
	uint32_t len;
	/* the last sector is fine; one past it, a read across the end, and sectors whose byte
	 * offset overflows are not */
	assert_int_equal(request(t, VIRTIO_BLK_T_IN, cap - 1, 512, true, 1, NULL, &len),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(len, 513);
	assert_int_equal(request(t, VIRTIO_BLK_T_IN, cap, 512, true, 1, NULL, &len),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(len, 1);
	assert_int_equal(request(t, VIRTIO_BLK_T_IN, cap - 1, 1024, true, 1, NULL, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(t, VIRTIO_BLK_T_OUT, cap - 1, 1024, false, 2, NULL, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(t, VIRTIO_BLK_T_IN, UINT64_MAX, 512, true, 1, NULL, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(t, VIRTIO_BLK_T_OUT, 1ull << 55, 512, false, 1, NULL, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(
	    request(t, VIRTIO_BLK_T_OUT, (UINT64_MAX >> 9) + 1, 512, false, 1, NULL, NULL),
	    VIRTIO_BLK_S_IOERR);
	/* lengths that are not whole sectors */
	assert_int_equal(request(t, VIRTIO_BLK_T_IN, 0, 511, true, 1, NULL, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(t, VIRTIO_BLK_T_OUT, 0, 700, false, 1, NULL, NULL),
			 VIRTIO_BLK_S_IOERR);
	/* a zero-length read at the end is fine */
	assert_int_equal(request(t, VIRTIO_BLK_T_IN, cap, 0, true, 0, NULL, NULL), VIRTIO_BLK_S_OK);
}

static void unsupported_and_wrong_direction(void **state)
{
	struct t *t = *state;
	start(t, "");
	uint32_t len;
	assert_int_equal(request(t, VIRTIO_BLK_T_SCSI_CMD, 0, 0, false, 0, NULL, &len),
			 VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(len, 1);
	assert_int_equal(request(t, 0x1234, 0, 512, true, 1, NULL, NULL), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(request(t, VIRTIO_BLK_T_SECURE_ERASE, 0, 0, false, 0, NULL, NULL),
			 VIRTIO_BLK_S_UNSUPP);
	/* IN with readable data, OUT with writable data */
	assert_int_equal(request(t, VIRTIO_BLK_T_IN, 0, 512, false, 1, NULL, NULL),
			 VIRTIO_BLK_S_IOERR);
	uint8_t before[512], after[512];
	assert_int_equal(pread(t->fd, before, 512, 0), 512);
	assert_int_equal(request(t, VIRTIO_BLK_T_OUT, 0, 512, true, 1, NULL, &len),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(len, 1);
	assert_int_equal(pread(t->fd, after, 512, 0), 512);
	assert_memory_equal(before, after, 512);
	assert_int_equal(request(t, VIRTIO_BLK_T_GET_ID, 0, 20, false, 1, NULL, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_true(virtio_dev_running(t->d));
	expect_stats(t, 6, 0, 6, 0); /* three UNSUPP, three IOERR */
}

/* The header in a writable buffer (or cut short): the request still has a status byte, so it is
 * answered with IOERR. */
static void header_not_readable(void **state)
{
	struct t *t = *state;
	start(t, "");
	uint64_t w = galloc(t, 17);
	struct virtio_blk_outhdr h = {htole32(VIRTIO_BLK_T_IN), 0, 0};
	memcpy(gp(t, w, 16), &h, 16);
	struct buf a[] = {{w, 17, true}};
	post(t, a, 1, false);
	kick(t);
	struct vring_used_elem u = next_used(t);
	assert_int_equal(u.len, 1);
	assert_int_equal(*(uint8_t *)gp(t, w + 16, 1), VIRTIO_BLK_S_IOERR);
	assert_memory_equal(gp(t, w, 16), &h, 16); /* only the status byte was written */

	struct buf b[] = {{galloc(t, 8), 8, false}, {galloc(t, 512), 512, true}, status_buf(t)};
	memcpy(gp(t, b[0].gpa, 8), &h, 8);
	post(t, b, 3, false);
	kick(t);
	assert_int_equal(next_used(t).len, 1);
	assert_int_equal(*(uint8_t *)gp(t, b[2].gpa, 1), VIRTIO_BLK_S_IOERR);
	assert_true(virtio_dev_running(t->d));
}

/* No writable byte at all: the request cannot be answered, so the device fails (NEEDS_RESET),
 * pushes nothing, ignores kicks, and works again after a reset. */
static void missing_status_byte(void **state)
{
	struct t *t = *state;
	start(t, "");
	struct buf a[] = {hdr(t, VIRTIO_BLK_T_FLUSH, 0)};
	post(t, a, 1, false);
	unsigned irqs = t->irqs;
	kick(t);
	assert_true(t->d->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_false(virtio_dev_running(t->d));
	assert_int_equal(used_idx(t), 0);
	assert_true(t->irqs > irqs); /* the configuration interrupt */
	assert_true(atomic_load(&t->d->isr) & VIRTIO_ISR_CONFIG);
	expect_stats(t, 0, 0, 0, 1); /* not a request: the device failed */
	struct buf b[] = {hdr(t, VIRTIO_BLK_T_FLUSH, 0), status_buf(t)};
	post(t, b, 2, false);
	kick(t);
	assert_int_equal(used_idx(t), 0);
	expect_stats(t, 0, 0, 0, 1);

	driver_reset_and_restart(t);
	assert_true(virtio_dev_running(t->d));
	assert_int_equal(request(t, VIRTIO_BLK_T_FLUSH, 0, 0, false, 0, NULL, NULL),
			 VIRTIO_BLK_S_OK);
	expect_stats(t, 1, 0, 0, 1); /* the counters outlive the driver's reset */
	/* failing again after the reset counts again */
	struct buf c[] = {hdr(t, VIRTIO_BLK_T_FLUSH, 0)};
	post(t, c, 1, false);
	kick(t);
	expect_stats(t, 1, 0, 0, 2);
}

/* A malformed chain (a descriptor index past the queue) fails the device. */
static void malformed_chain(void **state)
{
	struct t *t = *state;
	start(t, "");
	uint16_t *ring = gp(t, AVAIL_GPA + 4, 2);
	ring[0] = htole16(t->qsize + 3);
	__atomic_store_n((uint16_t *)gp(t, AVAIL_GPA + 2, 2), htole16(1), __ATOMIC_RELEASE);
	kick(t);
	assert_true(t->d->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(used_idx(t), 0);
	expect_stats(t, 0, 0, 0, 1);
	driver_reset_and_restart(t);
	assert_int_equal(request(t, VIRTIO_BLK_T_IN, 0, 512, true, 1, NULL, NULL), VIRTIO_BLK_S_OK);
	expect_stats(t, 1, 512, 0, 1);
}

static void discard_and_write_zeroes(void **state)
{
	struct t *t = *state;
	start(t, "");
	uint64_t f = t->d->host_features;
	if (!(f & (1ull << VIRTIO_BLK_F_DISCARD)))
		skip(); /* the file system of TMPDIR cannot punch holes */
	assert_true(f & (1ull << VIRTIO_BLK_F_WRITE_ZEROES));
	struct virtio_blk_config c;
	t->d->ops->config_read(t->d, 0, &c, sizeof(c));
	assert_true(le32toh(c.max_discard_seg) >= 2);
	assert_true(le32toh(c.max_write_zeroes_seg) >= 2);
	assert_true(le32toh(c.max_discard_sectors) >= 8);

	uint8_t orig[64 * 512];
	assert_int_equal(pread(t->fd, orig, sizeof(orig), 0), (ssize_t)sizeof(orig));
	/* discard sectors 8..15 and 40..47 (two segments); write zeroes over 20..21 and, allowing
	 * unmap, 30..33 */
	struct virtio_blk_discard_write_zeroes seg[2] = {
	    {htole64(8), htole32(8), 0},
	    {htole64(40), htole32(8), 0},
	};
	uint64_t sg = galloc(t, sizeof(seg));
	memcpy(gp(t, sg, sizeof(seg)), seg, sizeof(seg));
	struct buf a[] = {hdr(t, VIRTIO_BLK_T_DISCARD, 0), {sg, sizeof(seg), false}, status_buf(t)};
	post(t, a, 3, false);
	kick(t);
	assert_int_equal(next_used(t).len, 1);
	assert_int_equal(*(uint8_t *)gp(t, a[2].gpa, 1), VIRTIO_BLK_S_OK);

	seg[0] = (struct virtio_blk_discard_write_zeroes){htole64(20), htole32(2), 0};
	seg[1] = (struct virtio_blk_discard_write_zeroes){
	    htole64(30), htole32(4), htole32(VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)};
	uint64_t sg2 = galloc(t, sizeof(seg));
	memcpy(gp(t, sg2, sizeof(seg)), seg, sizeof(seg));
	struct buf b[] = {
	    hdr(t, VIRTIO_BLK_T_WRITE_ZEROES, 0), {sg2, sizeof(seg), false}, status_buf(t)};
	post(t, b, 3, false);
	kick(t);
	assert_int_equal(next_used(t).len, 1);
	assert_int_equal(*(uint8_t *)gp(t, b[2].gpa, 1), VIRTIO_BLK_S_OK);

	/* zeroes read back, through the device and in the file; the rest is untouched */
	uint8_t file[64 * 512];
	assert_int_equal(pread(t->fd, file, sizeof(file), 0), (ssize_t)sizeof(file));
	uint64_t gpa;
	assert_int_equal(request(t, VIRTIO_BLK_T_IN, 0, sizeof(file), true, 4, &gpa, NULL),
			 VIRTIO_BLK_S_OK);
	assert_memory_equal(gp(t, gpa, sizeof(file)), file, sizeof(file));
	for (unsigned s = 0; s < 64; s++) {
		bool zero = (s >= 8 && s < 16) || (s >= 40 && s < 48) || (s >= 20 && s < 22) ||
			    (s >= 30 && s < 34);
		for (unsigned i = 0; i < 512; i++)
			assert_int_equal(file[s * 512 + i], zero ? 0 : orig[s * 512 + i]);
	}
	struct stat st;
	assert_int_equal(fstat(t->fd, &st), 0);
	assert_int_equal(st.st_size, IMG_SIZE); /* no size change */
}

/* One DISCARD/WRITE_ZEROES request with the given segment bytes; returns its status. */
static uint8_t dwz(struct t *t, uint32_t type, const void *segs, uint32_t len)
{
	uint64_t sg = galloc(t, len);
	memcpy(gp(t, sg, len), segs, len);
	struct buf a[] = {hdr(t, type, 0), {sg, len, false}, status_buf(t)};
	post(t, a, 3, false);
	kick(t);
	next_used(t);
	return *(uint8_t *)gp(t, a[2].gpa, 1);
}

static void discard_bad_segments(void **state)
{
	struct t *t = *state;
	start(t, "");
	if (!(t->d->host_features & (1ull << VIRTIO_BLK_F_DISCARD)))
		skip();
	const uint64_t cap = IMG_SIZE / 512;
	struct virtio_blk_discard_write_zeroes s[40];
	memset(s, 0, sizeof(s));
	for (unsigned i = 0; i < 40; i++)
		s[i] = (struct virtio_blk_discard_write_zeroes){htole64(i), htole32(1), 0};
	static uint8_t before[IMG_SIZE], after[IMG_SIZE];
	assert_int_equal(pread(t->fd, before, sizeof(before), 0), IMG_SIZE);

	/* unknown flags and unmap on discard: UNSUPP; out of range, overflow, a partial or
	 * missing segment, too many segments: IOERR. None of them changes a byte, even where
	 * the bad segment comes after good ones. */
	struct virtio_blk_discard_write_zeroes bad[2] = {s[0], s[1]};
	bad[1].flags = htole32(4);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, bad, sizeof(bad)), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_WRITE_ZEROES, bad, sizeof(bad)), VIRTIO_BLK_S_UNSUPP);
	bad[1].flags = htole32(VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, bad, sizeof(bad)), VIRTIO_BLK_S_UNSUPP);
	bad[1].flags = 0;
	bad[1].sector = htole64(cap - 1);
	bad[1].num_sectors = htole32(2);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, bad, sizeof(bad)), VIRTIO_BLK_S_IOERR);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_WRITE_ZEROES, bad, sizeof(bad)), VIRTIO_BLK_S_IOERR);
	bad[1].sector = htole64(UINT64_MAX);
	bad[1].num_sectors = htole32(2);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_WRITE_ZEROES, bad, sizeof(bad)), VIRTIO_BLK_S_IOERR);
	bad[1].sector = 0;
	bad[1].num_sectors = htole32(UINT32_MAX);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, bad, sizeof(bad)), VIRTIO_BLK_S_IOERR);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, s, 24), VIRTIO_BLK_S_IOERR);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, s, sizeof(s)), VIRTIO_BLK_S_IOERR);
	struct buf a[] = {hdr(t, VIRTIO_BLK_T_DISCARD, 0), status_buf(t)};
	post(t, a, 2, false);
	kick(t);
	next_used(t);
	assert_int_equal(*(uint8_t *)gp(t, a[1].gpa, 1), VIRTIO_BLK_S_IOERR);
	assert_int_equal(pread(t->fd, after, sizeof(after), 0), IMG_SIZE);
	assert_memory_equal(before, after, IMG_SIZE);
	/* the last sector, and zero sectors, are fine */
	bad[1].sector = htole64(cap - 1);
	bad[1].num_sectors = htole32(1);
	bad[0].num_sectors = 0;
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, bad, sizeof(bad)), VIRTIO_BLK_S_OK);
}

/* The image shrinks under the device: a read across the new end gets what is there, then
 * IOERR; the used length says how much data came. */
static void image_truncated(void **state)
{
	struct t *t = *state;
	start(t, "");
	assert_int_equal(ftruncate(t->fd, 32 * 1024), 0);
	uint64_t gpa;
	uint32_t len;
	assert_int_equal(request(t, VIRTIO_BLK_T_IN, 48, 16 * 1024, true, 4, &gpa, &len),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(len, 8 * 1024 + 1);
	uint8_t want[8 * 1024];
	assert_int_equal(pread(t->fd, want, sizeof(want), 24 * 1024), (ssize_t)sizeof(want));
	assert_memory_equal(gp(t, gpa, sizeof(want)), want, sizeof(want));
	assert_int_equal(request(t, VIRTIO_BLK_T_IN, 100, 512, true, 1, NULL, &len),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(len, 1);
	expect_stats(t, 2, 0, 2, 0); /* a read that failed half way moved no counted bytes */
}

/* Five requests at once (15 of the 16 descriptors), twice over, with event idx and indirect off:
 * every request completes once, in any order, and the data is right. */
static void many_in_flight(void **state)
{
	struct t *t = *state;
	start_opts(t, IMG_SIZE, "", 16,
		   (1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VIRTIO_RING_F_INDIRECT_DESC));
	for (unsigned round = 0; round < 2; round++) {
		t->heap = HEAP_GPA;
		uint64_t data[5], st[5];
		bool done[64] = {false};
		for (unsigned i = 0; i < 5; i++) {
			uint32_t type = round == 0 ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;
			struct buf b[3] = {hdr(t, type, 8 * i),
					   {galloc(t, 4096), 4096, round == 1},
					   status_buf(t)};
			data[i] = b[1].gpa;
			st[i] = b[2].gpa;
			fill(gp(t, data[i], 4096), 4096, round == 0 ? 100 + i : 0);
			post(t, b, 3, false);
		}
		kick(t);
		for (unsigned i = 0; i < 5; i++) {
			struct vring_used_elem u = next_used(t);
			assert_true(u.id < 16 && u.id % 3 == 0 && !done[u.id]);
			done[u.id] = true;
			assert_int_equal(u.len, round == 0 ? 1 : 4097);
		}
		for (unsigned i = 0; i < 5; i++) {
			assert_int_equal(*(uint8_t *)gp(t, st[i], 1), VIRTIO_BLK_S_OK);
			if (round == 1) {
				uint8_t want[4096];
				fill(want, sizeof(want), 100 + i);
				assert_memory_equal(gp(t, data[i], 4096), want, 4096);
			}
		}
		t->next_desc = 0;
	}
}

/* A hostile driver posts the same chains again while they are in flight: the device takes no
 * more requests than the queue has entries, and takes the rest once some complete. */
static void reposted_chains_are_bounded(void **state)
{
	struct t *t = *state;
	start_opts(t, IMG_SIZE, "", 2, 0);
	uint64_t st[2];
	for (unsigned i = 0; i < 2; i++) {
		struct buf b[3] = {
		    hdr(t, VIRTIO_BLK_T_IN, 8 * i), {galloc(t, 4096), 4096, true}, status_buf(t)};
		st[i] = b[2].gpa;
		post(t, b, 3, true); /* one descriptor each: heads 0 and 1 */
	}
	kick(t);
	uint16_t *ring = gp(t, AVAIL_GPA + 4, 4);
	ring[0] = htole16(0);
	ring[1] = htole16(1);
	t->avail_idx = 4;
	__atomic_store_n((uint16_t *)gp(t, AVAIL_GPA + 2, 2), htole16(4), __ATOMIC_RELEASE);
	kick(t);
	/* io_uring: both still in flight, so nothing more was taken */
	assert_int_equal(t->d->vq[0].last_avail, t->engine == ENGINE_URING ? 2 : 4);
	unsigned seen[2] = {0, 0};
	for (unsigned i = 0; i < 4; i++) {
		struct vring_used_elem u = next_used(t);
		assert_true(u.id < 2);
		seen[u.id]++;
		assert_int_equal(u.len, 4097);
	}
	assert_int_equal(seen[0], 2);
	assert_int_equal(seen[1], 2);
	assert_int_equal(used_idx(t), 4);
	assert_int_equal(*(uint8_t *)gp(t, st[0], 1), VIRTIO_BLK_S_OK);
	assert_int_equal(*(uint8_t *)gp(t, st[1], 1), VIRTIO_BLK_S_OK);
	assert_true(virtio_dev_running(t->d));
}

/* A reset while requests are in flight waits for them; their chains are not pushed. */
static void reset_with_requests_in_flight(void **state)
{
	struct t *t = *state;
	start(t, "");
	for (unsigned i = 0; i < 8; i++) {
		struct buf b[3] = {
		    hdr(t, VIRTIO_BLK_T_IN, 16 * i), {galloc(t, 8192), 8192, true}, status_buf(t)};
		post(t, b, 3, false);
	}
	kick(t);
	unsigned pushed = used_idx(t);
	/* synchronous requests ended in the kick; io_uring ones wait for the event loop */
	assert_int_equal(pushed, t->engine == ENGINE_SYNC ? 8 : 0);
	driver_reset_and_restart(t);
	assert_int_equal(used_idx(t), 0);
	if (t->engine == ENGINE_URING)
		assert_int_equal(ev_run_once(&t->el, 0), 1); /* the eventfd fired; nothing left */
	assert_int_equal(used_idx(t), 0);
	assert_int_equal(request(t, VIRTIO_BLK_T_IN, 0, 512, true, 1, NULL, NULL), VIRTIO_BLK_S_OK);
	/* requests dropped by the reset were never answered: not counted */
	if (t->engine == ENGINE_SYNC)
		expect_stats(t, 9, 8 * 8192 + 512, 0, 0);
	else
		expect_stats(t, 1, 512, 0, 0);
}

/* Destroying the device with requests in flight is clean (ASan checks the memory). */
static void destroy_with_requests_in_flight(void **state)
{
	struct t *t = *state;
	start(t, "");
	for (unsigned i = 0; i < 4; i++) {
		struct buf b[3] = {hdr(t, VIRTIO_BLK_T_OUT, 16 * i),
				   {galloc(t, 8192), 8192, false},
				   status_buf(t)};
		post(t, b, 3, false);
	}
	kick(t);
	virtio_blk_destroy(t->b);
	t->b = NULL;
	assert_int_equal(ev_run_once(&t->el, 0), 0); /* the eventfd is gone from the loop */
}

/* ---- snapshots ---- */

/* Quiesce (a snapshot of a paused VM) finishes the requests in flight and pushes them, with an
 * interrupt; the device then goes on as before when kicked. */
static void quiesce_finishes_requests_in_flight(void **state)
{
	struct t *t = *state;
	start_opts(t, IMG_SIZE, "", 4, 0);
	uint64_t st[6];
	for (unsigned i = 0; i < 6; i++) {
		if (i == 4) { /* the first four answered: their descriptors are free again */
			struct verr e = {0};
			unsigned irqs = t->irqs;
			assert_int_equal(used_idx(t), t->engine == ENGINE_SYNC ? 4 : 0);
			pthread_mutex_lock(&t->d->lock);
			assert_int_equal(t->d->ops->quiesce(t->d, &e), 0);
			pthread_mutex_unlock(&t->d->lock);
			assert_int_equal(used_idx(t), 4);
			assert_true(t->irqs > irqs || t->engine == ENGINE_SYNC);
			for (unsigned j = 0; j < 4; j++) {
				assert_int_equal(*(uint8_t *)gp(t, st[j], 1), VIRTIO_BLK_S_OK);
				assert_int_equal(next_used(t).len, 8193);
			}
		}
		struct buf b[3] = {
		    hdr(t, VIRTIO_BLK_T_IN, 16 * i), {galloc(t, 8192), 8192, true}, status_buf(t)};
		st[i] = b[2].gpa;
		*(uint8_t *)gp(t, st[i], 1) = 0xff;
		post(t, b, 3, true);
		if (i == 3 || i == 5)
			kick(t);
	}
	for (unsigned i = 4; i < 6; i++)
		assert_int_equal(next_used(t).len, 8193);
	assert_int_equal(used_idx(t), 6);
	assert_int_equal(*(uint8_t *)gp(t, st[5], 1), VIRTIO_BLK_S_OK);
}

/* A second device over image PATH with the option string after "path=" */
static struct virtio_blk *other_dev(struct t *t, const char *path, const char *extra)
{
	char spec[512];
	snprintf(spec, sizeof(spec), "path=%s%s", path, extra);
	struct virtio_blk_options o;
	struct verr e = {0};
	assert_int_equal(virtio_blk_parse(spec, &o, &e), 0);
	struct virtio_blk *b;
	if (virtio_blk_create(&b, &o, &t->mem, NULL, &e) < 0)
		fail_msg("%s", e.msg);
	return b;
}

static void expect_restore_fails(struct virtio_blk *b, const uint8_t *in, size_t len,
				 const char *needle)
{
	struct virtio_dev *d = virtio_blk_dev(b);
	struct verr e = {0};
	assert_int_equal(d->ops->restore(d, in, len, &e), -EINVAL);
	if (!strstr(e.msg, needle))
		fail_msg("'%s' lacks '%s'", e.msg, needle);
	virtio_blk_destroy(b);
}

/* The saved disk state is what the guest was told: the same image and options restore, another
 * size, ro flag or serial is refused with a line saying so, as are a damaged state's length and
 * padding. */
static void save_restore_state(void **state)
{
	struct t *t = *state;
	start(t, ",id=disk-7");
	uint8_t s[VIRTIO_DEV_STATE_MAX];
	size_t n = t->d->ops->save(t->d, s);
	assert_true(n > 0 && n <= VIRTIO_DEV_STATE_MAX);
	virtio_blk_destroy(t->b); /* its lock on the image goes too */
	t->b = NULL;

	struct virtio_blk *b = other_dev(t, t->path, ",id=disk-7");
	struct virtio_dev *d = virtio_blk_dev(b);
	struct verr e = {0};
	assert_int_equal(d->ops->restore(d, s, n, &e), 0);
	virtio_blk_destroy(b);

	expect_restore_fails(other_dev(t, t->path, ",id=disk-8"), s, n, "another serial");
	expect_restore_fails(other_dev(t, t->path, ",ro,id=disk-7"), s, n,
			     "was read-write, this one is read-only");
	char bigger[256];
	int fd = make_image(bigger, sizeof(bigger), IMG_SIZE + 4096);
	expect_restore_fails(other_dev(t, bigger, ",id=disk-7"), s, n,
			     "had 512 sectors, this image has 520");
	close(fd);
	unlink(bigger);
	expect_restore_fails(other_dev(t, t->path, ",id=disk-7"), s, n - 1, "bytes, not");
	uint8_t bad[VIRTIO_DEV_STATE_MAX];
	memcpy(bad, s, n);
	bad[n - 1] = 1;
	expect_restore_fails(other_dev(t, t->path, ",id=disk-7"), bad, n, "padding");
	memcpy(bad, s, n);
	bad[8] = 2;
	expect_restore_fails(other_dev(t, t->path, ",id=disk-7"), bad, n, "read-only");
}

/* ---- the option parser ---- */

static void parse_good(void **state)
{
	(void)state;
	struct virtio_blk_options o;
	struct verr e = {0};
	assert_int_equal(virtio_blk_parse("path=/img/disk.raw", &o, &e), 0);
	assert_string_equal(o.path, "/img/disk.raw");
	assert_false(o.ro);
	assert_string_equal(o.serial, "");
	assert_int_equal(virtio_blk_parse("path=a.img,ro,id=vol-01", &o, &e), 0);
	assert_string_equal(o.path, "a.img");
	assert_true(o.ro);
	assert_string_equal(o.serial, "vol-01");
	assert_int_equal(virtio_blk_parse("id=x,ro,path=b=c.img", &o, &e), 0);
	assert_string_equal(o.path, "b=c.img");
	assert_string_equal(o.serial, "x");
	assert_int_equal(virtio_blk_parse("disk.img,ro", &o, &e), 0);
	assert_string_equal(o.path, "disk.img");
	assert_true(o.ro);
	assert_int_equal(virtio_blk_parse("path=p,id=ABCDEFGHIJKLMNOPQRST", &o, &e), 0);
	assert_string_equal(o.serial, "ABCDEFGHIJKLMNOPQRST");
	assert_int_equal(virtio_blk_options_path("/a,b=c,ro", true, &o, &e), 0);
	assert_string_equal(o.path, "/a,b=c,ro");
	assert_true(o.ro);
	assert_string_equal(o.serial, "");
}

static void expect_bad(const char *spec, const char *needle)
{
	struct virtio_blk_options o;
	struct verr e = {0};
	assert_int_equal(virtio_blk_parse(spec, &o, &e), -EINVAL);
	assert_int_equal(e.code, -EINVAL);
	if (!strstr(e.msg, needle))
		fail_msg("'%s': message '%s' lacks '%s'", spec, e.msg, needle);
	assert_non_null(strstr(e.msg, "--disk"));
	assert_null(strchr(e.msg, '\n'));
}

static void parse_bad(void **state)
{
	(void)state;
	expect_bad("", "empty");
	expect_bad("path=", "path is empty");
	expect_bad("ro", "no image path");
	expect_bad("ro,id=x", "no image path");
	expect_bad("path=a,foo=1", "unknown key 'foo'");
	expect_bad("path=a,rw", "unknown key 'rw'");
	expect_bad("a.img,b.img", "unknown key 'b.img'");
	expect_bad("path=a,,ro", "item 2 is empty");
	expect_bad("path=a,", "item 2 is empty");
	expect_bad(",path=a", "item 1 is empty");
	expect_bad("path=a,ro,ro", "'ro' is given twice");
	expect_bad("path=a,path=b", "'path' is given twice");
	expect_bad("a,path=b", "'path' is given twice");
	expect_bad("path=a,id=x,id=y", "'id' is given twice");
	expect_bad("path=a,ro=on", "'ro' takes no value");
	expect_bad("path=a,id=", "id= is empty");
	expect_bad("path=a,id=ABCDEFGHIJKLMNOPQRSTU", "21 bytes");
	expect_bad("path=a,id=has space", "printable ASCII");
	expect_bad("path=a,id=tab\there", "printable ASCII");
	static char lng[PATH_MAX + 16];
	memcpy(lng, "path=", 5);
	memset(lng + 5, 'x', PATH_MAX);
	expect_bad(lng, "PATH_MAX");

	struct virtio_blk_options o;
	struct verr e = {0};
	assert_int_equal(virtio_blk_parse(NULL, &o, &e), -EINVAL);
	assert_int_equal(virtio_blk_options_path("", false, &o, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "--rootfs"));
	assert_int_equal(virtio_blk_options_path(lng + 5, false, &o, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "PATH_MAX"));
}

/* ---- image checks ---- */

static void expect_create_fails(struct t *t, const char *path, bool ro, int code,
				const char *needle)
{
	struct virtio_blk_options o;
	struct verr e = {0};
	assert_int_equal(virtio_blk_options_path(path, ro, &o, &e), 0);
	struct virtio_blk *b = NULL;
	assert_int_equal(virtio_blk_create(&b, &o, &t->mem, &t->el, &e), code);
	assert_null(b);
	if (!strstr(e.msg, needle) || !strstr(e.msg, path))
		fail_msg("message '%s' lacks '%s' or the path", e.msg, needle);
}

static void create_errors(void **state)
{
	struct t *t = *state;
	t->fd = make_image(t->path, sizeof(t->path), 1000);
	expect_create_fails(t, t->path, false, -EINVAL, "not a multiple of 512");
	assert_int_equal(ftruncate(t->fd, 0), 0);
	expect_create_fails(t, t->path, true, -EINVAL, "is empty");

	char missing[300];
	snprintf(missing, sizeof(missing), "%s.missing", t->path);
	expect_create_fails(t, missing, false, -ENOENT, "cannot open");
	const char *dir = getenv("TMPDIR");
	dir = dir && *dir ? dir : "/tmp";
	expect_create_fails(t, dir, true, -EINVAL, "not a regular file or a block device");

	/* a FIFO is refused without hanging in open */
	char fifo[300];
	snprintf(fifo, sizeof(fifo), "%s.fifo", t->path);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	expect_create_fails(t, fifo, true, -EINVAL, "not a regular file");
	unlink(fifo);

	/* one writer per image; readers share */
	assert_int_equal(ftruncate(t->fd, 4096), 0);
	struct virtio_blk_options o;
	struct verr e = {0};
	assert_int_equal(virtio_blk_options_path(t->path, false, &o, &e), 0);
	assert_int_equal(virtio_blk_create(&t->b, &o, &t->mem, &t->el, &e), 0);
	assert_int_equal(virtio_blk_capacity(t->b), 8);
	expect_create_fails(t, t->path, false, -EBUSY, "in use");
	expect_create_fails(t, t->path, true, -EBUSY, "in use");
	virtio_blk_destroy(t->b);
	t->b = NULL;
	struct virtio_blk *r1, *r2;
	assert_int_equal(virtio_blk_options_path(t->path, true, &o, &e), 0);
	assert_int_equal(virtio_blk_create(&r1, &o, &t->mem, NULL, &e), 0);
	assert_int_equal(virtio_blk_create(&r2, &o, &t->mem, NULL, &e), 0);
	assert_false(virtio_blk_uses_io_uring(r1)); /* no event loop: synchronous */
	expect_create_fails(t, t->path, false, -EBUSY, "in use");
	virtio_blk_destroy(r1);
	virtio_blk_destroy(r2);
	virtio_blk_destroy(NULL);
}

/* Submits one SQE on ring and returns its CQE's result. */
static int ring_run(struct io_uring *ring, struct io_uring_sqe *sqe)
{
	io_uring_sqe_set_data64(sqe, 0x5e5e);
	assert_int_equal(io_uring_submit(ring), 1);
	struct io_uring_cqe *cqe;
	assert_int_equal(io_uring_wait_cqe(ring, &cqe), 0);
	assert_int_equal(io_uring_cqe_get_data64(cqe), 0x5e5e);
	int res = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return res;
}

/* The disk ring runs readv, writev, fsync and fallocate without SQE flags, nothing else, and
 * takes no register operation: what a vmm taken over could submit through it, past seccomp. */
static void uring_restricted(void **state)
{
	struct t *t = *state;
	start(t, "");
	struct io_uring *ring = virtio_blk_ring(t->b);
	assert_non_null(ring);

	char buf[512];
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	io_uring_prep_readv(sqe, t->fd, &iov, 1, 0);
	assert_int_equal(ring_run(ring, sqe), sizeof(buf)); /* the allowed case works */
	assert_int_equal((uint8_t)buf[3], 21);		    /* the image's pattern */

	sqe = io_uring_get_sqe(ring);
	io_uring_prep_openat(sqe, AT_FDCWD, "/etc/hostname", O_RDONLY, 0);
	assert_int_equal(ring_run(ring, sqe), -EACCES);
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_nop(sqe);
	assert_int_equal(ring_run(ring, sqe), -EACCES);
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_socket(sqe, AF_INET, SOCK_STREAM, 0, 0);
	assert_int_equal(ring_run(ring, sqe), -EACCES);
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_readv(sqe, t->fd, &iov, 1, 0);
	sqe->flags |= IOSQE_IO_DRAIN; /* an allowed opcode with a flag */
	assert_int_equal(ring_run(ring, sqe), -EACCES);

	assert_int_equal(io_uring_register_files(ring, &t->fd, 1), -EACCES);
	int efd = eventfd(0, EFD_CLOEXEC);
	assert_true(efd >= 0);
	assert_int_equal(io_uring_register_eventfd(ring, efd), -EACCES);
	close(efd);
}

#define BOTH(fn)                                                                      \
	cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, &uring_engine), \
	    cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, &sync_engine)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    BOTH(write_then_read),
	    BOTH(any_layout),
	    BOTH(flush_and_get_id),
	    BOTH(full_length_serial),
	    BOTH(config_space),
	    BOTH(read_only_disk),
	    BOTH(out_of_range),
	    BOTH(unsupported_and_wrong_direction),
	    BOTH(header_not_readable),
	    BOTH(missing_status_byte),
	    BOTH(malformed_chain),
	    BOTH(discard_and_write_zeroes),
	    BOTH(discard_bad_segments),
	    BOTH(image_truncated),
	    BOTH(many_in_flight),
	    BOTH(reposted_chains_are_bounded),
	    BOTH(reset_with_requests_in_flight),
	    BOTH(destroy_with_requests_in_flight),
	    BOTH(quiesce_finishes_requests_in_flight),
	    BOTH(save_restore_state),
	    cmocka_unit_test(parse_good),
	    cmocka_unit_test(parse_bad),
	    cmocka_unit_test_prestate_setup_teardown(create_errors, setup, teardown, &uring_engine),
	    cmocka_unit_test_prestate_setup_teardown(uring_restricted, setup, teardown,
						     &uring_engine),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
