/* The guest-signal port: how the guest's init tells vmm it has booted and how it wants vmm to exit.
 * Shared by the device (devices/guest_signal.c) and the guest init (guest/init.c); see
 * docs/guest-signal.md. */
#ifndef VMM_GUEST_SIGNAL_H
#define VMM_GUEST_SIGNAL_H

/* A 4-byte I/O port range no PC device uses. */
#define GUEST_SIGNAL_PORT     0x440
#define GUEST_SIGNAL_PORT_LEN 4

/* A 32-bit read returns this magic ("VMM1" little-endian) so a guest can tell the device is there.
 */
#define GUEST_SIGNAL_MAGIC 0x314d4d56u

/* A 32-bit write: bits 31..24 are the code, bits 23..0 its argument. */
#define GUEST_SIGNAL_CODE(v)	((unsigned)(v) >> 24)
#define GUEST_SIGNAL_ARG(v)	((unsigned)(v)&0xffffffu)
#define GUEST_SIGNAL(code, arg) (((unsigned)(code) << 24) | ((unsigned)(arg)&0xffffffu))

enum guest_signal_code {
	GUEST_SIGNAL_BOOT_DONE = 0x01,	   /* init reached user space: the boot timer stops here */
	GUEST_SIGNAL_EXIT_STATUS = 0x02,   /* arg = exit status (0-255) vmm exits with at reset */
	GUEST_SIGNAL_PROCESS_START = 0x03, /* the workload process is about to exec */
};

#endif
