/* Address-range dispatch for port I/O and MMIO exits: a device registers a range and a handler. */
#ifndef VMM_BUS_H
#define VMM_BUS_H

#include <stdbool.h>
#include <stdint.h>

/* Called for an access of `size` bytes (1, 2, 4 or 8) at `offset` inside the device's range. On a
 * read the handler fills data[0..size); on a write it consumes it. Runs on a vCPU thread: devices
 * lock their own state. */
typedef void (*bus_handler_fn)(void *opaque, uint64_t offset, uint8_t *data, unsigned size,
			       bool is_write);

#define BUS_MAX_RANGES 32

struct bus_range {
	uint64_t base, len;
	bus_handler_fn fn;
	void *opaque;
};

struct bus {
	struct bus_range range[BUS_MAX_RANGES];
	unsigned nr;
};

/* Registers [base, base+len). Returns 0, -EINVAL (empty or wrapping), -EEXIST (overlaps a
 * registered range) or -ENOSPC. Called during setup only, before vCPUs run. */
int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_handler_fn fn, void *opaque);

/* Routes an access that lies wholly inside one range to its handler and returns true. Otherwise
 * (no device, or an access straddling a range's end) returns false and, on a read, fills data
 * with 0xff like an empty bus. */
bool bus_dispatch(const struct bus *b, uint64_t addr, uint8_t *data, unsigned size, bool is_write);

#endif
