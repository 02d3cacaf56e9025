/* The vmm side of the guest-signal port. */
#ifndef VMM_GUEST_SIGNAL_DEV_H
#define VMM_GUEST_SIGNAL_DEV_H

#include "devices/guest_signal.h"

#include <stdbool.h>
#include <stdint.h>

struct guest_signal_dev {
	/* Called on a vCPU thread for each 32-bit write; code and arg are guest-controlled. */
	void (*event)(void *opaque, unsigned code, unsigned arg);
	void *opaque;
};

void guest_signal_io(void *opaque, uint64_t offset, uint8_t *data, unsigned size, bool is_write);

#endif
