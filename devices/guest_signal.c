/* The guest-signal port (see guest_signal.h and docs/guest-signal.md): a 32-bit read returns the
 * magic, a 32-bit write delivers (code, argument) to vmm. Anything else is ignored, so a guest
 * poking at it can do nothing but report. */
#include "devices/guest_signal_dev.h"

#include <string.h>

void guest_signal_io(void *opaque, uint64_t offset, uint8_t *data, unsigned size, bool is_write)
{
	struct guest_signal_dev *d = opaque;
	if (!is_write) {
		uint32_t magic = GUEST_SIGNAL_MAGIC;
		memset(data, 0xff, size);
		if (offset == 0 && size == 4)
			memcpy(data, &magic, 4);
		return;
	}
	if (offset != 0 || size != 4)
		return;
	uint32_t v;
	memcpy(&v, data, 4);
	d->event(d->opaque, GUEST_SIGNAL_CODE(v), GUEST_SIGNAL_ARG(v));
}
