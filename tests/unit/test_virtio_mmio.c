/* virtio-mmio transport tests, driven the way Linux's virtio_mmio driver drives it, plus the
 * wrong-order and out-of-range register writes a hostile guest can make; and virtio-rng end to
 * end through the transport over a synthetic guest memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "devices/virtio_mmio.h"
#include "devices/virtio_rng.h"

#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <errno.h>
#include <string.h>

#define MEM_SIZE (1 << 20)

static struct guest_mem mem;
static int irqs, notifies, resets, activates;
static uint8_t cfg[8] = {1, 2, 3, 4, 5, 6, 7, 8};

static void count_irq(void *o)
{
	(void)o;
	irqs++;
}
static void fake_notify(struct virtio_dev *d, unsigned q)
{
	(void)d;
	(void)q;
	notifies++;
}
static void fake_reset(struct virtio_dev *d)
{
	(void)d;
	resets++;
}
static int fake_activate(struct virtio_dev *d)
{
	(void)d;
	activates++;
	return 0;
}
static void fake_cfg_read(struct virtio_dev *d, uint32_t off, void *buf, uint32_t len)
{
	(void)d;
	memcpy(buf, cfg + off, len);
}
static const struct virtio_dev_ops fake_ops = {
    .config_read = fake_cfg_read,
    .activate = fake_activate,
    .reset = fake_reset,
    .queue_notify = fake_notify,
};

static uint32_t rd(struct virtio_mmio *t, uint64_t off)
{
	uint32_t v = 0xdeadbeef;
	virtio_mmio_access(t, off, (uint8_t *)&v, 4, false);
	return v;
}
static void wr(struct virtio_mmio *t, uint64_t off, uint32_t v)
{
	virtio_mmio_access(t, off, (uint8_t *)&v, 4, true);
}

static int setup(void **state)
{
	(void)state;
	struct guest_region r = {0, MEM_SIZE, NULL};
	assert_int_equal(guest_mem_init(&mem, &r, 1), 0);
	irqs = notifies = resets = activates = 0;
	return 0;
}
static int teardown(void **state)
{
	(void)state;
	guest_mem_free(&mem);
	return 0;
}

static void fake_dev(struct virtio_dev *d, struct virtio_mmio *t)
{
	virtio_dev_init(d, "test-dev", VIRTIO_ID_RNG, &fake_ops, NULL,
			(1ULL << VIRTIO_RING_F_EVENT_IDX), sizeof(cfg), 2, &mem);
	d->raise_irq = count_irq;
	virtio_mmio_init(t, d);
}

/* ACKNOWLEDGE, DRIVER, features (VERSION_1 plus `low`), FEATURES_OK: what Linux does first. */
static void negotiate(struct virtio_mmio *t, uint32_t low)
{
	wr(t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	wr(t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(t, VIRTIO_MMIO_DRIVER_FEATURES, 1); /* VERSION_1 is bit 32 */
	wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(t, VIRTIO_MMIO_DRIVER_FEATURES, low);
	wr(t, VIRTIO_MMIO_STATUS,
	   VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
}

/* Queue sel at size n with rings at desc, desc+0x1000, desc+0x2000. */
static void setup_queue(struct virtio_mmio *t, unsigned sel, unsigned n, uint64_t desc)
{
	wr(t, VIRTIO_MMIO_QUEUE_SEL, sel);
	wr(t, VIRTIO_MMIO_QUEUE_NUM, n);
	wr(t, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
	wr(t, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	wr(t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)(desc + 0x1000));
	wr(t, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
	wr(t, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)(desc + 0x2000));
	wr(t, VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
	wr(t, VIRTIO_MMIO_QUEUE_READY, 1);
}

static void identity_registers(void **state)
{
	(void)state;
	struct virtio_dev d;
	struct virtio_mmio t;
	fake_dev(&d, &t);
	assert_int_equal(rd(&t, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	assert_int_equal(rd(&t, VIRTIO_MMIO_VERSION), 2);
	assert_int_equal(rd(&t, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_RNG);
	assert_int_equal(rd(&t, VIRTIO_MMIO_VENDOR_ID), VIRTIO_MMIO_VENDOR);
	wr(&t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	assert_int_equal(rd(&t, VIRTIO_MMIO_DEVICE_FEATURES), 1); /* VERSION_1 */
	wr(&t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	assert_int_equal(rd(&t, VIRTIO_MMIO_DEVICE_FEATURES), 1u << VIRTIO_RING_F_EVENT_IDX);
	wr(&t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 7);
	assert_int_equal(rd(&t, VIRTIO_MMIO_DEVICE_FEATURES), 0);
	/* registers are 32-bit: a byte read gives 0 and a byte write does nothing */
	uint8_t b = 0xaa;
	virtio_mmio_access(&t, VIRTIO_MMIO_MAGIC_VALUE, &b, 1, false);
	assert_int_equal(b, 0);
	b = VIRTIO_CONFIG_S_ACKNOWLEDGE;
	virtio_mmio_access(&t, VIRTIO_MMIO_STATUS, &b, 1, true);
	assert_int_equal(rd(&t, VIRTIO_MMIO_STATUS), 0);
	/* config space: any width inside, zeros outside */
	uint16_t w;
	virtio_mmio_access(&t, VIRTIO_MMIO_CONFIG + 2, (uint8_t *)&w, 2, false);
	assert_int_equal(w, 0x0403);
	uint32_t l = 0x12345678;
	virtio_mmio_access(&t, VIRTIO_MMIO_CONFIG + 6, (uint8_t *)&l, 4, false);
	assert_int_equal(l, 0);
	virtio_dev_destroy(&d);
}

static void feature_negotiation_rules(void **state)
{
	(void)state;
	struct virtio_dev d;
	struct virtio_mmio t;
	fake_dev(&d, &t);
	/* features before DRIVER are ignored */
	wr(&t, VIRTIO_MMIO_DRIVER_FEATURES, 1u << VIRTIO_RING_F_EVENT_IDX);
	assert_int_equal(d.acked_features, 0);
	/* without VERSION_1, FEATURES_OK does not stick */
	wr(&t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	wr(&t, VIRTIO_MMIO_STATUS,
	   VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
	assert_false(rd(&t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
	/* a feature that was not offered: refused too */
	wr(&t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(&t, VIRTIO_MMIO_DRIVER_FEATURES, 1);
	wr(&t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(&t, VIRTIO_MMIO_DRIVER_FEATURES, 1u << VIRTIO_RING_F_INDIRECT_DESC);
	wr(&t, VIRTIO_MMIO_STATUS,
	   VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
	assert_false(rd(&t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
	/* a subset that includes VERSION_1: accepted, and features are frozen afterwards */
	wr(&t, VIRTIO_MMIO_DRIVER_FEATURES, 1u << VIRTIO_RING_F_EVENT_IDX);
	wr(&t, VIRTIO_MMIO_STATUS,
	   VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
	assert_true(rd(&t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
	wr(&t, VIRTIO_MMIO_DRIVER_FEATURES, 0);
	assert_true(virtio_has_feature(&d, VIRTIO_RING_F_EVENT_IDX));
	/* the status cannot lose bits without a reset */
	wr(&t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	assert_true(rd(&t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
	/* reset */
	wr(&t, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(rd(&t, VIRTIO_MMIO_STATUS), 0);
	assert_int_equal(d.acked_features, 0);
	assert_int_equal(resets, 1);
	virtio_dev_destroy(&d);
}

static void queue_setup_rules(void **state)
{
	(void)state;
	struct virtio_dev d;
	struct virtio_mmio t;
	fake_dev(&d, &t);
	/* before FEATURES_OK the queue registers are not writable */
	wr(&t, VIRTIO_MMIO_QUEUE_SEL, 0);
	wr(&t, VIRTIO_MMIO_QUEUE_NUM, 16);
	assert_int_equal(d.vq[0].size, 0);
	negotiate(&t, 0);
	assert_int_equal(rd(&t, VIRTIO_MMIO_QUEUE_NUM_MAX), VIRTQ_MAX_SIZE);
	/* QueueSel beyond the device's queues: reads say "no queue", writes do nothing */
	wr(&t, VIRTIO_MMIO_QUEUE_SEL, 2);
	assert_int_equal(rd(&t, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
	wr(&t, VIRTIO_MMIO_QUEUE_SEL, 0xffffffff);
	wr(&t, VIRTIO_MMIO_QUEUE_NUM, 16);
	wr(&t, VIRTIO_MMIO_QUEUE_READY, 1);
	assert_int_equal(rd(&t, VIRTIO_MMIO_QUEUE_READY), 0);
	/* a good queue */
	setup_queue(&t, 0, 16, 0x10000);
	assert_int_equal(rd(&t, VIRTIO_MMIO_QUEUE_READY), 1);
	assert_true(d.vq[0].ready);
	/* a ready queue's registers are frozen */
	wr(&t, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x20000);
	assert_int_equal(d.vq[0].desc_gpa, 0x10000);
	/* notify of a queue that is not set up: nothing happens */
	wr(&t, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	wr(&t, VIRTIO_MMIO_QUEUE_NOTIFY, 77);
	assert_int_equal(notifies, 0);
	wr(&t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(notifies, 1);
	/* DRIVER_OK activates the device */
	wr(&t, VIRTIO_MMIO_STATUS,
	   VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
	       VIRTIO_CONFIG_S_DRIVER_OK);
	assert_int_equal(activates, 1);
	assert_true(virtio_dev_running(&d));
	/* queues cannot be set up once running */
	setup_queue(&t, 1, 16, 0x20000);
	assert_false(d.vq[1].ready);
	virtio_dev_destroy(&d);
}

static void bad_rings_need_reset(void **state)
{
	(void)state;
	struct virtio_dev d;
	struct virtio_mmio t;
	fake_dev(&d, &t);
	negotiate(&t, 0);
	/* rings outside guest RAM */
	setup_queue(&t, 0, 16, MEM_SIZE - 0x1000);
	assert_false(d.vq[0].ready);
	assert_true(rd(&t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_true(rd(&t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG);
	assert_true(irqs >= 1);
	wr(&t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);
	assert_int_equal(rd(&t, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	/* after a reset the device works again; a size that is not a power of two is refused */
	wr(&t, VIRTIO_MMIO_STATUS, 0);
	negotiate(&t, 0);
	setup_queue(&t, 0, 12, 0x10000);
	assert_false(d.vq[0].ready);
	wr(&t, VIRTIO_MMIO_STATUS, 0);
	negotiate(&t, 0);
	setup_queue(&t, 0, 16, 0x10000);
	assert_true(d.vq[0].ready);
	/* DRIVER_OK without FEATURES_OK is ignored */
	wr(&t, VIRTIO_MMIO_STATUS, 0);
	wr(&t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	wr(&t, VIRTIO_MMIO_STATUS,
	   VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_DRIVER_OK);
	assert_false(virtio_dev_running(&d));
	assert_int_equal(activates, 0);
	virtio_dev_destroy(&d);
}

/* The interrupt handler's two registers take no lock: they work while the event loop thread
 * holds the device lock (here this thread holds it, as an error-checking mutex, so a relock
 * shows as EDEADLK and a stray unlock would leave ours failing with EPERM). Other registers
 * still go under the lock. */
static void interrupt_registers_take_no_lock(void **state)
{
	(void)state;
	struct virtio_dev d;
	struct virtio_mmio t;
	fake_dev(&d, &t);
	pthread_mutex_destroy(&d.lock);
	pthread_mutexattr_t attr;
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
	assert_int_equal(pthread_mutex_init(&d.lock, &attr), 0);
	pthread_mutexattr_destroy(&attr);
	negotiate(&t, 0);

	assert_int_equal(pthread_mutex_lock(&d.lock), 0);
	virtio_dev_notify_used(&d, 0); /* queue 0 is not set up: no interrupt */
	virtio_dev_config_changed(&d);
	assert_int_equal(irqs, 1);
	assert_int_equal(rd(&t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	atomic_fetch_or(&d.isr, VIRTIO_MMIO_INT_VRING);
	wr(&t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);
	assert_int_equal(rd(&t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	wr(&t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
	assert_int_equal(rd(&t, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	/* still ours: nobody unlocked it behind our back */
	assert_int_equal(pthread_mutex_unlock(&d.lock), 0);

	/* a 2-byte read of InterruptStatus is no fast path: refused under the lock, reads 0 */
	atomic_fetch_or(&d.isr, VIRTIO_MMIO_INT_VRING);
	uint16_t half = 0xffff;
	virtio_mmio_access(&t, VIRTIO_MMIO_INTERRUPT_STATUS, (uint8_t *)&half, 2, false);
	assert_int_equal(half, 0);
	/* a read of InterruptACK (write-only) reads 0 and changes nothing */
	assert_int_equal(rd(&t, VIRTIO_MMIO_INTERRUPT_ACK), 0);
	assert_int_equal(rd(&t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	virtio_dev_destroy(&d);
}

/* virtio-rng through the transport: the guest posts two writable buffers, kicks, and gets them
 * back filled, with an interrupt. */
/* The rings of a queue set up by rng_running. */
struct rings {
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
};

/* An rng device driven to DRIVER_OK, its queue 0 of 8 at 0x10000. */
static struct rings rng_running(struct virtio_rng *rng, struct virtio_mmio *t)
{
	virtio_rng_init(rng, &mem);
	rng->dev.raise_irq = count_irq;
	virtio_mmio_init(t, &rng->dev);
	negotiate(t, 0);
	setup_queue(t, 0, 8, 0x10000);
	wr(t, VIRTIO_MMIO_STATUS,
	   VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
	       VIRTIO_CONFIG_S_DRIVER_OK);
	struct rings g = {guest_mem_ptr(&mem, 0x10000, 8 * sizeof(struct vring_desc)),
			  guest_mem_ptr(&mem, 0x11000, 4 + 2 * 8),
			  guest_mem_ptr(&mem, 0x12000, 4 + 8 * 8)};
	assert_non_null(g.desc);
	assert_non_null(g.avail);
	assert_non_null(g.used);
	return g;
}

static void rng_fills_buffers(void **state)
{
	(void)state;
	static struct virtio_rng rng;
	struct virtio_mmio t;
	struct rings g = rng_running(&rng, &t);
	struct vring_desc *desc = g.desc;
	struct vring_avail *avail = g.avail;
	struct vring_used *used = g.used;
	uint8_t *buf = guest_mem_ptr(&mem, 0x40000, 8192);
	desc[0] = (struct vring_desc){.addr = 0x40000, .len = 4096, .flags = VRING_DESC_F_WRITE};
	desc[1] = (struct vring_desc){.addr = 0x41000, .len = 100, .flags = VRING_DESC_F_WRITE};
	avail->ring[0] = 0;
	avail->ring[1] = 1;
	avail->idx = 2;
	wr(&t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(used->idx, 2);
	assert_int_equal(used->ring[0].id, 0);
	assert_int_equal(used->ring[0].len, 4096);
	assert_int_equal(used->ring[1].id, 1);
	assert_int_equal(used->ring[1].len, 100);
	unsigned nonzero = 0;
	for (unsigned i = 0; i < 4096; i++)
		nonzero += buf[i] != 0;
	assert_true(nonzero > 3900); /* random bytes, not the zeroed memory */
	assert_true(irqs >= 1);
	assert_true(rd(&t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_VRING);
	struct virtio_dev_stats_snapshot st;
	virtio_dev_stats_get(&rng.dev, &st);
	assert_int_equal(st.requests, 2);
	assert_int_equal(st.bytes, 4096 + 100);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.needs_reset, 0);

	/* a readable-only chain is not an entropy request: pushed back with 0 bytes */
	desc[2] = (struct vring_desc){.addr = 0x42000, .len = 64, .flags = 0};
	avail->ring[2] = 2;
	avail->idx = 3;
	wr(&t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(used->idx, 3);
	assert_int_equal(used->ring[2].len, 0);
	virtio_dev_stats_get(&rng.dev, &st);
	assert_int_equal(st.requests, 3); /* given back, with no bytes */
	assert_int_equal(st.bytes, 4096 + 100);

	/* a descriptor outside guest RAM: the device needs a reset, the process lives on */
	desc[3] = (struct vring_desc){.addr = MEM_SIZE - 8, .len = 64, .flags = VRING_DESC_F_WRITE};
	avail->ring[3] = 3;
	avail->idx = 4;
	wr(&t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(used->idx, 3);
	assert_true(rd(&t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	virtio_dev_stats_get(&rng.dev, &st);
	assert_int_equal(st.requests, 3);
	assert_int_equal(st.needs_reset, 1);
	virtio_rng_destroy(&rng);
}

/* A running rng device saved and restored onto a new one: its registers read the same and its
 * queue goes on where it stopped. A saved state that does not fit the device, that no transport
 * reaches, or with rings outside guest RAM is refused with one line, the device left reset. */
static void save_restore(void **state)
{
	(void)state;
	static struct virtio_rng a, b;
	struct virtio_mmio ta, tb;
	struct rings g = rng_running(&a, &ta);
	struct vring_desc *desc = g.desc;
	struct vring_avail *avail = g.avail;
	struct vring_used *used = g.used;
	for (unsigned i = 0; i < 3; i++) {
		desc[i] = (struct vring_desc){
		    .addr = 0x40000 + i * 0x1000, .len = 64, .flags = VRING_DESC_F_WRITE};
		avail->ring[i] = (uint16_t)i;
	}
	avail->idx = 2;
	wr(&ta, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(used->idx, 2);
	wr(&ta, VIRTIO_MMIO_QUEUE_SEL, 1);
	uint8_t saved[VIRTIO_MMIO_STATE_LEN];
	virtio_mmio_save(&ta, saved);
	virtio_rng_destroy(&a);

	virtio_rng_init(&b, &mem);
	b.dev.raise_irq = count_irq;
	virtio_mmio_init(&tb, &b.dev);
	struct verr e = {0};
	activates = 0;
	assert_int_equal(virtio_mmio_restore(&tb, saved, sizeof(saved), &e), 0);
	assert_int_equal(rd(&tb, VIRTIO_MMIO_STATUS),
			 VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			     VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	assert_true(rd(&tb, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_VRING);
	assert_int_equal(rd(&tb, VIRTIO_MMIO_QUEUE_READY), 0); /* QueueSel 1 came back */
	wr(&tb, VIRTIO_MMIO_QUEUE_SEL, 0);
	assert_int_equal(rd(&tb, VIRTIO_MMIO_QUEUE_READY), 1);
	/* the third request: taken from avail entry 2, given back as used entry 2 */
	avail->idx = 3;
	wr(&tb, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(used->idx, 3);
	assert_int_equal(used->ring[2].id, 2);
	assert_int_equal(used->ring[2].len, 64);
	/* onto a device in use */
	assert_int_equal(virtio_mmio_restore(&tb, saved, sizeof(saved), &e), -EBUSY);
	virtio_mmio_reset(&tb);

	uint8_t bad[VIRTIO_MMIO_STATE_LEN];
	struct {
		unsigned off;
		uint8_t value;
		const char *msg;
	} cases[] = {
	    {0, 2, "the snapshot has virtio device 2 with 1 queues in this slot"},
	    {8, 0xff, "offered features 0x"},
	    {24, VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_DRIVER, "not a state the transport"},
	    {28, 4, "not a state the transport"},
	    {48 + 2, 2, "the saved queue 0 has flags or padding"},
	    {48 + 40 + 8, 1, "the saved queue 1 has flags or padding"},
	    {48 + 15, 0x10, "the saved queue 0 has a bad size (8) or ring addresses"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(bad, saved, sizeof(bad));
		bad[cases[i].off] = cases[i].value;
		e.msg[0] = 0;
		assert_int_equal(virtio_mmio_restore(&tb, bad, sizeof(bad), &e), -EINVAL);
		if (!strstr(e.msg, cases[i].msg))
			fail_msg("case %zu: %s", i, e.msg);
		assert_int_equal(rd(&tb, VIRTIO_MMIO_STATUS), 0);
	}
	assert_int_equal(virtio_mmio_restore(&tb, saved, sizeof(saved) - 1, &e), -EINVAL);
	virtio_rng_destroy(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(identity_registers, setup, teardown),
	    cmocka_unit_test_setup_teardown(feature_negotiation_rules, setup, teardown),
	    cmocka_unit_test_setup_teardown(queue_setup_rules, setup, teardown),
	    cmocka_unit_test_setup_teardown(bad_rings_need_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(interrupt_registers_take_no_lock, setup, teardown),
	    cmocka_unit_test_setup_teardown(rng_fills_buffers, setup, teardown),
	    cmocka_unit_test_setup_teardown(save_restore, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
