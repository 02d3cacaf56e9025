/* The seccomp filters vmm installs: classic BPF programs compiled from vmm/sandbox/sandbox_rules.c
 * when vmm is built (vmm/sandbox/gen-seccomp-filters.c writes sandbox_filters.c in the build
 * directory), and the system call names the SIGSYS handler prints. */
#ifndef VMM_SANDBOX_FILTERS_H
#define VMM_SANDBOX_FILTERS_H

#include "vmm/sandbox/sandbox.h"

#include <linux/filter.h>

struct sandbox_filter {
	const char *name; /* the thread kind: "main", "vcpu", "session", "fs" */
	const struct sock_filter *insns;
	unsigned short len; /* instructions (struct sock_fprog's len) */
};

/* Indexed by enum sandbox_kind: the program libseccomp exported for that kind's list (default
 * action SECCOMP_RET_TRAP; a wrong architecture kills the thread, libseccomp's default). */
extern const struct sandbox_filter sandbox_filters[SANDBOX_KINDS];

/* The libseccomp version that compiled them ("2.5.4"). */
extern const char sandbox_filters_libseccomp[];

/* Native system call names by number (NULL where there is none), for the SIGSYS line. */
#define SANDBOX_SYSCALL_NAMES 512
extern const char *const sandbox_syscall_names[SANDBOX_SYSCALL_NAMES];

#endif
