/* Port I/O and MMIO dispatch: a short table, searched linearly (a handful of devices). */
#include "vmm/bus.h"

#include <errno.h>
#include <string.h>

int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_handler_fn fn, void *opaque)
{
	if (len == 0 || base + len < base || !fn)
		return -EINVAL;
	for (unsigned i = 0; i < b->nr; i++) {
		const struct bus_range *r = &b->range[i];
		if (base < r->base + r->len && r->base < base + len)
			return -EEXIST;
	}
	if (b->nr == BUS_MAX_RANGES)
		return -ENOSPC;
	b->range[b->nr++] = (struct bus_range){base, len, fn, opaque};
	return 0;
}

bool bus_dispatch(const struct bus *b, uint64_t addr, uint8_t *data, unsigned size, bool is_write)
{
	for (unsigned i = 0; i < b->nr; i++) {
		const struct bus_range *r = &b->range[i];
		if (addr < r->base || addr - r->base >= r->len)
			continue;
		if (size > r->len - (addr - r->base))
			break;
		r->fn(r->opaque, addr - r->base, data, size, is_write);
		return true;
	}
	if (!is_write)
		memset(data, 0xff, size);
	return false;
}
