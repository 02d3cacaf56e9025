/* 8250 UART tests, driven the way Linux's 8250 driver drives it: probing (scratch, loopback),
 * output, THR-empty and RX interrupts, input buffering without loss. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "devices/serial_8250.h"

#include <errno.h>
#include <string.h>

static uint8_t out[256];
static size_t out_len;
static int irq, irq_edges, space_calls;

static void set_irq(void *o, int level)
{
	(void)o;
	if (level && !irq)
		irq_edges++;
	irq = level;
}
static void output(void *o, const uint8_t *b, size_t n)
{
	(void)o;
	memcpy(out + out_len, b, n);
	out_len += n;
}
static void rx_space(void *o)
{
	(void)o;
	space_calls++;
}
static const struct serial_ops ops = {set_irq, output, rx_space};

static uint8_t rd(struct serial8250 *s, unsigned reg)
{
	uint8_t v;
	serial_io(s, reg, &v, 1, false);
	return v;
}
static void wr(struct serial8250 *s, unsigned reg, uint8_t v)
{
	serial_io(s, reg, &v, 1, true);
}

static void reset(struct serial8250 *s)
{
	out_len = 0;
	irq = irq_edges = space_calls = 0;
	serial_init(s, &ops, NULL);
}

static void probe_like_linux(void **state)
{
	(void)state;
	struct serial8250 s;
	reset(&s);
	wr(&s, 7, 0xa5);
	assert_int_equal(rd(&s, 7), 0xa5);	  /* scratch */
	wr(&s, 4, 0x10 | 0x0a);			  /* loopback, RTS, OUT2 */
	assert_int_equal(rd(&s, 6) & 0xf0, 0x90); /* CTS | DCD */
	wr(&s, 0, 'x');				  /* looped back, not output */
	assert_int_equal(out_len, 0);
	assert_int_equal(rd(&s, 5) & 1, 1);
	assert_int_equal(rd(&s, 0), 'x');
	wr(&s, 4, 0x0b);
	wr(&s, 2, 0x07); /* enable + clear FIFOs */
	assert_int_equal(rd(&s, 2) & 0xc0, 0xc0);
	wr(&s, 3, 0x80); /* DLAB */
	wr(&s, 0, 0x01);
	wr(&s, 1, 0x00);
	assert_int_equal(rd(&s, 0), 1);
	wr(&s, 3, 0x03);
	assert_int_equal(rd(&s, 3), 0x03);
	serial_destroy(&s);
}

static void output_and_thre_interrupt(void **state)
{
	(void)state;
	struct serial8250 s;
	reset(&s);
	assert_int_equal(rd(&s, 5) & 0x60, 0x60); /* THRE | TEMT */
	wr(&s, 0, 'h');
	wr(&s, 0, 'i');
	assert_int_equal(out_len, 2);
	assert_memory_equal(out, "hi", 2);
	assert_int_equal(irq, 0); /* interrupts off */
	wr(&s, 1, 0x02);	  /* THRI on: THR is empty, so it fires */
	assert_int_equal(irq, 1);
	assert_int_equal(rd(&s, 2) & 0x0f, 0x02); /* reading IIR acks it */
	assert_int_equal(irq, 0);
	assert_int_equal(rd(&s, 2) & 0x0f, 0x01);
	wr(&s, 0, '!');
	assert_int_equal(irq, 1);
	wr(&s, 1, 0);
	assert_int_equal(irq, 0);
	serial_destroy(&s);
}

static void input_interrupt_and_flow(void **state)
{
	(void)state;
	struct serial8250 s;
	reset(&s);
	wr(&s, 1, 0x01); /* RDI */
	assert_int_equal(serial_rx_push(&s, (const uint8_t *)"ab", 2), 2);
	assert_int_equal(irq, 1);
	assert_int_equal(rd(&s, 2) & 0x0f, 0x04);
	assert_int_equal(rd(&s, 0), 'a');
	assert_int_equal(rd(&s, 0), 'b');
	assert_int_equal(irq, 0);
	assert_int_equal(rd(&s, 5) & 1, 0);

	/* fill the buffer: the excess is refused, not dropped, and draining says "room again" */
	static uint8_t big[SERIAL_RX_BUF + 100];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)i;
	assert_int_equal(serial_rx_push(&s, big, sizeof(big)), SERIAL_RX_BUF);
	assert_int_equal(serial_rx_space(&s), 0);
	assert_int_equal(rd(&s, 0), 0);
	assert_int_equal(space_calls, 1);
	for (size_t i = 1; i < SERIAL_RX_BUF; i++)
		assert_int_equal(rd(&s, 0), (uint8_t)i);
	assert_int_equal(serial_rx_space(&s), SERIAL_RX_BUF);
	serial_destroy(&s);
}

