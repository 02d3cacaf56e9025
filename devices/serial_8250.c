/* 16550A UART emulation, enough for Linux's 8250 driver: autoconfig (scratch, loopback, FIFO
 * probing), THR-empty and RX interrupts, and a deep input buffer so piped stdin is never lost
 * (the event loop stops reading stdin while the buffer is full). */
#include "devices/serial_8250.h"
#include "vmm/le.h"

#include <errno.h>
#include <string.h>

enum {
	UART_RX = 0,  /* RBR (read) / THR (write); DLL when LCR.DLAB */
	UART_IER = 1, /* DLM when LCR.DLAB */
	UART_IIR = 2, /* IIR (read) / FCR (write) */
	UART_LCR = 3,
	UART_MCR = 4,
	UART_LSR = 5,
	UART_MSR = 6,
	UART_SCR = 7,
};

#define IER_RDI		 0x01
#define IER_THRI	 0x02
#define IER_MASK	 0x0f
#define IIR_NO_INT	 0x01
#define IIR_THRI	 0x02
#define IIR_RDI		 0x04
#define IIR_FIFO_ENABLED 0xc0
#define FCR_ENABLE_FIFO	 0x01
#define FCR_CLEAR_RCVR	 0x02
#define LCR_DLAB	 0x80
#define MCR_DTR		 0x01
#define MCR_RTS		 0x02
#define MCR_OUT1	 0x04
#define MCR_OUT2	 0x08
#define MCR_LOOP	 0x10
#define LSR_DR		 0x01
#define LSR_THRE	 0x20
#define LSR_TEMT	 0x40
#define MSR_CTS		 0x10
#define MSR_DSR		 0x20
#define MSR_RI		 0x40
#define MSR_DCD		 0x80

void serial_init(struct serial8250 *s, const struct serial_ops *ops, void *opaque)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->ops = ops;
	s->opaque = opaque;
	s->mcr = MCR_OUT2;
}

void serial_destroy(struct serial8250 *s)
{
	pthread_mutex_destroy(&s->lock);
}

/* Host input is visible only while the guest has RX interrupts on. Linux's driver clears the FIFO
 * and reads RBR at every port start-up (with RDI off), and turns RDI off to throttle: hiding the
 * input then keeps it queued instead of lost, and makes throttling real flow control. Loopback
 * bytes (driver probing) are always visible. */
static bool rx_visible(const struct serial8250 *s)
{
	return s->rx_len && ((s->ier & IER_RDI) || (s->mcr & MCR_LOOP));
}

static uint8_t iir(const struct serial8250 *s)
{
	uint8_t fifo = (s->fcr & FCR_ENABLE_FIFO) ? IIR_FIFO_ENABLED : 0;
	if ((s->ier & IER_RDI) && rx_visible(s))
		return fifo | IIR_RDI;
	if ((s->ier & IER_THRI) && s->thr_int_pending)
		return fifo | IIR_THRI;
	return fifo | IIR_NO_INT;
}

/* Called with the lock held after every state change: edges go to the I/O APIC only on change. */
static void update_irq(struct serial8250 *s)
{
	bool level = !(iir(s) & IIR_NO_INT);
	if (level != s->irq_level) {
		s->irq_level = level;
		s->ops->set_irq(s->opaque, level);
	}
}

static void rx_put(struct serial8250 *s, uint8_t c)
{
	if (s->rx_len == SERIAL_RX_BUF)
		return; /* loopback overflow: a real UART drops too */
	s->rx[(s->rx_head + s->rx_len) % SERIAL_RX_BUF] = c;
	s->rx_len++;
}

