/* Split virtqueue and virtio device helper tests. A small mock driver writes descriptors and the
 * avail ring into synthetic guest memory and reads the used ring back, the way Linux's
 * virtio_ring does; hostile drivers break each rule virtq_pop enforces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "devices/virtio.h"
#include "devices/virtqueue.h"

#include <errno.h>
#include <linux/virtio_ring.h>
#include <string.h>

#define MIB	  (1ull << 20)
#define DESC_GPA  0x1000ull
#define AVAIL_GPA 0x3000ull
#define USED_GPA  0x4000ull
#define TABLE_GPA 0x8000ull /* indirect tables */
#define DATA_GPA  0x20000ull

/* The mock driver: its own view of the rings, as a guest driver keeps it. */
struct drv {
	struct guest_mem mem;
	struct virtq q;
	uint16_t avail_idx; /* next avail->idx to publish */
	uint16_t last_used; /* used entries consumed */
};

static struct virtq_chain chain;

static void *gp(struct drv *d, uint64_t gpa, uint64_t len)
{
	void *p = guest_mem_ptr(&d->mem, gpa, len);
	assert_non_null(p);
	return p;
}

static struct vring_desc *desc_at(struct drv *d, uint64_t table_gpa, unsigned i)
{
	return gp(d, table_gpa + 16ull * i, 16);
}

static void set_desc_in(struct drv *d, uint64_t table_gpa, unsigned i, uint64_t addr, uint32_t len,
			uint16_t flags, uint16_t next)
{
	struct vring_desc *e = desc_at(d, table_gpa, i);
	e->addr = addr;
	e->len = len;
	e->flags = flags;
	e->next = next;
}

static void set_desc(struct drv *d, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	set_desc_in(d, DESC_GPA, i, addr, len, flags, next);
}

static struct vring_avail *avail(struct drv *d)
{
	return gp(d, AVAIL_GPA, 6 + 2ull * d->q.size);
}

static struct vring_used *used(struct drv *d)
{
	return gp(d, USED_GPA, 6 + 8ull * d->q.size);
}

static uint16_t *used_event(struct drv *d)
{
	return &avail(d)->ring[d->q.size];
}

static uint16_t *avail_event(struct drv *d)
{
	return (uint16_t *)&used(d)->ring[d->q.size];
}

/* Puts head into the next avail ring slot and publishes it. */
static void post(struct drv *d, uint16_t head)
{
	avail(d)->ring[d->avail_idx % d->q.size] = head;
	d->avail_idx++;
	__atomic_store_n(&avail(d)->idx, d->avail_idx, __ATOMIC_RELEASE);
}

/* Sets up guest memory with the given layout and a queue of `size` in it. */
static void drv_init_layout(struct drv *d, const struct guest_region *layout, unsigned nr,
			    uint16_t size, bool event_idx, bool indirect)
{
	memset(d, 0, sizeof(*d));
	assert_int_equal(guest_mem_init(&d->mem, layout, nr), 0);
	d->q.size = size;
	d->q.desc_gpa = DESC_GPA;
	d->q.avail_gpa = AVAIL_GPA;
	d->q.used_gpa = USED_GPA;
	d->q.ready = true;
	assert_int_equal(virtq_activate(&d->q, &d->mem, event_idx, indirect), 0);
}

static void drv_init(struct drv *d, uint16_t size, bool event_idx, bool indirect)
{
	const struct guest_region one = {.gpa = 0, .size = MIB};
	drv_init_layout(d, &one, 1, size, event_idx, indirect);
}

static void drv_free(struct drv *d)
{
	virtq_reset(&d->q);
	guest_mem_free(&d->mem);
}

/* The queue rejects what was posted, and stays broken. */
static void expect_broken(struct drv *d)
{
	assert_int_equal(virtq_pop(&d->q, &chain), -EINVAL);
	assert_true(d->q.broken);
	assert_int_equal(virtq_pop(&d->q, &chain), -EINVAL);
	assert_false(virtq_has_avail(&d->q));
	drv_free(d);
}