static void input_held_until_driver_ready(void **state)
{
	(void)state;
	struct serial8250 s;
	reset(&s);
	assert_int_equal(serial_rx_push(&s, (const uint8_t *)"early", 5), 5);
	/* what Linux's 8250 start-up does: clear FIFOs, read RX/LSR/IIR/MSR */
	wr(&s, 2, 0x07);
	assert_int_equal(rd(&s, 5) & 1, 0);
	assert_int_equal(rd(&s, 0), 0);
	rd(&s, 2);
	assert_int_equal(irq, 0);
	wr(&s, 1, 0x01); /* the driver is up: input appears, nothing was lost */
	assert_int_equal(irq, 1);
	wr(&s, 1, 0x00); /* throttled: hidden again, still queued */
	assert_int_equal(irq, 0);
	assert_int_equal(rd(&s, 5) & 1, 0);
	wr(&s, 1, 0x01);
	assert_int_equal(irq, 1);
	char got[6] = {0};
	for (int i = 0; i < 5; i++)
		got[i] = (char)rd(&s, 0);
	assert_string_equal(got, "early");
	serial_destroy(&s);
}

static void hostile_accesses(void **state)
{
	(void)state;
	struct serial8250 s;
	reset(&s);
	uint8_t wide[8];
	memset(wide, 0x55, sizeof(wide));
	serial_io(&s, 0, wide, 8, false); /* 8-byte read: defined, no overflow */
	serial_io(&s, 5, wide, 4, true);  /* write to read-only LSR: ignored */
	assert_int_equal(rd(&s, 5) & 0x60, 0x60);
	wr(&s, 1, 0xff); /* reserved IER bits are masked */
	assert_int_equal(rd(&s, 1), 0x0f);
	serial_destroy(&s);
}

/* Registers, a pending THR-empty interrupt and unread input survive a save and restore onto a
 * new UART, whose line is raised to match; bytes serial_save does not write are refused. */
static void save_restore(void **state)
{
	(void)state;
	struct serial8250 a, b;
	serial_init(&a, &ops, NULL);
	reset(&a);
	wr(&a, 3, 0x80); /* DLAB: divisor 12 (9600 baud) */
	wr(&a, 0, 12);
	wr(&a, 3, 0x03);
	wr(&a, 7, 0x5a);
	wr(&a, 1, 0x01); /* RDI */
	assert_int_equal(serial_rx_push(&a, (const uint8_t *)"hello", 5), 5);
	assert_int_equal(rd(&a, 0), 'h');
	uint8_t buf[SERIAL_STATE_MAX];
	size_t n = serial_save(&a, buf);
	assert_int_equal(n, 12 + 4);
	serial_destroy(&a);
	serial_init(&b, &ops, NULL);
	irq = 0;
	struct verr e = {0};
	assert_int_equal(serial_restore(&b, buf, n, &e), 0);
	assert_int_equal(irq, 1); /* input waits with RDI on */
	assert_int_equal(rd(&b, 7), 0x5a);
	assert_int_equal(rd(&b, 3), 0x03);
	wr(&b, 3, 0x83);
	assert_int_equal(rd(&b, 0), 12);
	wr(&b, 3, 0x03);
	char got[5] = {0};
	for (int i = 0; i < 4; i++)
		got[i] = (char)rd(&b, 0);
	assert_string_equal(got, "ello");
	assert_int_equal(irq, 0);
	/* hostile: more input than the buffer, a length that does not match, unknown flags */
	uint8_t bad[16];
	memcpy(bad, buf, sizeof(bad));
	bad[9] = 0x80;
	assert_int_equal(serial_restore(&b, bad, sizeof(bad), &e), -EINVAL);
	assert_non_null(strstr(e.msg, "not what a UART saves"));
	assert_int_equal(serial_restore(&b, buf, n - 1, &e), -EINVAL);
	memcpy(bad, buf, sizeof(bad));
	bad[7] = 4;
	assert_int_equal(serial_restore(&b, bad, sizeof(bad), &e), -EINVAL);
	assert_int_equal(serial_restore(&b, buf, 3, &e), -EINVAL);
	serial_destroy(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(probe_like_linux),
	    cmocka_unit_test(output_and_thre_interrupt),
	    cmocka_unit_test(input_interrupt_and_flow),
	    cmocka_unit_test(input_held_until_driver_ready),
	    cmocka_unit_test(hostile_accesses),
	    cmocka_unit_test(save_restore),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
