/* Building the guest kernel command line: vmm's defaults, then the user's, with entries vmm
 * adds later (devices) kept before the " -- " that starts init's arguments. */
#ifndef VMM_CMDLINE_H
#define VMM_CMDLINE_H

#include <stddef.h>

/* console on the 8250, reboot through the i8042 (there is no ACPI), panic -> reboot at once,
 * no probing of the three absent UARTs, quiet boot (every console byte is a VM exit). */
#define CMDLINE_DEFAULT "console=ttyS0 reboot=k panic=1 8250.nr_uarts=1 quiet"

/* Writes "<base> <user>" into out (user may be NULL). Returns 0 or -E2BIG. */
int cmdline_build(char *out, size_t cap, const char *base, const char *user);

/* Inserts " <param>" before the first " -- " (init's arguments), or at the end. 0 or -E2BIG. */
int cmdline_add(char *out, size_t cap, const char *param);

#endif
