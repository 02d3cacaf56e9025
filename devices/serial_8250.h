/* A 16550A UART at 0x3f8/IRQ 4: the guest's console (ttyS0). Output bytes go to a callback; input
 * is queued by the event loop with serial_rx_push and read by the guest. */
#ifndef VMM_SERIAL_8250_H
#define VMM_SERIAL_8250_H

#include "vmm/log.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SERIAL_COM1_PORT 0x3f8
#define SERIAL_COM1_IRQ	 4
#define SERIAL_PORT_LEN	 8
#define SERIAL_RX_BUF	 4096

struct serial_ops {
	void (*set_irq)(void *opaque, int level);		      /* IRQ line level changed */
	void (*output)(void *opaque, const uint8_t *buf, size_t len); /* guest wrote bytes */
	void (*rx_space)(void *opaque); /* the guest read input and the buffer has room again */
};

struct serial8250 {
	pthread_mutex_t lock;
	const struct serial_ops *ops;
	void *opaque;
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	bool thr_int_pending; /* THR-empty interrupt waiting to be seen in IIR */
	bool irq_level;
	bool rx_was_full;
	uint8_t rx[SERIAL_RX_BUF];
	size_t rx_head, rx_len;
};

void serial_init(struct serial8250 *s, const struct serial_ops *ops, void *opaque);
void serial_destroy(struct serial8250 *s);

/* Bus handler for the 8 registers (offset 0-7). Accesses wider than a byte touch only the first
 * register, as on real hardware they are undefined. */
void serial_io(void *opaque, uint64_t offset, uint8_t *data, unsigned size, bool is_write);

/* The UART's state as a snapshot's serial section (docs/snapshot.md): its registers, the
 * pending THR-empty interrupt and the input not yet read, at most SERIAL_STATE_MAX bytes.
 * Returns the length written to out. */
#define SERIAL_STATE_MAX (12u + SERIAL_RX_BUF)
size_t serial_save(struct serial8250 *s, uint8_t out[SERIAL_STATE_MAX]);
/* Loads a saved state into s (from serial_init) and sets its interrupt line to match. 0, or
 * -EINVAL with one line in e for bytes serial_save does not write. */
int serial_restore(struct serial8250 *s, const uint8_t *in, size_t len, struct verr *e);

/* Free room in the input buffer, and queueing input: returns how many bytes were taken. */
size_t serial_rx_space(struct serial8250 *s);
size_t serial_rx_push(struct serial8250 *s, const uint8_t *buf, size_t len);

#endif
