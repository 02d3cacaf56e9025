/* i8042: reads say "no data, input buffer empty" so the kernel's kb_wait() never spins; a 0xfe
 * command on the command port resets the machine. */
#include "devices/i8042.h"

#include <string.h>

#define I8042_CMD_OFFSET 4 /* port 0x64 */

void i8042_io(void *opaque, uint64_t offset, uint8_t *data, unsigned size, bool is_write)
{
	struct i8042 *k = opaque;
	if (!is_write) {
		memset(data, 0, size);
		return;
	}
	if (offset == I8042_CMD_OFFSET && data[0] == I8042_CMD_RESET)
		k->reset(k->opaque);
}
