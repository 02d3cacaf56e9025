/* virtio-fs tests: the --share parser, the config space, and a mock driver posting FUSE request
 * chains in synthetic guest memory on the hiprio and request queues, with a temporary directory
 * as the share. Malformed chains and descriptor abuse must fail the device without an answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "devices/virtio_fs.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <linux/virtio_ring.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB	 (1ull << 20)
#define QSIZE	 64
#define HEAP_GPA 0x20000ull

/* Rings of queue q: desc, avail, used 0x4000 apart per queue. */
static uint64_t desc_gpa(unsigned q)
{
	return 0x1000ull + 0x8000ull * q;
}
static uint64_t avail_gpa(unsigned q)
{
	return desc_gpa(q) + 0x2000;
}
static uint64_t used_gpa(unsigned q)
{
	return desc_gpa(q) + 0x3000;
}

struct t {
	struct guest_mem mem;
	char dir[256];
	struct virtio_fs *f;
	struct virtio_dev *d;
	uint16_t avail_idx[2], last_used[2], next_desc[2];
	uint64_t heap;
	uint64_t unique;
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

static uint64_t galloc(struct t *t, uint32_t len)
{
	uint64_t gpa = t->heap;
	t->heap = (t->heap + len + 15) & ~15ull;
	assert_true(t->heap <= MIB);
	memset(gp(t, gpa, len), 0xee, len);
	return gpa;
}

/* The device set up and running; its worker thread started when worker is set. */
static void start_dev(struct t *t, bool ro, bool worker)
{
	char spec[512];
	snprintf(spec, sizeof(spec), "tag=myfs,path=%s%s", t->dir, ro ? ",ro" : "");
	struct virtio_fs_options o;
	struct verr e = {0};
	assert_int_equal(virtio_fs_parse(spec, &o, &e), 0);
	if (virtio_fs_create(&t->f, &o, &t->mem, &e) < 0)
		fail_msg("%s", e.msg);
	t->d = virtio_fs_dev(t->f);
	t->d->raise_irq = count_irq;
	t->d->irq_opaque = t;
	t->d->acked_features = t->d->host_features;
	for (unsigned q = 0; q < 2; q++) {
		struct virtq *vq = &t->d->vq[q];
		vq->size = QSIZE;
		vq->desc_gpa = desc_gpa(q);
		vq->avail_gpa = avail_gpa(q);
		vq->used_gpa = used_gpa(q);
		vq->ready = true;
		assert_int_equal(virtq_activate(vq, &t->mem, true, true), 0);
	}
	t->d->status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		       VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
	assert_int_equal(t->d->ops->activate(t->d), 0);
	if (worker && virtio_fs_start(t->f, NULL, NULL, &e) < 0)
		fail_msg("%s", e.msg);
}

static void start(struct t *t, bool ro)
{
	start_dev(t, ro, true);
}

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	const struct guest_region one = {.gpa = 0, .size = MIB};
	assert_int_equal(guest_mem_init(&t->mem, &one, 1), 0);
	const char *dir = getenv("TMPDIR");
	snprintf(t->dir, sizeof(t->dir), "%s/vmm-vfs-XXXXXX", dir && *dir ? dir : "/tmp");
	assert_non_null(mkdtemp(t->dir));
	t->heap = HEAP_GPA;
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;
	virtio_fs_destroy(t->f);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
	assert_int_equal(system(cmd), 0);
	guest_mem_free(&t->mem);
	free(t);
	return 0;
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

static uint16_t post(struct t *t, unsigned q, const struct buf *bufs, unsigned n)
{
	uint16_t head = t->next_desc[q] % QSIZE;
	for (unsigned i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((t->next_desc[q] + i) % QSIZE);
		set_desc(t, desc_gpa(q), idx, &bufs[i], i + 1 < n, (uint16_t)((idx + 1) % QSIZE));
	}
	t->next_desc[q] = (uint16_t)(t->next_desc[q] + n);
	uint16_t *ring = gp(t, avail_gpa(q) + 4, 2ull * QSIZE);
	ring[t->avail_idx[q] % QSIZE] = htole16(head);
	t->avail_idx[q]++;
	__atomic_store_n((uint16_t *)gp(t, avail_gpa(q) + 2, 2), htole16(t->avail_idx[q]),
			 __ATOMIC_RELEASE);
	return head;
}

static void kick(struct t *t, unsigned q)
{
	pthread_mutex_lock(&t->d->lock);
	t->d->ops->queue_notify(t->d, q);
	pthread_mutex_unlock(&t->d->lock);
	virtio_fs_wait_idle(t->f);
}

static uint16_t used_idx(struct t *t, unsigned q)
{
	return le16toh(__atomic_load_n((uint16_t *)gp(t, used_gpa(q) + 2, 2), __ATOMIC_ACQUIRE));
}

static struct vring_used_elem next_used(struct t *t, unsigned q)
{
	assert_int_not_equal(used_idx(t, q), t->last_used[q]);
	struct vring_used_elem *e =
	    gp(t, used_gpa(q) + 4 + 8ull * (t->last_used[q] % QSIZE), sizeof(*e));
	t->last_used[q]++;
	return (struct vring_used_elem){le32toh(e->id), le32toh(e->len)};
}

/* A readable buffer holding the in header for op and the argument bytes. */
static struct buf in_buf(struct t *t, uint32_t op, uint64_t nodeid, const void *arg, size_t alen,
			 size_t extra)
{
	uint32_t len = (uint32_t)(sizeof(struct fuse_in_header) + alen);
	struct buf b = {galloc(t, len), len, false};
	struct fuse_in_header h = {
	    .len = len + (uint32_t)extra, .opcode = op, .unique = ++t->unique, .nodeid = nodeid};
	memcpy(gp(t, b.gpa, sizeof(h)), &h, sizeof(h));
	if (alen)
		memcpy(gp(t, b.gpa + sizeof(h), alen), arg, alen);
	return b;
}

/* A request with its reply room in two writable pieces; returns the used length and the reply's
 * guest address. The reply's unique and len are checked. */
static int32_t request(struct t *t, uint32_t op, uint64_t nodeid, const void *arg, size_t alen,
		       uint32_t room, uint64_t *reply, uint32_t *used_len)
{
	struct buf bufs[3];
	bufs[0] = in_buf(t, op, nodeid, arg, alen, 0);
	uint64_t gpa = galloc(t, room);
	bufs[1] = (struct buf){gpa, room / 3, true};
	bufs[2] = (struct buf){gpa + room / 3, room - room / 3, true};
	uint16_t head = post(t, 1, bufs, 3);
	kick(t, 1);
	struct vring_used_elem u = next_used(t, 1);
	assert_int_equal(u.id, head);
	struct fuse_out_header oh;
	memcpy(&oh, gp(t, gpa, sizeof(oh)), sizeof(oh));
	assert_int_equal(oh.unique, t->unique);
	assert_int_equal(oh.len, u.len);
	if (reply)
		*reply = gpa + sizeof(oh);
	if (used_len)
		*used_len = u.len;
	return oh.error;
}

static void init(struct t *t)
{
	struct fuse_init_in in = {.major = 7, .minor = 36, .flags = FUSE_DO_READDIRPLUS};
	assert_int_equal(request(t, FUSE_INIT, 0, &in, sizeof(in), 256, NULL, NULL), 0);
}

static void expect_running(struct t *t, bool running)
{
	assert_int_equal(virtio_dev_running(t->d), running);
}

/* ---- tests ---- */

static void test_parse(void **state)
{
	(void)state;
	struct virtio_fs_options o;
	struct verr e = {0};
	assert_int_equal(virtio_fs_parse("tag=root,path=/srv/x", &o, &e), 0);
	assert_string_equal(o.tag, "root");
	assert_string_equal(o.path, "/srv/x");
	assert_int_equal(o.cache, FUSE_CACHE_AUTO);
	assert_false(o.ro);
	assert_int_equal(virtio_fs_parse("ro,cache=none,path=/a,tag=t", &o, &e), 0);
	assert_true(o.ro);
	assert_int_equal(o.cache, FUSE_CACHE_NONE);
	assert_int_equal(virtio_fs_parse("tag=t,path=/a,cache=always", &o, &e), 0);
	assert_int_equal(o.cache, FUSE_CACHE_ALWAYS);
	/* A 36-byte tag fits, 37 does not. */
	assert_int_equal(
	    virtio_fs_parse("tag=012345678901234567890123456789012345,path=/a", &o, &e), 0);
	static const struct {
		const char *spec, *says;
	} bad[] = {
	    {"", "empty"},
	    {"path=/a", "no tag"},
	    {"tag=t", "no path"},
	    {"tag=,path=/a", "tag= is empty"},
	    {"tag=t,path=", "path= is empty"},
	    {"tag=t,path=/a,cache=sometimes", "unknown cache mode 'sometimes'"},
	    {"tag=t,path=/a,ro=1", "'ro' takes no value"},
	    {"tag=t,path=/a,,ro", "item 3 is empty"},
	    {"tag=t,path=/a,tag=u", "'tag' is given twice"},
	    {"tag=t,path=/a,size=3", "unknown key 'size'"},
	    {"tag=0123456789012345678901234567890123456,path=/a", "more than the 36"},
	    {"tag=a b,path=/a", "printable ASCII"},
	    {"/a", "unknown key '/a'"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&e, 0, sizeof(e));
		assert_int_equal(virtio_fs_parse(bad[i].spec, &o, &e), -EINVAL);
		if (!strstr(e.msg, bad[i].says))
			fail_msg("'%s': '%s' does not say '%s'", bad[i].spec, e.msg, bad[i].says);
		assert_non_null(strstr(e.msg, "--share"));
	}
}

static void test_create_errors(void **state)
{
	struct t *t = *state;
	struct virtio_fs_options o;
	struct verr e = {0};
	char spec[512];
	snprintf(spec, sizeof(spec), "tag=x,path=%s/missing", t->dir);
	assert_int_equal(virtio_fs_parse(spec, &o, &e), 0);
	assert_int_equal(virtio_fs_create(&t->f, &o, &t->mem, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "missing"));
	assert_null(t->f);
}

static void test_config(void **state)
{
	struct t *t = *state;
	start(t, false);
	assert_int_equal(t->d->device_id, 26);
	assert_int_equal(t->d->nr_queues, 2);
	assert_int_equal(t->d->config_len, sizeof(struct virtio_fs_config));
	struct virtio_fs_config c;
	t->d->ops->config_read(t->d, 0, &c, sizeof(c));
	assert_memory_equal(c.tag, "myfs\0\0", 6);
	assert_int_equal(le32toh(c.num_request_queues), 1);
}

static void test_requests(void **state)
{
	struct t *t = *state;
	start(t, false);
	init(t);
	/* CREATE, then WRITE with the data in its own readable descriptor. */
	struct {
		struct fuse_create_in c;
		char name[4];
	} cr = {{.flags = O_RDWR, .mode = S_IFREG | 0644}, "hi"};
	uint64_t rep;
	assert_int_equal(request(t, FUSE_CREATE, FUSE_ROOT_ID, &cr, sizeof(cr), 512, &rep, NULL),
			 0);
	struct fuse_entry_out eo;
	struct fuse_open_out oo;
	memcpy(&eo, gp(t, rep, sizeof(eo)), sizeof(eo));
	memcpy(&oo, gp(t, rep + sizeof(eo), sizeof(oo)), sizeof(oo));

	struct fuse_write_in wi = {.fh = oo.fh, .size = 5000};
	struct buf bufs[4];
	bufs[0] = in_buf(t, FUSE_WRITE, eo.nodeid, &wi, sizeof(wi), 5000);
	uint64_t data = galloc(t, 5000);
	for (int i = 0; i < 5000; i++)
		*(uint8_t *)gp(t, data + i, 1) = (uint8_t)(i * 7);
	bufs[1] = (struct buf){data, 2000, false};
	bufs[2] = (struct buf){data + 2000, 3000, false};
	uint64_t out = galloc(t, 64);
	bufs[3] = (struct buf){out, 64, true};
	post(t, 1, bufs, 4);
	kick(t, 1);
	struct vring_used_elem u = next_used(t, 1);
	assert_int_equal(u.len, sizeof(struct fuse_out_header) + sizeof(struct fuse_write_out));
	assert_int_equal(((struct fuse_write_out *)gp(t, out + 16, 8))->size, 5000);
	char p[512];
	uint8_t back[5000];
	snprintf(p, sizeof(p), "%s/hi", t->dir);
	int fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, back, sizeof(back)), 5000);
	close(fd);
	assert_memory_equal(back, gp(t, data, 5000), 5000);

	/* READ into two writable pieces. */
	struct fuse_read_in ri = {.fh = oo.fh, .offset = 1000, .size = 3000};
	uint32_t len;
	assert_int_equal(request(t, FUSE_READ, eo.nodeid, &ri, sizeof(ri), 16 + 3000, &rep, &len),
			 0);
	assert_int_equal(len, 16 + 3000);
	assert_memory_equal(gp(t, rep, 3000), back + 1000, 3000);

	/* An unknown opcode: ENOSYS. A failed LOOKUP: ENOENT (not an error in the counters). */
	assert_int_equal(request(t, 4242, FUSE_ROOT_ID, NULL, 0, 64, NULL, NULL), -ENOSYS);
	assert_int_equal(request(t, FUSE_LOOKUP, FUSE_ROOT_ID, "nope", 5, 256, NULL, NULL),
			 -ENOENT);
	struct virtio_dev_stats_snapshot st;
	virtio_dev_stats_get(t->d, &st);
	assert_int_equal(st.requests, 6);
	assert_int_equal(st.bytes, 8000);
	assert_int_equal(st.errors, 1);
	assert_int_equal(st.needs_reset, 0);
	assert_true(t->irqs > 0);

	/* FORGET on the hiprio queue: no writable part, given back with 0 bytes. */
	assert_int_equal(fuse_server_inodes(virtio_fs_server(t->f)), 2);
	struct fuse_forget_in fg = {.nlookup = 1};
	struct buf fb = in_buf(t, FUSE_FORGET, eo.nodeid, &fg, sizeof(fg), 0);
	uint16_t head = post(t, 0, &fb, 1);
	kick(t, 0);
	u = next_used(t, 0);
	assert_int_equal(u.id, head);
	assert_int_equal(u.len, 0);
	assert_int_equal(fuse_server_inodes(virtio_fs_server(t->f)), 1);

	/* A driver reset ends the session: requests answer EIO until INIT. */
	pthread_mutex_lock(&t->d->lock);
	t->d->ops->reset(t->d);
	pthread_mutex_unlock(&t->d->lock);
	assert_int_equal(request(t, FUSE_LOOKUP, FUSE_ROOT_ID, "hi", 3, 256, NULL, NULL), -EIO);
	assert_int_equal(fuse_server_handles(virtio_fs_server(t->f)), 0);
	expect_running(t, true);
}