static void normal_chain(void **state)
{
	(void)state;
	struct drv d;
	drv_init(&d, 8, false, false);
	memcpy(gp(&d, DATA_GPA, 11), "hello world", 11);
	memcpy(gp(&d, DATA_GPA + 0x100, 4), "abcd", 4);
	/* head 3 -> 5 -> 1: two readable, two writable (one zero-length, skipped) */
	set_desc(&d, 3, DATA_GPA, 11, VRING_DESC_F_NEXT, 5);
	set_desc(&d, 5, DATA_GPA + 0x100, 4, VRING_DESC_F_NEXT, 1);
	set_desc(&d, 1, DATA_GPA + 0x1000, 100, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	set_desc(&d, 2, 0, 0, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 4);
	set_desc(&d, 4, DATA_GPA + 0x2000, 28, VRING_DESC_F_WRITE, 0);
	assert_false(virtq_has_avail(&d.q));
	assert_int_equal(virtq_pop(&d.q, &chain), 0);
	post(&d, 3);
	assert_true(virtq_has_avail(&d.q));
	assert_int_equal(virtq_pop(&d.q, &chain), 1);
	assert_int_equal(chain.head, 3);
	assert_int_equal(chain.nout, 2);
	assert_int_equal(chain.nin, 2);
	assert_int_equal(chain.out_bytes, 15);
	assert_int_equal(chain.in_bytes, 128);
	assert_ptr_equal(chain.iov[0].iov_base, gp(&d, DATA_GPA, 11));
	assert_int_equal(chain.iov[0].iov_len, 11);
	assert_ptr_equal(chain.iov[1].iov_base, gp(&d, DATA_GPA + 0x100, 4));
	assert_ptr_equal(chain.iov[2].iov_base, gp(&d, DATA_GPA + 0x1000, 100));
	assert_int_equal(chain.iov[2].iov_len, 100);
	assert_ptr_equal(chain.iov[3].iov_base, gp(&d, DATA_GPA + 0x2000, 28));
	char got[16] = {0};
	assert_int_equal(virtq_chain_read(&chain, 0, got, sizeof(got)), 15);
	assert_memory_equal(got, "hello worldabcd", 15);
	assert_false(virtq_has_avail(&d.q));
	assert_int_equal(virtq_pop(&d.q, &chain), 0);
	assert_false(d.q.broken);
	drv_free(&d);
}

static void indirect_table(void **state)
{
	(void)state;
	struct drv d;
	drv_init(&d, 4, false, true);
	memcpy(gp(&d, DATA_GPA, 3), "req", 3);
	/* table order 0 -> 2 -> 1 -> 3: a next inside a table indexes that table */
	set_desc_in(&d, TABLE_GPA, 0, DATA_GPA, 3, VRING_DESC_F_NEXT, 2);
	set_desc_in(&d, TABLE_GPA, 2, DATA_GPA + 0x10, 5, VRING_DESC_F_NEXT, 1);
	set_desc_in(&d, TABLE_GPA, 1, DATA_GPA + 0x100, 512, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT,
		    3);
	set_desc_in(&d, TABLE_GPA, 3, DATA_GPA + 0x400, 1, VRING_DESC_F_WRITE, 0);
	/* the indirect descriptor's WRITE flag is ignored */
	set_desc(&d, 2, TABLE_GPA, 64, VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE, 0);
	post(&d, 2);
	assert_int_equal(virtq_pop(&d.q, &chain), 1);
	assert_int_equal(chain.head, 2);
	assert_int_equal(chain.nout, 2);
	assert_int_equal(chain.nin, 2);
	assert_int_equal(chain.out_bytes, 8);
	assert_int_equal(chain.in_bytes, 513);
	assert_ptr_equal(chain.iov[1].iov_base, gp(&d, DATA_GPA + 0x10, 5));
	assert_ptr_equal(chain.iov[2].iov_base, gp(&d, DATA_GPA + 0x100, 512));
	assert_ptr_equal(chain.iov[3].iov_base, gp(&d, DATA_GPA + 0x400, 1));

	/* direct readable buffers, then an indirect table as the chain's last descriptor */
	set_desc(&d, 0, DATA_GPA, 3, VRING_DESC_F_NEXT, 1);
	set_desc(&d, 1, TABLE_GPA + 0x100, 16, VRING_DESC_F_INDIRECT, 0);
	set_desc_in(&d, TABLE_GPA + 0x100, 0, DATA_GPA + 0x800, 64, VRING_DESC_F_WRITE, 0);
	post(&d, 0);
	assert_int_equal(virtq_pop(&d.q, &chain), 1);
	assert_int_equal(chain.nout, 1);
	assert_int_equal(chain.nin, 1);
	assert_int_equal(chain.in_bytes, 64);
	drv_free(&d);
}

/* A table of exactly VIRTQ_CHAIN_MAX linked entries is taken; one more is too long. */
static void indirect_chain_max(void **state)
{
	(void)state;
	struct drv d;
	const struct guest_region one = {.gpa = 0, .size = MIB};
	for (unsigned n = VIRTQ_CHAIN_MAX; n <= VIRTQ_CHAIN_MAX + 1; n++) {
		drv_init_layout(&d, &one, 1, 2, false, true);
		for (unsigned i = 0; i < n; i++)
			set_desc_in(&d, 0x40000, i, DATA_GPA + i, 1,
				    i + 1 < n ? VRING_DESC_F_NEXT : 0, i + 1);
		set_desc(&d, 0, 0x40000, 16 * n, VRING_DESC_F_INDIRECT, 0);
		post(&d, 0);
		if (n > VIRTQ_CHAIN_MAX) {
			expect_broken(&d);
			continue;
		}
		assert_int_equal(virtq_pop(&d.q, &chain), 1);
		assert_int_equal(chain.nout, VIRTQ_CHAIN_MAX);
		assert_int_equal(chain.out_bytes, VIRTQ_CHAIN_MAX);
		drv_free(&d);
	}
}

/* Direct buffers and an indirect table's together may not pass VIRTQ_CHAIN_MAX either. */
static void direct_plus_indirect_chain_max(void **state)
{
	(void)state;
	struct drv d;
	for (unsigned direct = 3; direct <= 4; direct++) {
		drv_init(&d, 8, false, true);
		for (unsigned i = 0; i < direct; i++)
			set_desc(&d, i, DATA_GPA, 1, VRING_DESC_F_NEXT, (uint16_t)(i + 1));
		set_desc(&d, direct, 0x40000, 16 * (VIRTQ_CHAIN_MAX - 3), VRING_DESC_F_INDIRECT, 0);
		for (unsigned i = 0; i < VIRTQ_CHAIN_MAX - 3; i++)
			set_desc_in(&d, 0x40000, i, DATA_GPA, 1,
				    i + 1 < VIRTQ_CHAIN_MAX - 3 ? VRING_DESC_F_NEXT : 0,
				    (uint16_t)(i + 1));
		post(&d, 0);
		if (direct == 4) {
			expect_broken(&d);
			continue;
		}
		assert_int_equal(virtq_pop(&d.q, &chain), 1);
		assert_int_equal(chain.nout, VIRTQ_CHAIN_MAX);
		drv_free(&d);
	}
}

/* Zero-length buffers count too: the walk is bounded, not only the iovec list. */
static void indirect_chain_max_zero_length(void **state)
{
	(void)state;
	struct drv d;
	drv_init(&d, 2, false, true);
	for (unsigned i = 0; i < 2 * VIRTQ_CHAIN_MAX; i++)
		set_desc_in(&d, 0x40000, i, 0, 0, VRING_DESC_F_NEXT, (uint16_t)(i + 1));
	set_desc_in(&d, 0x40000, 2 * VIRTQ_CHAIN_MAX - 1, 0, 0, 0, 0);
	set_desc(&d, 0, 0x40000, 16 * 2 * VIRTQ_CHAIN_MAX, VRING_DESC_F_INDIRECT, 0);
	post(&d, 0);
	expect_broken(&d);
}

/* A table longer than VIRTQ_CHAIN_MAX is fine when the chain in it is short. */
static void indirect_long_table_short_chain(void **state)
{
	(void)state;
	struct drv d;
	drv_init(&d, 2, false, true);
	set_desc_in(&d, 0x40000, 0, DATA_GPA, 8, 0, 0);
	set_desc(&d, 0, 0x40000, 16 * 4096, VRING_DESC_F_INDIRECT, 0);
	post(&d, 0);
	assert_int_equal(virtq_pop(&d.q, &chain), 1);
	assert_int_equal(chain.nout, 1);
	drv_free(&d);
}

static void push_used(void **state)
{
	(void)state;
	struct drv d;
	drv_init(&d, 4, false, false);
	set_desc(&d, 1, DATA_GPA, 8, VRING_DESC_F_NEXT, 3);
	set_desc(&d, 3, DATA_GPA + 0x100, 64, VRING_DESC_F_WRITE, 0);
	post(&d, 1);
	assert_int_equal(virtq_pop(&d.q, &chain), 1);
	assert_int_equal(virtq_chain_write(&chain, 0, "reply", 5), 5);
	virtq_push(&d.q, &chain, 5);
	assert_int_equal(used(&d)->idx, 1);
	assert_int_equal(used(&d)->ring[0].id, 1);
	assert_int_equal(used(&d)->ring[0].len, 5);
	assert_memory_equal(gp(&d, DATA_GPA + 0x100, 5), "reply", 5);
	/* written is clamped to what the chain can hold */
	post(&d, 1);
	assert_int_equal(virtq_pop(&d.q, &chain), 1);
	virtq_push(&d.q, &chain, 1000);
	assert_int_equal(used(&d)->idx, 2);
	assert_int_equal(used(&d)->ring[1].len, 64);
	/* a push after reset (a late completion) writes nothing */
	struct virtq_chain *late = &chain;
	virtq_reset(&d.q);
	virtq_push(&d.q, late, 1);
	assert_int_equal(used(&d)->idx, 2);
	assert_int_equal(used(&d)->ring[2].id, 0);
	guest_mem_free(&d.mem);
}

/* One readable buffer per chain, descriptor i for head i. */
static void post_simple(struct drv *d, uint16_t i)
{
	set_desc(d, i, DATA_GPA + 0x100ull * i, 16, 0, 0);
	post(d, i);
}

static void pop_push(struct drv *d)
{
	assert_int_equal(virtq_pop(&d->q, &chain), 1);
	virtq_push(&d->q, &chain, 0);
}

static void event_idx_suppression(void **state)
{
	(void)state;
	struct drv d;
	drv_init(&d, 8, true, false);
	*used_event(&d) = 1;
	post_simple(&d, 0);
	pop_push(&d);				/* used 1 */
	assert_true(virtq_should_notify(&d.q)); /* first one always */
	assert_false(virtq_should_notify(&d.q));
	post_simple(&d, 1);
	pop_push(&d); /* used 2: entry 1 used, the driver asked for it */
	assert_true(virtq_should_notify(&d.q));
	post_simple(&d, 2);
	pop_push(&d); /* used 3 */
	assert_false(virtq_should_notify(&d.q));
	*used_event(&d) = 5;
	post_simple(&d, 3);
	pop_push(&d); /* used 4 */
	assert_false(virtq_should_notify(&d.q));
	post_simple(&d, 4);
	post_simple(&d, 5);
	pop_push(&d);
	pop_push(&d); /* used 6: crossed used_event 5 in a batch */
	assert_true(virtq_should_notify(&d.q));
	/* the avail flags mean nothing with event idx */
	avail(&d)->flags = VRING_AVAIL_F_NO_INTERRUPT;
	*used_event(&d) = 6;
	post_simple(&d, 6);
	pop_push(&d);
	assert_true(virtq_should_notify(&d.q));
	drv_free(&d);
}

/* After 2^15 pushes without a check, which side of used_event we are on is unknown: interrupt. */
static void event_idx_stale_signalled(void **state)
{
	(void)state;
	struct drv d;
	drv_init(&d, 4, true, false);
	post_simple(&d, 0);
	pop_push(&d);
	assert_true(virtq_should_notify(&d.q)); /* signalled at used 1 */
	*used_event(&d) = 40001;
	for (unsigned i = 0; i < 32767; i++) {
		post_simple(&d, i % 4);
		pop_push(&d);
	}
	assert_false(virtq_should_notify(&d.q)); /* used 32768: need_event says no, rightly */
	*used_event(&d) = 100;
	for (unsigned i = 0; i < 32768; i++) {
		post_simple(&d, i % 4);
		pop_push(&d);
	}
	assert_true(virtq_should_notify(&d.q)); /* used 0 (65536): need_event alone would say no */
	drv_free(&d);
}

static void event_idx_kicks(void **state)
{
	(void)state;
	struct drv d;
	drv_init(&d, 8, true, false);
	post_simple(&d, 0);
	post_simple(&d, 1);
	assert_true(virtq_enable_kicks(&d.q, true)); /* buffers are there: look again */
	assert_int_equal(*avail_event(&d), 0);
	assert_false(virtq_enable_kicks(&d.q, false));
	pop_push(&d);
	pop_push(&d);
	assert_int_equal(*avail_event(&d), 0); /* left behind while chains are taken */
	assert_false(virtq_enable_kicks(&d.q, true));
	assert_int_equal(*avail_event(&d), 2);
	/* the driver kicks at the next buffer (vring_need_event from its side) */
	assert_true(vring_need_event(*avail_event(&d), 3, 2));
	/* an empty pop asks for a kick too */
	post_simple(&d, 2);
	pop_push(&d);
	assert_int_equal(*avail_event(&d), 2);
	assert_int_equal(virtq_pop(&d.q, &chain), 0);
	assert_int_equal(*avail_event(&d), 3);
	/* used->flags are left alone with event idx */
	assert_int_equal(used(&d)->flags, 0);
	drv_free(&d);
}

static void flags_suppression(void **state)
{
	(void)state;
	struct drv d;
	drv_init(&d, 4, false, false);
	avail(&d)->flags = VRING_AVAIL_F_NO_INTERRUPT;
	post_simple(&d, 0);
	pop_push(&d);
	assert_false(virtq_should_notify(&d.q));
	avail(&d)->flags = 0;
	assert_false(virtq_should_notify(&d.q)); /* that one was already decided */
	post_simple(&d, 1);
	pop_push(&d);
	assert_true(virtq_should_notify(&d.q));
	/* kicks: used->flags NO_NOTIFY while disabled */
	assert_false(virtq_enable_kicks(&d.q, false));
	assert_int_equal(used(&d)->flags, VRING_USED_F_NO_NOTIFY);
	post_simple(&d, 2);
	assert_true(virtq_enable_kicks(&d.q, true)); /* raced with the driver: look again */
	assert_int_equal(used(&d)->flags, 0);
	pop_push(&d);
	assert_false(virtq_enable_kicks(&d.q, true));
	drv_free(&d);
}

/* avail and used indexes run through 65535 -> 0 and the ring positions follow. */
static void index_wraparound(void **state)
{
	(void)state;
	struct drv d;
	drv_init(&d, 4, true, false);
	for (unsigned i = 0; i < 65534; i++) {
		post_simple(&d, i % 4);
		pop_push(&d);
	}
	assert_int_equal(d.q.last_avail, 65534);
	assert_true(virtq_should_notify(&d.q));
	*used_event(&d) = 0; /* interrupt when entry 0 (after the wrap) is used */
	for (unsigned i = 0; i < 3; i++)
		post_simple(&d, (uint16_t)i);
	assert_int_equal(avail(&d)->idx, 1);
	assert_int_equal(virtq_pop(&d.q, &chain), 1);
	assert_int_equal(chain.head, 0);
	virtq_push(&d.q, &chain, 0);
	assert_int_equal(used(&d)->idx, 65535);
	assert_int_equal(used(&d)->ring[65534 % 4].id, 0);
	assert_false(virtq_should_notify(&d.q));
	pop_push(&d);
	assert_int_equal(used(&d)->idx, 0);
	assert_int_equal(used(&d)->ring[3].id, 1);
	assert_false(virtq_should_notify(&d.q)); /* entry 65535 used, not entry 0 */
	pop_push(&d);
	assert_int_equal(used(&d)->idx, 1);
	assert_int_equal(used(&d)->ring[0].id, 2);
	assert_true(virtq_should_notify(&d.q));
	assert_int_equal(virtq_pop(&d.q, &chain), 0);
	assert_false(d.q.broken);
	drv_free(&d);
}

static void full_ring_and_full_length_chain(void **state)
{
	(void)state;
	struct drv d;
	drv_init(&d, 4, false, false);
	/* a chain of all 4 descriptors, posted 4 times: the ring is exactly full */
	for (unsigned i = 0; i < 4; i++)
		set_desc(&d, i, DATA_GPA, 1, i < 3 ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	for (unsigned i = 0; i < 4; i++)
		post(&d, 0);
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(virtq_pop(&d.q, &chain), 1);
		assert_int_equal(chain.nout, 4);
	}
	assert_int_equal(virtq_pop(&d.q, &chain), 0);
	drv_free(&d);
}

static void bad_buffer_outside_ram(void **state)
{
	(void)state;
	struct drv d;
	const uint64_t bad[][2] = {
	    {MIB - 8, 16},	     /* straddles the end of RAM */
	    {MIB, 1},		     /* just past it */
	    {1ull << 40, 4096},	     /* far away */
	    {UINT64_MAX - 7, 16},    /* wraps */
	    {DATA_GPA, 0xffffffffu}, /* longer than RAM */
	};
	for (unsigned k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		drv_init(&d, 8, false, false);
		set_desc(&d, 0, DATA_GPA, 8, VRING_DESC_F_NEXT, 1);
		set_desc(&d, 1, bad[k][0], (uint32_t)bad[k][1], VRING_DESC_F_WRITE, 0);
		post(&d, 0);
		expect_broken(&d);
	}
	/* a zero-length buffer is skipped wherever it points */
	drv_init(&d, 8, false, false);
	set_desc(&d, 0, 1ull << 40, 0, 0, 0);
	post(&d, 0);
	assert_int_equal(virtq_pop(&d.q, &chain), 1);
	assert_int_equal(chain.nout + chain.nin, 0);
	drv_free(&d);
}

/* Two regions with a gap: a buffer may sit in either, never across the gap. */
static void bad_buffer_across_gap(void **state)
{
	(void)state;
	struct drv d;
	const struct guest_region two[] = {{.gpa = 0, .size = MIB}, {.gpa = 2 * MIB, .size = MIB}};
	drv_init_layout(&d, two, 2, 8, false, false);
	set_desc(&d, 0, MIB - 16, 16, VRING_DESC_F_NEXT, 1);
	set_desc(&d, 1, 2 * MIB, 16, VRING_DESC_F_NEXT, 2);
	set_desc(&d, 2, 3 * MIB - 16, 16, VRING_DESC_F_WRITE, 0);
	post(&d, 0);
	assert_int_equal(virtq_pop(&d.q, &chain), 1);
	assert_ptr_equal(chain.iov[1].iov_base, gp(&d, 2 * MIB, 16));
	const uint64_t bad[][2] = {
	    {MIB - 8, 16},	 /* from the end of region 0 into the gap */
	    {MIB + 4096, 16},	 /* in the gap */
	    {2 * MIB - 8, 16},	 /* from the gap into region 1 */
	    {MIB - 8, MIB + 16}, /* across the whole gap */
	    {3 * MIB - 8, 16},	 /* past the end of region 1 */
	};
	for (unsigned k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		set_desc(&d, 3, bad[k][0], (uint32_t)bad[k][1], 0, 0);
		post(&d, 3);
		expect_broken(&d);
		drv_init_layout(&d, two, 2, 8, false, false);
	}
	/* the indirect table itself across the gap */
	drv_free(&d);
	drv_init_layout(&d, two, 2, 8, false, true);
	set_desc(&d, 0, MIB - 16, 32, VRING_DESC_F_INDIRECT, 0);
	post(&d, 0);
	expect_broken(&d);
}

/* Totals are 32-bit: buffers whose lengths add up past 4 GiB are malformed. */
static void bad_length_overflow(void **state)
{
	(void)state;
	struct drv d;
	const struct guest_region big = {.gpa = 0, .size = 1ull << 30}; /* never touched */
	for (unsigned w = 0; w < 2; w++) {
		uint16_t f = w ? VRING_DESC_F_WRITE : 0;
		drv_init_layout(&d, &big, 1, 8, false, false);
		for (unsigned i = 0; i < 3; i++)
			set_desc(&d, i, 0, 1u << 30, f | VRING_DESC_F_NEXT, (uint16_t)(i + 1));
		set_desc(&d, 3, 0, (1u << 30) - 1, f, 0);
		post(&d, 0);
		assert_int_equal(virtq_pop(&d.q, &chain), 1); /* 4 GiB - 1: fits */
		assert_int_equal(w ? chain.in_bytes : chain.out_bytes, UINT32_MAX);
		set_desc(&d, 3, 0, 1u << 30, f, 0);
		post(&d, 0);
		expect_broken(&d);
	}
}

static void bad_loops(void **state)
{
	(void)state;
	struct drv d;
	/* direct: 0 -> 1 -> 2 -> 1 */
	drv_init(&d, 8, false, false);
	set_desc(&d, 0, DATA_GPA, 1, VRING_DESC_F_NEXT, 1);
	set_desc(&d, 1, DATA_GPA, 1, VRING_DESC_F_NEXT, 2);
	set_desc(&d, 2, DATA_GPA, 1, VRING_DESC_F_NEXT, 1);
	post(&d, 0);
	expect_broken(&d);
	/* a descriptor pointing at itself, zero-length: still bounded */
	drv_init(&d, 256, false, false);
	set_desc(&d, 7, 0, 0, VRING_DESC_F_NEXT, 7);
	post(&d, 7);
	expect_broken(&d);
	/* inside an indirect table: 0 -> 1 -> 0 */
	drv_init(&d, 8, false, true);
	set_desc_in(&d, TABLE_GPA, 0, DATA_GPA, 1, VRING_DESC_F_NEXT, 1);
	set_desc_in(&d, TABLE_GPA, 1, DATA_GPA, 1, VRING_DESC_F_NEXT, 0);
	set_desc(&d, 0, TABLE_GPA, 32, VRING_DESC_F_INDIRECT, 0);
	post(&d, 0);
	expect_broken(&d);
	/* a next past the end of the indirect table (within the queue size) */
	drv_init(&d, 8, false, true);
	set_desc_in(&d, TABLE_GPA, 0, DATA_GPA, 1, VRING_DESC_F_NEXT, 2);
	set_desc_in(&d, TABLE_GPA, 2, DATA_GPA, 1, 0, 0);
	set_desc(&d, 0, TABLE_GPA, 32, VRING_DESC_F_INDIRECT, 0);
	post(&d, 0);
	expect_broken(&d);
}

static void bad_indexes(void **state)
{
	(void)state;
	struct drv d;
	/* avail idx more than size ahead */
	drv_init(&d, 4, false, false);
	post_simple(&d, 0);
	avail(&d)->idx = 5;
	expect_broken(&d);
	/* or behind (seen as 65535 ahead) */
	drv_init(&d, 4, false, false);
	avail(&d)->idx = 0xffff;
	expect_broken(&d);
	/* head >= size */
	drv_init(&d, 4, false, false);
	set_desc(&d, 0, DATA_GPA, 1, 0, 0);
	post(&d, 4);
	expect_broken(&d);
	/* next >= size */
	drv_init(&d, 4, false, false);
	set_desc(&d, 0, DATA_GPA, 1, VRING_DESC_F_NEXT, 4);
	post(&d, 0);
	expect_broken(&d);
	/* a good chain before a bad one is still taken */
	drv_init(&d, 4, false, false);
	post_simple(&d, 0);
	post(&d, 9);
	assert_int_equal(virtq_pop(&d.q, &chain), 1);
	expect_broken(&d);
}

static void bad_order_and_indirect(void **state)
{
	(void)state;
	struct drv d;
	/* readable after writable */
	drv_init(&d, 4, false, false);
	set_desc(&d, 0, DATA_GPA, 1, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	set_desc(&d, 1, DATA_GPA, 1, 0, 0);
	post(&d, 0);
	expect_broken(&d);
	/* the same inside an indirect table, zero-length readable included */
	drv_init(&d, 4, false, true);
	set_desc_in(&d, TABLE_GPA, 0, DATA_GPA, 1, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	set_desc_in(&d, TABLE_GPA, 1, DATA_GPA, 0, 0, 0);
	set_desc(&d, 0, TABLE_GPA, 32, VRING_DESC_F_INDIRECT, 0);
	post(&d, 0);
	expect_broken(&d);
	/* indirect not negotiated */
	drv_init(&d, 4, false, false);
	set_desc_in(&d, TABLE_GPA, 0, DATA_GPA, 1, 0, 0);
	set_desc(&d, 0, TABLE_GPA, 16, VRING_DESC_F_INDIRECT, 0);
	post(&d, 0);
	expect_broken(&d);
	/* nested indirect */
	drv_init(&d, 4, false, true);
	set_desc_in(&d, TABLE_GPA, 0, DATA_GPA, 1, VRING_DESC_F_NEXT, 1);
	set_desc_in(&d, TABLE_GPA, 1, TABLE_GPA + 0x100, 16, VRING_DESC_F_INDIRECT, 0);
	set_desc_in(&d, TABLE_GPA + 0x100, 0, DATA_GPA, 1, 0, 0);
	set_desc(&d, 0, TABLE_GPA, 32, VRING_DESC_F_INDIRECT, 0);
	post(&d, 0);
	expect_broken(&d);
	/* indirect with NEXT */
	drv_init(&d, 4, false, true);
	set_desc_in(&d, TABLE_GPA, 0, DATA_GPA, 1, 0, 0);
	set_desc(&d, 0, TABLE_GPA, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	set_desc(&d, 1, DATA_GPA, 1, VRING_DESC_F_WRITE, 0);
	post(&d, 0);
	expect_broken(&d);
	/* table length 0, not a multiple of 16, outside RAM */
	const uint64_t bad[][2] = {{TABLE_GPA, 0}, {TABLE_GPA, 17}, {TABLE_GPA, 8}, {MIB - 16, 32}};
	for (unsigned k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		drv_init(&d, 4, false, true);
		set_desc_in(&d, TABLE_GPA, 0, DATA_GPA, 1, 0, 0);
		set_desc_in(&d, TABLE_GPA, 1, DATA_GPA, 1, 0, 0);
		set_desc(&d, 0, bad[k][0], (uint32_t)bad[k][1], VRING_DESC_F_INDIRECT, 0);
		post(&d, 0);
		expect_broken(&d);
	}
}

/* A broken queue stays broken until reset; after a reset and activation it works again. */
static void broken_until_reset(void **state)
{
	(void)state;
	struct drv d;
	drv_init(&d, 4, false, false);
	post(&d, 7);
	assert_int_equal(virtq_pop(&d.q, &chain), -EINVAL);
	virtq_push(&d.q, &chain, 0); /* ignored */
	assert_int_equal(used(&d)->idx, 0);
	assert_false(virtq_should_notify(&d.q));
	assert_false(virtq_enable_kicks(&d.q, true));
	virtq_reset(&d.q);
	assert_false(d.q.ready);
	assert_null(d.q.desc);
	assert_int_equal(virtq_pop(&d.q, &chain), -EINVAL); /* no rings */
	memset(gp(&d, 0, MIB), 0, MIB);
	d.avail_idx = 0;
	d.q.size = 4;
	d.q.desc_gpa = DESC_GPA;
	d.q.avail_gpa = AVAIL_GPA;
	d.q.used_gpa = USED_GPA;
	assert_int_equal(virtq_activate(&d.q, &d.mem, false, false), 0);
	post_simple(&d, 1);
	assert_int_equal(virtq_pop(&d.q, &chain), 1);
	drv_free(&d);
}

static void activation_checks(void **state)
{
	(void)state;
	struct guest_mem mem;
	const struct guest_region two[] = {{.gpa = 0, .size = MIB}, {.gpa = 2 * MIB, .size = MIB}};
	assert_int_equal(guest_mem_init(&mem, two, 2), 0);
	struct {
		uint16_t size;
		uint64_t desc, avail, used;
		int ret;
	} cases[] = {
	    {256, DESC_GPA, AVAIL_GPA, USED_GPA, 0},
	    {1, DESC_GPA, AVAIL_GPA, USED_GPA, 0},
	    {8, 2 * MIB, 2 * MIB + 0x1000, 3 * MIB - 72, 0}, /* used ends 2 bytes short */
	    {8, MIB - 128, MIB - 22, 2 * MIB, 0},	     /* desc and avail end at the end */
	    {0, DESC_GPA, AVAIL_GPA, USED_GPA, -EINVAL},
	    {3, DESC_GPA, AVAIL_GPA, USED_GPA, -EINVAL},
	    {512, DESC_GPA, AVAIL_GPA, USED_GPA, -EINVAL},
	    {8, DESC_GPA + 8, AVAIL_GPA, USED_GPA, -EINVAL},
	    {8, DESC_GPA, AVAIL_GPA + 1, USED_GPA, -EINVAL},
	    {8, DESC_GPA, AVAIL_GPA, USED_GPA + 2, -EINVAL},
	    {8, MIB - 64, AVAIL_GPA, USED_GPA, -EINVAL},     /* desc into the gap */
	    {8, DESC_GPA, MIB - 16, USED_GPA, -EINVAL},	     /* avail into the gap */
	    {8, DESC_GPA, AVAIL_GPA, 3 * MIB - 64, -EINVAL}, /* used past the end */
	    {8, DESC_GPA, AVAIL_GPA, 3 * MIB - 68, -EINVAL}, /* by 2 bytes */
	    {8, 1ull << 40, AVAIL_GPA, USED_GPA, -EINVAL},
	};
	for (unsigned k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct virtq q = {.size = cases[k].size,
				  .desc_gpa = cases[k].desc,
				  .avail_gpa = cases[k].avail,
				  .used_gpa = cases[k].used};
		int r = virtq_activate(&q, &mem, true, true);
		if (r != cases[k].ret)
			fail_msg("case %u: %d", k, r);
		if (r == 0) {
			assert_non_null(q.desc);
			assert_int_equal(virtq_pop(&q, &chain), 0);
		} else {
			assert_null(q.desc);
			assert_int_equal(virtq_pop(&q, &chain), -EINVAL);
		}
	}
	guest_mem_free(&mem);
}

static void chain_copy_helpers(void **state)
{
	(void)state;
	struct drv d;
	drv_init(&d, 8, false, false);
	memcpy(gp(&d, DATA_GPA, 3), "abc", 3);
	memcpy(gp(&d, DATA_GPA + 0x100, 1), "d", 1);
	memcpy(gp(&d, DATA_GPA + 0x200, 5), "efghi", 5);
	set_desc(&d, 0, DATA_GPA, 3, VRING_DESC_F_NEXT, 1);
	set_desc(&d, 1, DATA_GPA + 0x100, 1, VRING_DESC_F_NEXT, 2);
	set_desc(&d, 2, DATA_GPA + 0x200, 5, VRING_DESC_F_NEXT, 3);
	set_desc(&d, 3, DATA_GPA + 0x1000, 2, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 4);
	set_desc(&d, 4, DATA_GPA + 0x1100, 3, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 5);
	set_desc(&d, 5, DATA_GPA + 0x1200, 4, VRING_DESC_F_WRITE, 0);
	post(&d, 0);
	assert_int_equal(virtq_pop(&d.q, &chain), 1);
	char buf[16];
	memset(buf, 0, sizeof(buf));
	assert_int_equal(virtq_chain_read(&chain, 0, buf, sizeof(buf)), 9);
	assert_string_equal(buf, "abcdefghi");
	memset(buf, 0, sizeof(buf));
	assert_int_equal(virtq_chain_read(&chain, 2, buf, 4), 4); /* spans all three */
	assert_string_equal(buf, "cdef");
	memset(buf, 0, sizeof(buf));
	assert_int_equal(virtq_chain_read(&chain, 4, buf, 16), 5);
	assert_string_equal(buf, "efghi");
	assert_int_equal(virtq_chain_read(&chain, 9, buf, 1), 0);
	assert_int_equal(virtq_chain_read(&chain, 100, buf, 1), 0);
	assert_int_equal(virtq_chain_read(&chain, 3, buf, 0), 0);

	/* writes go to the writable buffers only */
	assert_int_equal(virtq_chain_write(&chain, 1, "XYZW", 4), 4);
	assert_memory_equal(gp(&d, DATA_GPA + 0x1000, 2), "\0X", 2);
	assert_memory_equal(gp(&d, DATA_GPA + 0x1100, 3), "YZW", 3);
	assert_int_equal(virtq_chain_write(&chain, 5, "123456789", 9), 4);
	assert_memory_equal(gp(&d, DATA_GPA + 0x1200, 4), "1234", 4);
	assert_int_equal(virtq_chain_write(&chain, 9, "x", 1), 0);
	assert_memory_equal(gp(&d, DATA_GPA, 3), "abc", 3);
	drv_free(&d);
}

/* virtio.c: the device helpers. */
static int irqs;
static void count_irq(void *opaque)
{
	(void)opaque;
	irqs++;
}

static void dev_setup(struct virtio_dev *v, struct drv *d, bool event_idx)
{
	static const struct virtio_dev_ops ops;
	drv_init(d, 4, event_idx, false);
	virtio_dev_init(v, "virtio-test", 42, &ops, NULL, 1ull << VIRTIO_RING_F_EVENT_IDX, 8, 1,
			&d->mem);
	v->raise_irq = count_irq;
	v->vq[0] = d->q;
	irqs = 0;
}

static void dev_init_features(void **state)
{
	(void)state;
	struct virtio_dev v;
	struct drv d;
	dev_setup(&v, &d, false);
	assert_int_equal(v.host_features,
			 (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_EVENT_IDX));
	assert_int_equal(v.device_id, 42);
	assert_int_equal(v.nr_queues, 1);
	assert_int_equal(atomic_load(&v.isr), 0);
	v.acked_features = 1ull << VIRTIO_F_VERSION_1;
	assert_true(virtio_has_feature(&v, VIRTIO_F_VERSION_1));
	assert_false(virtio_has_feature(&v, VIRTIO_RING_F_EVENT_IDX));
	assert_false(virtio_dev_running(&v));
	v.status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		   VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
	assert_true(virtio_dev_running(&v));
	virtio_dev_destroy(&v);
	drv_free(&d);
}

static void dev_notify_used(void **state)
{
	(void)state;
	struct virtio_dev v;
	struct drv d;
	dev_setup(&v, &d, false);
	avail(&d)->flags = VRING_AVAIL_F_NO_INTERRUPT;
	post_simple(&d, 0);
	assert_int_equal(virtq_pop(&v.vq[0], &chain), 1);
	virtq_push(&v.vq[0], &chain, 0);
	virtio_dev_notify_used(&v, 0);
	assert_int_equal(irqs, 0);
	assert_int_equal(atomic_load(&v.isr), 0);
	avail(&d)->flags = 0;
	post_simple(&d, 1);
	assert_int_equal(virtq_pop(&v.vq[0], &chain), 1);
	virtq_push(&v.vq[0], &chain, 0);
	virtio_dev_notify_used(&v, 0);
	assert_int_equal(irqs, 1);
	assert_int_equal(atomic_load(&v.isr), VIRTIO_ISR_QUEUE);
	virtio_dev_notify_used(&v, 0); /* nothing new */
	virtio_dev_notify_used(&v, 3); /* no such queue */
	assert_int_equal(irqs, 1);
	virtio_dev_destroy(&v);
	drv_free(&d);

	/* with event idx, used_event decides */
	dev_setup(&v, &d, true);
	*used_event(&d) = 0;
	post_simple(&d, 0);
	post_simple(&d, 1);
	for (unsigned i = 0; i < 2; i++) {
		assert_int_equal(virtq_pop(&v.vq[0], &chain), 1);
		virtq_push(&v.vq[0], &chain, 0);
		virtio_dev_notify_used(&v, 0);
	}
	assert_int_equal(irqs, 1);
	virtio_dev_destroy(&v);
	drv_free(&d);
}

/* The queue state the metrics report: the device's indexes and the driver's, as they stand. */
static void queue_state(void **state)
{
	(void)state;
	struct virtio_dev v;
	struct drv d;
	struct virtq_state qs[VIRTIO_MAX_QUEUES];
	unsigned isr = 99;
	dev_setup(&v, &d, true);
	assert_int_equal(virtio_dev_queues_get(&v, qs, &isr), 1);
	assert_true(qs[0].ready && qs[0].event_idx);
	assert_false(qs[0].broken);
	assert_int_equal(qs[0].size, 4);
	assert_int_equal(qs[0].offered + qs[0].taken + qs[0].returned, 0);
	assert_int_equal(isr, 0);
	*used_event(&d) = 0;
	post_simple(&d, 0);
	post_simple(&d, 1);
	post_simple(&d, 2);
	assert_int_equal(virtq_pop(&v.vq[0], &chain), 1);
	virtq_push(&v.vq[0], &chain, 0);
	virtio_dev_notify_used(&v, 0);
	assert_int_equal(virtq_pop(&v.vq[0], &chain), 1); /* taken, not returned */
	*used_event(&d) = 7;
	virtio_dev_queues_get(&v, qs, &isr);
	assert_int_equal(qs[0].offered, 3);
	assert_int_equal(qs[0].taken, 2);
	assert_int_equal(qs[0].returned, 1);
	assert_int_equal(qs[0].signalled, 1);
	assert_int_equal(qs[0].used_event, 7);
	assert_int_equal(isr, VIRTIO_ISR_QUEUE);
	set_desc(&d, 3, DATA_GPA, 16, VRING_DESC_F_NEXT, 3); /* a loop: the queue breaks */
	post(&d, 3);
	assert_int_equal(virtq_pop(&v.vq[0], &chain), 1);
	assert_int_equal(virtq_pop(&v.vq[0], &chain), -EINVAL);
	virtio_dev_queues_get(&v, qs, &isr);
	assert_true(qs[0].broken);
	assert_int_equal(qs[0].offered, 4);
	virtq_reset(&v.vq[0]); /* no rings: nothing to report */
	virtio_dev_queues_get(&v, qs, &isr);
	assert_false(qs[0].ready);
	assert_int_equal(qs[0].size, 0);
	virtio_dev_destroy(&v);
	drv_free(&d);
}

static void dev_config_and_fail(void **state)
{
	(void)state;
	struct virtio_dev v;
	struct drv d;
	dev_setup(&v, &d, false);
	v.status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		   VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
	virtio_dev_config_changed(&v);
	assert_int_equal(v.config_generation, 1);
	assert_int_equal(atomic_load(&v.isr), VIRTIO_ISR_CONFIG);
	assert_int_equal(irqs, 1);
	atomic_store(&v.isr, 0);

	assert_true(virtio_dev_running(&v));
	virtio_dev_fail(&v, "bad chain on queue %u", 0);
	assert_true(v.status & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_true(v.status & VIRTIO_CONFIG_S_DRIVER_OK);
	assert_int_equal(atomic_load(&v.isr), VIRTIO_ISR_CONFIG);
	assert_int_equal(irqs, 2);
	assert_false(virtio_dev_running(&v));
	virtio_dev_fail(&v, "again"); /* already failed: no second interrupt */
	assert_int_equal(irqs, 2);
	/* a driver that gave up is not running either */
	v.status = VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_FAILED;
	assert_false(virtio_dev_running(&v));
	virtio_dev_destroy(&v);
	drv_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(queue_state),
	    cmocka_unit_test(normal_chain),
	    cmocka_unit_test(indirect_table),
	    cmocka_unit_test(indirect_chain_max),
	    cmocka_unit_test(direct_plus_indirect_chain_max),
	    cmocka_unit_test(indirect_chain_max_zero_length),
	    cmocka_unit_test(indirect_long_table_short_chain),
	    cmocka_unit_test(push_used),
	    cmocka_unit_test(event_idx_suppression),
	    cmocka_unit_test(event_idx_stale_signalled),
	    cmocka_unit_test(event_idx_kicks),
	    cmocka_unit_test(flags_suppression),
	    cmocka_unit_test(index_wraparound),
	    cmocka_unit_test(full_ring_and_full_length_chain),
	    cmocka_unit_test(bad_buffer_outside_ram),
	    cmocka_unit_test(bad_buffer_across_gap),
	    cmocka_unit_test(bad_length_overflow),
	    cmocka_unit_test(bad_loops),
	    cmocka_unit_test(bad_indexes),
	    cmocka_unit_test(bad_order_and_indirect),
	    cmocka_unit_test(broken_until_reset),
	    cmocka_unit_test(activation_checks),
	    cmocka_unit_test(chain_copy_helpers),
	    cmocka_unit_test(dev_init_features),
	    cmocka_unit_test(dev_notify_used),
	    cmocka_unit_test(dev_config_and_fail),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
