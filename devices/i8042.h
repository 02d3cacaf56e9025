/* The i8042 keyboard controller, reduced to what a guest uses it for here: the CPU reset line.
 * Linux with reboot=k writes 0xfe to port 0x64 to reboot; vmm then ends the VM. */
#ifndef VMM_I8042_H
#define VMM_I8042_H

#include <stdbool.h>
#include <stdint.h>

#define I8042_DATA_PORT 0x60
#define I8042_PORT_LEN	5 /* 0x60-0x64; 0x61 (PC speaker) is KVM's in-kernel PIT */
#define I8042_CMD_RESET 0xfe

struct i8042 {
	void (*reset)(void *opaque); /* the guest pulsed the reset line */
	void *opaque;
};

void i8042_io(void *opaque, uint64_t offset, uint8_t *data, unsigned size, bool is_write);

#endif