static void test_readonly(void **state)
{
	struct t *t = *state;
	start(t, true);
	init(t);
	struct {
		struct fuse_mkdir_in m;
		char name[2];
	} mk = {{.mode = 0755}, "d"};
	assert_int_equal(request(t, FUSE_MKDIR, FUSE_ROOT_ID, &mk, sizeof(mk), 256, NULL, NULL),
			 -EROFS);
}

/* The chain is not answered and the device needs a reset. */
static void expect_failed(struct t *t, unsigned q)
{
	kick(t, q);
	assert_int_equal(used_idx(t, q), t->last_used[q]);
	expect_running(t, false);
	assert_true(t->d->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	struct virtio_dev_stats_snapshot st;
	virtio_dev_stats_get(t->d, &st);
	assert_int_equal(st.needs_reset, 1);
}

static void test_writable_too_small(void **state)
{
	struct t *t = *state;
	start(t, false);
	init(t);
	struct fuse_getattr_in gi = {0};
	struct buf bufs[2] = {in_buf(t, FUSE_GETATTR, FUSE_ROOT_ID, &gi, sizeof(gi), 0),
			      {galloc(t, 8), 8, true}};
	post(t, 1, bufs, 2);
	expect_failed(t, 1);
}

static void test_no_writable(void **state)
{
	struct t *t = *state;
	start(t, false);
	init(t);
	/* GETATTR on the hiprio queue with nowhere to answer. */
	struct fuse_getattr_in gi = {0};
	struct buf b = in_buf(t, FUSE_GETATTR, FUSE_ROOT_ID, &gi, sizeof(gi), 0);
	post(t, 0, &b, 1);
	expect_failed(t, 0);
}

static void test_len_beyond_chain(void **state)
{
	struct t *t = *state;
	start(t, false);
	init(t);
	struct fuse_getattr_in gi = {0};
	struct buf bufs[2] = {in_buf(t, FUSE_GETATTR, FUSE_ROOT_ID, &gi, sizeof(gi), 100),
			      {galloc(t, 256), 256, true}};
	post(t, 1, bufs, 2);
	expect_failed(t, 1);
}

static void test_short_header(void **state)
{
	struct t *t = *state;
	start(t, false);
	struct buf bufs[2] = {{galloc(t, 20), 20, false}, {galloc(t, 256), 256, true}};
	post(t, 1, bufs, 2);
	expect_failed(t, 1);
}

static void test_descriptor_abuse(void **state)
{
	struct t *t = *state;
	start(t, false);
	init(t);
	/* A buffer past the end of guest RAM. */
	struct buf bufs[2] = {{MIB - 8, 64, false}, {galloc(t, 256), 256, true}};
	post(t, 1, bufs, 2);
	expect_failed(t, 1);
	/* Nothing more is served until reset, even a good request. */
	struct fuse_getattr_in gi = {0};
	struct buf good[2] = {in_buf(t, FUSE_GETATTR, FUSE_ROOT_ID, &gi, sizeof(gi), 0),
			      {galloc(t, 256), 256, true}};
	post(t, 1, good, 2);
	kick(t, 1);
	assert_int_equal(used_idx(t, 1), t->last_used[1]);
}

static void test_descriptor_loop(void **state)
{
	struct t *t = *state;
	start(t, false);
	init(t);
	/* Two descriptors pointing at each other. */
	struct fuse_getattr_in gi = {0};
	struct buf b = in_buf(t, FUSE_GETATTR, FUSE_ROOT_ID, &gi, sizeof(gi), 0);
	uint16_t head = t->next_desc[1] % QSIZE;
	set_desc(t, desc_gpa(1), head, &b, true, (uint16_t)((head + 1) % QSIZE));
	set_desc(t, desc_gpa(1), (head + 1) % QSIZE, &b, true, head);
	uint16_t *ring = gp(t, avail_gpa(1) + 4, 2ull * QSIZE);
	ring[t->avail_idx[1] % QSIZE] = htole16(head);
	t->avail_idx[1]++;
	__atomic_store_n((uint16_t *)gp(t, avail_gpa(1) + 2, 2), htole16(t->avail_idx[1]),
			 __ATOMIC_RELEASE);
	expect_failed(t, 1);
}

/* A kick only wakes the worker: before virtio_fs_start nothing is answered; once it runs, the
 * request kicked before is answered, on the worker thread. */
static pthread_t init_thread;
static int init_calls;

static int record_thread(void *opaque, struct verr *e)
{
	(void)e;
	init_thread = pthread_self();
	init_calls++;
	return opaque ? verr_set(e, -EPERM, "no filter for you") : 0;
}

static void test_worker(void **state)
{
	struct t *t = *state;
	start_dev(t, false, false);
	struct fuse_init_in in = {.major = 7, .minor = 36};
	uint64_t gpa = galloc(t, 256);
	struct buf bufs[2] = {in_buf(t, FUSE_INIT, 0, &in, sizeof(in), 0), {gpa, 256, true}};
	post(t, 1, bufs, 2);
	kick(t, 1); /* no worker: returns at once */
	assert_int_equal(used_idx(t, 1), t->last_used[1]);

	struct verr e = {0};
	init_calls = 0;
	assert_int_equal(virtio_fs_start(t->f, record_thread, NULL, &e), 0);
	assert_int_equal(init_calls, 1);
	assert_false(pthread_equal(init_thread, pthread_self()));
	assert_int_equal(virtio_fs_start(t->f, NULL, NULL, &e), -EALREADY);
	virtio_fs_wait_idle(t->f);
	struct vring_used_elem u = next_used(t, 1);
	assert_int_equal(u.id, 0);
	struct fuse_out_header oh;
	memcpy(&oh, gp(t, gpa, sizeof(oh)), sizeof(oh));
	assert_int_equal(oh.error, 0);
	assert_int_equal(oh.unique, t->unique);
	/* and the next request goes through the running worker */
	struct fuse_getattr_in gi = {0};
	assert_int_equal(request(t, FUSE_GETATTR, FUSE_ROOT_ID, &gi, sizeof(gi), 256, NULL, NULL),
			 0);
}

/* A failing thread_init: start fails with its error and line, and nothing is served. */
static void test_worker_init_fails(void **state)
{
	struct t *t = *state;
	start_dev(t, false, false);
	struct verr e = {0};
	int dummy;
	assert_int_equal(virtio_fs_start(t->f, record_thread, &dummy, &e), -EPERM);
	assert_non_null(strstr(e.msg, "no filter for you"));
	struct fuse_init_in in = {.major = 7, .minor = 36};
	struct buf bufs[2] = {in_buf(t, FUSE_INIT, 0, &in, sizeof(in), 0),
			      {galloc(t, 256), 256, true}};
	post(t, 1, bufs, 2);
	kick(t, 1);
	assert_int_equal(used_idx(t, 1), t->last_used[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test_setup_teardown(test_create_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_config, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_requests, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_readonly, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_writable_too_small, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_writable, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_len_beyond_chain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_short_header, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_descriptor_abuse, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_descriptor_loop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_worker, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_worker_init_fails, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