static uint8_t read_reg(struct serial8250 *s, unsigned reg, bool *rx_freed)
{
	switch (reg) {
	case UART_RX:
		if (s->lcr & LCR_DLAB)
			return s->dll;
		if (!rx_visible(s))
			return 0;
		uint8_t c = s->rx[s->rx_head];
		s->rx_head = (s->rx_head + 1) % SERIAL_RX_BUF;
		s->rx_len--;
		if (s->rx_was_full) {
			s->rx_was_full = false;
			*rx_freed = true;
		}
		return c;
	case UART_IER:
		return (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
	case UART_IIR: {
		uint8_t v = iir(s);
		/* Reading IIR acknowledges a THR-empty interrupt. */
		if ((v & 0x0f) == IIR_THRI)
			s->thr_int_pending = false;
		return v;
	}
	case UART_LCR:
		return s->lcr;
	case UART_MCR:
		return s->mcr;
	case UART_LSR:
		return LSR_THRE | LSR_TEMT | (rx_visible(s) ? LSR_DR : 0);
	case UART_MSR:
		if (s->mcr & MCR_LOOP) {
			/* Loopback wires the modem outputs back to the inputs (Linux probes this).
			 */
			uint8_t v = 0;
			v |= (s->mcr & MCR_RTS) ? MSR_CTS : 0;
			v |= (s->mcr & MCR_DTR) ? MSR_DSR : 0;
			v |= (s->mcr & MCR_OUT1) ? MSR_RI : 0;
			v |= (s->mcr & MCR_OUT2) ? MSR_DCD : 0;
			return v;
		}
		return MSR_DCD | MSR_DSR | MSR_CTS;
	case UART_SCR:
		return s->scr;
	}
	return 0xff;
}

static void write_reg(struct serial8250 *s, unsigned reg, uint8_t v)
{
	switch (reg) {
	case UART_RX:
		if (s->lcr & LCR_DLAB) {
			s->dll = v;
			return;
		}
		if (s->mcr & MCR_LOOP)
			rx_put(s, v);
		else
			s->ops->output(s->opaque, &v, 1);
		/* The byte left at once: the transmitter is empty again. */
		s->thr_int_pending = true;
		return;
	case UART_IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
			return;
		}
		/* Enabling the THR interrupt while THR is empty raises it at once. */
		if (!(s->ier & IER_THRI) && (v & IER_THRI))
			s->thr_int_pending = true;
		s->ier = v & IER_MASK;
		return;
	case UART_IIR:
		s->fcr = v & (FCR_ENABLE_FIFO | 0xc0);
		/* Clearing drops only loopback bytes: host input is never thrown away. */
		if ((v & FCR_CLEAR_RCVR) && (s->mcr & MCR_LOOP)) {
			s->rx_head = 0;
			s->rx_len = 0;
		}
		return;
	case UART_LCR:
		s->lcr = v;
		return;
	case UART_MCR:
		s->mcr = v & 0x1f;
		return;
	case UART_SCR:
		s->scr = v;
		return;
	default: /* LSR and MSR are read-only */
		return;
	}
}

void serial_io(void *opaque, uint64_t offset, uint8_t *data, unsigned size, bool is_write)
{
	struct serial8250 *s = opaque;
	bool rx_freed = false;
	pthread_mutex_lock(&s->lock);
	if (is_write) {
		write_reg(s, (unsigned)offset, data[0]);
	} else {
		memset(data, 0, size);
		data[0] = read_reg(s, (unsigned)offset, &rx_freed);
	}
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	if (rx_freed && s->ops->rx_space)
		s->ops->rx_space(s->opaque);
}

size_t serial_rx_space(struct serial8250 *s)
{
	pthread_mutex_lock(&s->lock);
	size_t n = SERIAL_RX_BUF - s->rx_len;
	pthread_mutex_unlock(&s->lock);
	return n;
}

size_t serial_rx_push(struct serial8250 *s, const uint8_t *buf, size_t len)
{
	pthread_mutex_lock(&s->lock);
	size_t n = 0;
	while (n < len && s->rx_len < SERIAL_RX_BUF)
		rx_put(s, buf[n++]);
	if (s->rx_len == SERIAL_RX_BUF)
		s->rx_was_full = true;
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}

size_t serial_save(struct serial8250 *s, uint8_t out[SERIAL_STATE_MAX])
{
	pthread_mutex_lock(&s->lock);
	const uint8_t regs[8] = {
	    s->ier, s->lcr, s->mcr, s->scr,
	    s->dll, s->dlm, s->fcr, (uint8_t)(s->thr_int_pending | s->rx_was_full << 1)};
	memcpy(out, regs, 8);
	uint32_t n = (uint32_t)s->rx_len;
	le_put32(out + 8, n);
	for (size_t i = 0; i < s->rx_len; i++)
		out[12 + i] = s->rx[(s->rx_head + i) % SERIAL_RX_BUF];
	pthread_mutex_unlock(&s->lock);
	return 12 + n;
}

int serial_restore(struct serial8250 *s, const uint8_t *in, size_t len, struct verr *e)
{
	uint32_t n = len >= 12 ? le_get32(in + 8) : 0;
	if (len < 12 || n > SERIAL_RX_BUF || len != 12 + (size_t)n || (in[7] & ~3u))
		return verr_set(e, -EINVAL,
				"the saved 8250 is %zu bytes with %u of input and flags 0x%x: not "
				"what a UART saves",
				len, n, len >= 12 ? in[7] : 0);
	pthread_mutex_lock(&s->lock);
	s->ier = in[0];
	s->lcr = in[1];
	s->mcr = in[2];
	s->scr = in[3];
	s->dll = in[4];
	s->dlm = in[5];
	s->fcr = in[6];
	s->thr_int_pending = in[7] & 1;
	s->rx_was_full = in[7] & 2;
	memcpy(s->rx, in + 12, n);
	s->rx_head = 0;
	s->rx_len = n;
	/* the line as the state says, whatever it was */
	s->irq_level = (iir(s) & IIR_NO_INT) != 0;
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}
